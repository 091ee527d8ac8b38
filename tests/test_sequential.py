"""The confirmatory w-sweep's decision in simulation (studies/analysis/simulate.py plays whole
studies, w selection on pilot seeds included): with no true difference a false "holds" stays
within alpha, and at a standardised effect of 1.5 the default plan decides "holds" with power
>= 0.8. The rule it replaced (w chosen on the same seeds, "holds" when ahead on 3 of 3) fails
the first: its false "holds" is about 5 times alpha. And the tests' parts: boundaries,
intervals, the verdict's words."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from studies.analysis.claim import Design
from studies.analysis.sequential import (
    HOLDS,
    NOT_SHOWN,
    OPEN,
    REVERSED,
    boundaries,
    paired_test,
    spent,
    t_statistics,
    verdict,
)
from studies.analysis.simulate import DESIGN_EFFECT, NOISE_SD, Plan, simulate
from studies.service.budgets import BUDGETS
from studies.service.options import StudyOptions, design_for, looks_until

REPS = 20_000
ALPHA = 0.05


def slack(rate: float) -> float:
    """Three Monte Carlo standard errors of a rate over REPS replicates."""
    return 3 * math.sqrt(rate * (1 - rate) / REPS)


def default_plan() -> Plan:
    design = design_for(StudyOptions(study="w-sweep"), BUDGETS["cpu"])
    assert design is not None
    inner = sum(0 < w < 1 for w in design.w_grid)
    return Plan(len(design.pilot_seeds), inner, design.looks, design.alpha)


PLANS = [default_plan(), Plan(2, 4, (6,), ALPHA), Plan(2, 4, looks_until(10), ALPHA), Plan(1, 2, (2,), ALPHA)]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"looks{p.looks}")
def test_no_true_difference_rarely_holds_or_reverses(plan: Plan) -> None:
    nothing = simulate(plan, 0.0, reps=REPS, seed=1)
    least_favourable = simulate(plan, 0.0, dae=-10.0, reps=REPS, seed=2)  # one test always rejects
    assert nothing.holds <= ALPHA + slack(ALPHA)
    assert nothing.reversed <= ALPHA + slack(ALPHA)
    assert least_favourable.holds <= ALPHA + slack(ALPHA)
    assert least_favourable.holds >= ALPHA - slack(ALPHA)  # and not far below: the boundaries are tight


def test_the_default_plan_has_power_at_the_design_effect() -> None:
    plan = default_plan()
    alike = simulate(plan, DESIGN_EFFECT, reps=REPS, seed=3)
    only_best = simulate(plan, DESIGN_EFFECT, others=0.0, reps=REPS, seed=4)  # selection must find it
    assert alike.holds >= 0.8 and only_best.holds >= 0.8
    assert alike.mean_seeds < plan.confirm_seeds  # large effects stop at the first look
    assert simulate(plan, -DESIGN_EFFECT, reps=REPS, seed=5).reversed >= 0.8  # and the other way round


def todays_rule(effect: float, dae: float = 0.0, reps: int = REPS, seed: int = 0, corr: float = 0.8) -> float:
    """The retired rule's "holds" rate: every w on the same 3 seeds, w chosen on the validation
    score of the same fitted probe (correlated `corr` with its test score), "holds" when SidAE
    is ahead of both baselines on every seed. Same noise model as simulate()."""
    rng = np.random.default_rng(seed)
    inner, seeds = 4, 3
    test_noise = rng.normal(0, NOISE_SD, (reps, seeds, inner))
    val_noise = corr * test_noise + math.sqrt(1 - corr**2) * rng.normal(0, NOISE_SD, (reps, seeds, inner))
    chosen = (effect + val_noise).mean(axis=1).argmax(axis=1)
    sidae = effect + np.take_along_axis(test_noise, chosen[:, None, None], axis=2)[:, :, 0]
    baselines = np.array([dae, 0.0])[None, :, None] + rng.normal(0, NOISE_SD, (reps, 2, seeds))
    return float(((sidae[:, None, :] - baselines) > 0).all(axis=(1, 2)).mean())


def test_todays_rule_fails_the_error_criterion() -> None:
    """The retired rule says "holds" with SidAE level with SimSiam (the DAE far behind) about 0.24
    of the time, and with no difference at all about 0.09: 3 of 3 seeds ahead is 1 in 8 by
    chance, more after choosing w on the same seeds. (Its power, 0.84 at 1.5, is high for the
    same reason.)"""
    assert todays_rule(0.0, dae=-10.0) > 4 * ALPHA
    assert todays_rule(0.0) > ALPHA + slack(ALPHA)


def test_one_look_is_the_plain_paired_t_test() -> None:
    assert boundaries((6,), 0.05) == (pytest.approx(stats.t.isf(0.05, 5)),)
    d = [1.0, 2.0, 0.5, 1.5, 0.8, 1.1]
    test = paired_test(d, (6,), 0.05)
    expected = stats.ttest_1samp(d, 0.0, alternative="greater")
    assert test.t == pytest.approx(expected.statistic)
    assert test.ahead == (expected.pvalue < 0.05)


def test_group_sequential_boundaries_spend_alpha_over_the_looks() -> None:
    looks = (4, 6, 8, 10)
    found = boundaries(looks, ALPHA)
    assert list(found) == sorted(found, reverse=True)  # early looks need far more
    assert found[-1] > stats.t.isf(ALPHA, looks[-1] - 1)  # the last look pays a little for the early ones
    assert spent(1.0, ALPHA) == pytest.approx(ALPHA) and spent(0.4, ALPHA) < ALPHA / 10
    # the chance to cross some boundary with no true difference is alpha, on fresh draws
    paths = np.random.default_rng(9).standard_normal((200_000, looks[-1]))
    crossed = np.zeros(len(paths), dtype=bool)
    for n, c in zip(looks, found, strict=True):
        crossed |= t_statistics(paths[:, :n]) >= c
    assert crossed.mean() == pytest.approx(ALPHA, abs=0.003)


def test_interval_excludes_zero_exactly_when_the_test_rejects() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        d = rng.normal(rng.uniform(-1, 2), 1, 6).tolist()
        test = paired_test(d, (4, 6), ALPHA)
        assert (test.interval()[0] > 0) == test.ahead


@pytest.mark.parametrize(
    ("dae", "simsiam", "last", "word"),
    [
        ([3, 2.5, 3.2, 2.8], [1.0, 1.2, 0.9, 1.1], False, HOLDS),  # both far ahead: decided at the first look
        ([3, 2.5, 3.2, 2.8], [0.1, -0.2, 0.3, 0.0], False, OPEN),
        ([3, 2.5, 3.2, 2.8], [0.1, -0.2, 0.3, 0.0], True, NOT_SHOWN),
        ([3, 2.5, 3.2, 2.8], [-3.0, -2.8, -3.1, -2.9], False, REVERSED),  # SimSiam far ahead
    ],
)
def test_verdict_words(dae: list[float], simsiam: list[float], last: bool, word: str) -> None:
    looks = (4,) if last else (4, 6)
    assert verdict(paired_test(dae, looks, ALPHA), paired_test(simsiam, looks, ALPHA), last_look=last) == word


def test_the_design_uses_fresh_seeds_and_named_points_are_descriptive() -> None:
    design = design_for(StudyOptions(study="w-sweep"), BUDGETS["cpu"])
    assert isinstance(design, Design)
    assert not set(design.pilot_seeds) & set(design.confirm_seeds)
    assert len(design.confirm_seeds) == design.looks[-1]
    assert design_for(StudyOptions(study="w-sweep", w_grid=(0.0, 1.0)), BUDGETS["cpu"]) is None
    assert design_for(StudyOptions(study="w-sweep", seeds=(0, 1)), BUDGETS["cpu"]) is None
    assert design_for(StudyOptions(study="joint"), BUDGETS["cpu"]) is None
    longer = design_for(StudyOptions(study="w-sweep", until_decided=9), BUDGETS["cpu"])
    assert longer is not None and longer.looks == (4, 6, 8, 9)
    assert Design.from_attr(design.to_attr()) == design  # as stored on the study
