"""The stopping rule (studies/analysis/sequential.py) in simulation: synthetic paired differences
with a known true mean, many repetitions, the rule looking after every seed. Its false decisions
(declared at a true mean of 0, or the wrong way) stay within alpha, its intervals cover the mean
at every seed at once, and it stops early when the effect is large. A fixed-n t-test repeated
after every seed fails the first test (about 0.2 at 20 looks)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from studies.analysis.sequential import (
    bayes_factor,
    claim_alpha,
    confidence_sequence,
    decide,
    first_decision,
    t_threshold,
)

REPS = 2000
SEEDS = 20


def draws(mean: float, sd: float, n: int, rng: random.Random) -> list[float]:
    return [rng.gauss(mean, sd) for _ in range(n)]


def slack(alpha: float) -> float:
    """Three Monte Carlo standard errors of a rate alpha over REPS repetitions."""
    return 3 * math.sqrt(alpha * (1 - alpha) / REPS)


@pytest.mark.parametrize("sd", [0.01, 1.0, 30.0])  # the rule is scale-free: sigma is never stated
def test_no_effect_is_falsely_decided_at_most_alpha_of_the_time(sd: float) -> None:
    rng = random.Random(1)
    alpha = 0.05
    wrong = sum(first_decision(draws(0.0, sd, SEEDS, rng), alpha) is not None for _ in range(REPS))
    assert wrong / REPS <= alpha + slack(alpha)


def test_a_small_effect_is_almost_never_decided_the_wrong_way() -> None:
    rng = random.Random(2)
    alpha = 0.05
    decisions = [first_decision(draws(0.2, 1.0, SEEDS, rng), alpha) for _ in range(REPS)]
    assert sum(d is not None and d.state == "behind" for d in decisions) / REPS <= alpha + slack(alpha)


def test_the_intervals_cover_the_mean_at_every_seed_at_once() -> None:
    rng = random.Random(3)
    alpha = 0.1
    missed = 0
    for _ in range(REPS):
        intervals = confidence_sequence(draws(1.5, 2.0, SEEDS, rng), alpha)
        missed += any(not low <= 1.5 <= high for low, high in intervals)
    assert missed / REPS <= alpha + slack(alpha)


@pytest.mark.parametrize(("effect", "most_seeds"), [(3.0, 5.0), (5.0, 4.0), (-5.0, 4.0)])
def test_a_large_effect_is_decided_early_and_the_right_way(effect: float, most_seeds: float) -> None:
    rng = random.Random(4)
    decisions = [first_decision(draws(effect, 1.0, SEEDS, rng), 0.05) for _ in range(REPS // 4)]
    assert all(d is not None and d.state == ("ahead" if effect > 0 else "behind") for d in decisions)
    assert statistics.fmean(d.n for d in decisions if d) <= most_seeds


def test_at_a_w_sweeps_split_three_standard_deviations_are_mostly_decided_within_ten_seeds() -> None:
    rng = random.Random(5)
    alpha = claim_alpha(0.05, inner_ws=4, evaluations=2, fractions=3)
    assert alpha == pytest.approx(0.05 / 48)
    decided = [first_decision(draws(3.0, 1.0, 10, rng), alpha) for _ in range(REPS // 4)]
    assert sum(d is not None for d in decided) / len(decided) >= 0.85
    assert min(d.n for d in decided if d) >= 5  # the split costs seeds: nothing is decided on 4


def test_the_threshold_is_where_the_bayes_factor_reaches_one_over_alpha() -> None:
    for n in (4, 7, 12):
        threshold = t_threshold(n, 0.01)
        # n differences with mean m and sd 1 have t = sqrt(n) m: put t at the threshold.
        base = [float((-1) ** i) for i in range(n)]
        base = [(b - statistics.fmean(base)) / statistics.stdev(base) for b in base]
        at = [b + threshold / math.sqrt(n) for b in base]
        assert bayes_factor(at) == pytest.approx(100.0, rel=1e-6)
    assert t_threshold(1, 0.05) == math.inf and t_threshold(3, 1e-6) == math.inf  # too few seeds to decide


def test_a_decision_reads_as_the_report_says_it() -> None:
    ahead = decide([1.0, 1.2, 0.9, 1.1, 1.0, 1.05], 0.05)
    assert ahead.state == "ahead" and ahead.low > 0 and str(ahead).startswith("ahead, [+")
    assert str(ahead).endswith("after 6 seeds")
    still = decide([0.5, -0.3, 0.2], 0.05)
    assert still.state == "open" and str(still) == f"open after 3 seeds, {still.interval()}"
    assert decide([0.5], 0.05).interval() == "(-inf, +inf)"
