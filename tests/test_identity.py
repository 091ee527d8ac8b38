"""A study's settings against a rerun's: what counts as the same study."""

from __future__ import annotations

from studies.service.identity import Difference, first_difference

STORED = {"primary_fraction": 0.01, "optim.epochs": 10, "w": 0.5}


def test_the_same_settings_match_and_a_changed_one_is_named() -> None:
    assert first_difference(STORED, dict(STORED)) is None
    changed = first_difference(STORED, {**STORED, "optim.epochs": 2})
    assert changed == Difference("optim.epochs", 10, 2) and changed.name_suffix == "epochs"
    assert str(changed) == "optim.epochs=10 (this run: 2)"


def test_a_field_added_since_the_study_was_stored_matches_at_its_default() -> None:
    """Studies stored before siamese_noise, eval.recompute_bn and model.decoder_input existed
    ran as their defaults do: a rerun keeping the defaults is the same study, one changing them is not."""
    defaults = {"siamese_noise": True, "eval.recompute_bn": False, "model.decoder_input": "pooled"}
    assert first_difference(STORED, {**STORED, **defaults}) is None
    assert first_difference(STORED, {**STORED, **defaults, "siamese_noise": False}) == Difference(
        "siamese_noise", None, False
    )
    assert first_difference({**STORED, "gone": 1}, STORED) == Difference("gone", 1, None)  # a field removed
