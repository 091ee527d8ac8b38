"""studies/analysis/claim.py and verdict.py on hand-built w-sweep trials (real Optuna trials in an
in-memory study): w is chosen on the pilot's validation scores, never on test; the primary
verdict reads only the fresh seeds of each look, stops at the first look that decides, and is
void when a method does not beat the untrained encoder; descriptive rows are paired by seed."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from studies.analysis.claim import (
    CHOSEN_ATTR,
    DESIGN_ATTR,
    NO_LEARNING,
    VOID,
    Design,
    by_w_and_seed,
    chosen_w,
    claim_rows,
    differences,
    primary_verdict,
    study_verdict,
)
from studies.analysis.sequential import HOLDS, NOT_SHOWN, OPEN, REVERSED
from studies.analysis.verdict import verdict_lines, verdict_section
from studies.record import CONTROLS_ATTR

DISTRIBUTIONS = {"w": FloatDistribution(0.0, 1.0), "seed": IntDistribution(0, 99)}
DESIGN = Design(
    w_grid=(0.0, 0.5, 0.9, 1.0),
    pilot_seeds=(0, 1),
    confirm_seeds=(2, 3, 4, 5, 6, 7),
    looks=(4, 6),
    primary_fraction=0.01,
)


def trial(w: float, seed: int, validation: float, test: float) -> FrozenTrial:
    return optuna.trial.create_trial(
        params={"w": w, "seed": seed},
        distributions=DISTRIBUTIONS,
        value=validation,
        user_attrs={"test_linear": {"0.01": test}},
    )


def sweep(tests: dict[float, list[float]], validation: dict[float, float], first_seed: int = 0) -> list[FrozenTrial]:
    return [
        trial(w, first_seed + i, validation[w], accuracy)
        for w, per_seed in tests.items()
        for i, accuracy in enumerate(per_seed)
    ]


def confirmation(sidae: list[float], dae: list[float], simsiam: list[float], w: float = 0.9) -> list[FrozenTrial]:
    """Trials of the confirmation seeds 2, 3, ... (test accuracies as fractions)."""
    return sweep({w: sidae, 0.0: dae, 1.0: simsiam}, {w: 0.5, 0.0: 0.5, 1.0: 0.5}, first_seed=2)


def untrained(level: float, seeds: range = range(8)) -> dict[int, dict[float, float]]:
    return {s: {0.01: level + s / 1000} for s in seeds}


def test_w_is_chosen_on_pilot_validation_not_on_test() -> None:
    pilot = sweep(
        {0.0: [0.5] * 2, 0.5: [0.9] * 2, 0.9: [0.6] * 2, 1.0: [0.5] * 2},
        validation={0.0: 0.9, 0.5: 0.1, 0.9: 0.8, 1.0: 0.99},
    )
    later = sweep({0.5: [0.5]}, {0.5: 0.99}, first_seed=2)  # a confirmation-seed trial must not move it
    assert chosen_w(by_w_and_seed(pilot + later), DESIGN.pilot_seeds) == 0.9
    assert chosen_w(by_w_and_seed(pilot[:3]), DESIGN.pilot_seeds) is None  # no inner w on every pilot seed


def test_differences_are_paired_by_seed() -> None:
    # Seed 3 is hard for both methods: paired, SidAE is one point ahead on every seed.
    table = by_w_and_seed(sweep({0.5: [0.80, 0.60, 0.81], 0.0: [0.79, 0.59, 0.80]}, {0.5: 0.5, 0.0: 0.5}))
    assert differences(table, 0.5, 0.0, "test_linear", 0.01, (0, 1, 2)) == pytest.approx([1.0, 1.0, 1.0])
    assert differences(table, 0.5, 0.0, "test_linear", 0.1, (0, 1, 2)) == []  # a fraction nobody measured


AHEAD = [0.90, 0.91, 0.92, 0.905, 0.915, 0.91]
LEVEL = [0.80, 0.81, 0.805, 0.79, 0.80, 0.81]


@pytest.mark.parametrize(
    ("sidae", "dae", "simsiam", "seeds", "word"),
    [
        (AHEAD, LEVEL, LEVEL, 4, HOLDS),  # ten points ahead of both on every seed: decided at 4 seeds
        ([x - 0.10 for x in AHEAD], LEVEL, [x + 0.1 for x in LEVEL], 4, REVERSED),
        (LEVEL, [x - 0.001 for x in LEVEL[::-1]], LEVEL[::-1], 6, NOT_SHOWN),
    ],
)
def test_primary_verdict(sidae: list[float], dae: list[float], simsiam: list[float], seeds: int, word: str) -> None:
    verdict = primary_verdict(confirmation(sidae, dae, simsiam), DESIGN, 0.9, untrained(0.5))
    assert verdict is not None and verdict.word == word and verdict.vs_dae.n == seeds


def test_a_look_not_complete_is_open_and_pilot_seeds_never_count() -> None:
    pilot = sweep({0.9: [0.99, 0.99], 0.0: [0.1, 0.1], 1.0: [0.1, 0.1]}, {0.9: 0.9, 0.0: 0.5, 1.0: 0.5})
    three = confirmation(LEVEL[:3], LEVEL[:3], LEVEL[:3])
    assert primary_verdict(pilot + three, DESIGN, 0.9, untrained(0.5)) is None  # the first look needs 4
    middle = confirmation(LEVEL[:5], LEVEL[::-1][:5], LEVEL[:5])
    verdict = primary_verdict(pilot + middle, DESIGN, 0.9, untrained(0.5))
    assert verdict is not None and verdict.word == OPEN and verdict.vs_dae.n == 4


def test_a_method_that_did_not_learn_voids_the_verdict() -> None:
    trials = confirmation(AHEAD, LEVEL, LEVEL)
    verdict = primary_verdict(trials, DESIGN, 0.9, untrained(0.85))  # the DAE and SimSiam are below it
    assert verdict is not None and verdict.tested == HOLDS and verdict.word == VOID
    assert [g.learned for g in verdict.gate] == [True, False, False]
    assert NO_LEARNING in verdict.summary() and "DAE, SimSiam" in verdict.summary()
    no_controls = primary_verdict(trials, DESIGN, 0.9, {})
    assert no_controls is not None and no_controls.word == HOLDS and no_controls.gate == []


def test_descriptive_rows() -> None:
    trials = sweep({0.0: [0.70, 0.72], 0.5: [0.75, 0.74], 1.0: [0.71, 0.75]}, {0.0: 0.7, 0.5: 0.75, 1.0: 0.73})
    (row,) = claim_rows(trials, {"test_linear": "linear probe"}, 0.5)
    assert row.vs_dae.values == pytest.approx((5.0, 2.0)) and row.siamese.values == pytest.approx((1.0, 3.0))
    assert str(row.vs_simsiam) == "+1.50 [-30.27, +33.27] (n=2)"  # 1.5 +- 12.71 x 2.5: t on 1 degree of freedom
    assert claim_rows([t for t in trials if t.params["w"] != 1.0], {"test_linear": "linear probe"}, 0.5) == []


def stored(trials: list[FrozenTrial], design: Design | None, chosen: float | None, level: float) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for t in trials:
        study.add_trial(t)
    study.set_user_attr(CONTROLS_ATTR, {str(s): {"untrained": {"0.01": level}} for s in range(8)})
    if design is not None:
        study.set_user_attr(DESIGN_ATTR, design.to_attr())
    if chosen is not None:
        study.set_user_attr(CHOSEN_ATTR, chosen)
    return study


def test_the_report_and_terminal_say_the_verdict_its_design_and_the_gate() -> None:
    pilot = sweep(
        {0.0: [0.8, 0.8], 0.5: [0.8, 0.8], 0.9: [0.8, 0.8], 1.0: [0.8, 0.8]}, {0.0: 0.5, 0.5: 0.4, 0.9: 0.6, 1.0: 0.5}
    )
    study = stored(pilot + confirmation(AHEAD, LEVEL, LEVEL), DESIGN, 0.9, 0.5)
    design, w, verdict = study_verdict(study)
    assert (design, w, verdict.word if verdict else None) == (DESIGN, 0.9, HOLDS)
    text = "\n".join(verdict_section(study, {"test_linear": "linear probe"}))
    assert "**Primary verdict: HOLDS**" in text and "declared before the run" in text
    assert "power 0.8" in text and 'false "holds" 0.0' in text  # the design's simulated rates
    assert "| SidAE w=0.9 | +" in text and "| yes |" in text  # the learning gate's rows
    terminal = verdict_lines(study)
    assert terminal[0].startswith("primary verdict (SidAE at w=0.9") and "HOLDS" in terminal[0]
    assert "false holds <= 0.05" in terminal[1]

    void = stored(pilot + confirmation(AHEAD, LEVEL, LEVEL), DESIGN, 0.9, 0.95)
    assert "VOID" in verdict_lines(void)[0] and NO_LEARNING in "\n".join(verdict_section(void, {"test_linear": "x"}))


def test_a_sweep_without_a_design_makes_no_claim() -> None:
    trials = sweep({0.0: [0.70, 0.72], 0.5: [0.75, 0.74], 1.0: [0.71, 0.75]}, {0.0: 0.7, 0.5: 0.75, 1.0: 0.73})
    study = stored(trials, None, None, 0.5)
    assert study_verdict(study)[2] is None
    text = "\n".join(verdict_section(study, {"test_linear": "linear probe"}))
    assert "### Comparisons (descriptive)" in text and "no confirmatory claim" in text and "holds" not in text
    assert verdict_lines(study)[0].startswith("descriptive sweep")
