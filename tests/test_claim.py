"""studies/analysis/claim.py on hand-built w-sweep trials (real Optuna FrozenTrials): w is chosen on
validation, never on test; margins are paired by seed; the verdict follows the seeds."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from studies.analysis.claim import Margin, by_w_and_seed, chosen_w, claim_lines, claim_summary, margin, verdict

DISTRIBUTIONS = {"w": FloatDistribution(0.0, 1.0), "seed": IntDistribution(0, 9)}


def trial(w: float, seed: int, validation: float, test: float) -> FrozenTrial:
    return optuna.trial.create_trial(
        params={"w": w, "seed": seed},
        distributions=DISTRIBUTIONS,
        value=validation,
        user_attrs={"test_linear": {"0.01": test}},
    )


def sweep(tests: dict[float, list[float]], validation: dict[float, float]) -> list[FrozenTrial]:
    return [
        trial(w, seed, validation[w], accuracy)
        for w, per_seed in tests.items()
        for seed, accuracy in enumerate(per_seed)
    ]


def test_w_is_chosen_on_validation_not_on_test() -> None:
    trials = sweep(
        {0.0: [0.5] * 3, 0.5: [0.9] * 3, 0.9: [0.6] * 3, 1.0: [0.5] * 3},
        validation={0.0: 0.9, 0.5: 0.1, 0.9: 0.8, 1.0: 0.99},
    )
    assert chosen_w(by_w_and_seed(trials)) == 0.9  # best validation in (0, 1), though 0.5 is best on test
    assert chosen_w(by_w_and_seed([trial(0.0, 0, 0.5, 0.5), trial(1.0, 0, 0.5, 0.5)])) is None


def test_margins_are_paired_by_seed() -> None:
    # Seed 1 is a hard seed for both methods: paired, SidAE is ahead by 1 point on every seed.
    table = by_w_and_seed(sweep({0.5: [0.80, 0.60, 0.81], 0.0: [0.79, 0.59, 0.80]}, {0.5: 0.5, 0.0: 0.5}))
    m = margin(table[0.5], table[0.0], "test_linear", 0.01)
    assert m is not None and m.differences == pytest.approx((1.0, 1.0, 1.0))
    assert (m.mean, m.wins, str(m)) == (pytest.approx(1.0), 3, "+1.00 ± 0.00 (3/3)")
    assert margin(table[0.5], table[0.0], "test_linear", 0.1) is None  # a fraction nobody measured
    only_seed_0 = {0: table[0.0][0]}
    assert margin(table[0.5], only_seed_0, "test_linear", 0.01).differences == pytest.approx((1.0,))


@pytest.mark.parametrize(
    ("vs_dae", "vs_simsiam", "expected"),
    [
        ((1.0, 2.0, 0.5), (0.1, 0.2, 0.3), "holds"),
        ((1.0, 2.0, -0.5), (0.1, 0.2, 0.3), "unclear"),
        ((1.0, 2.0, 0.5), (-0.1, -0.2, 0.25), "no"),
        ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "no"),
    ],
)
def test_verdict(vs_dae: tuple[float, ...], vs_simsiam: tuple[float, ...], expected: str) -> None:
    assert verdict(Margin(vs_dae), Margin(vs_simsiam)) == expected


def test_claim_section_rows() -> None:
    trials = sweep({0.0: [0.70, 0.72], 0.5: [0.75, 0.74], 1.0: [0.71, 0.75]}, {0.0: 0.7, 0.5: 0.75, 1.0: 0.73})
    lines = claim_lines(trials, {"test_linear": "linear probe"})
    rows = [line for line in lines if line.startswith("| linear probe")]
    assert rows == [
        "| linear probe, 1% labels | +3.50 ± 2.12 (2/2) | +1.50 ± 3.54 (1/2) | unclear | +2.00 ± 1.41 (2/2) |"
    ]
    assert claim_lines([t for t in trials if t.params["w"] != 1.0], {"test_linear": "linear probe"}) == []
    assert claim_summary(trials) == (
        "paper's claim, SidAE at w=0.5 (chosen on validation) against the DAE and "
        "SimSiam, test linear probe: 1% unclear"
    )
    assert claim_summary(trials[:2]) is None  # the DAE alone: nothing to compare
