"""When is a paired comparison decided? An anytime-valid confidence sequence for the mean of
per-seed differences (SidAE at the chosen w minus a baseline, studies/analysis/claim.py), so a
w-sweep may look after every seed and stop when it is decided, without the inflated error of a
fixed-n test repeated after each seed (a 5 % t-test repeated over 20 seeds errs about 1 time in 4).

The rule: Lai's t confidence sequence (T. L. Lai, "On confidence sequences", Ann. Statist. 4(2),
1976; as an e-process: H. Pérez-Ortiz, T. Lardy, R. de Heide, P. Grünwald, "E-statistics, group
invariance and anytime-valid testing", Ann. Statist. 52(4), 2024; H. Wang, A. Ramdas,
"Anytime-valid t-tests and confidence sequences for Gaussian means with unknown variance",
Sequential Analysis, 2025). For a candidate mean mu0 the Bayes factor of the one-sample t-test
with a right-Haar prior on the scale and a N(0, g) prior on the effect size (mu - mu0) / sigma,

    BF_n(mu0) = (1 + n g)^(-1/2) * [(1 + t^2 / nu) / (1 + t^2 / (nu (1 + n g)))]^(n / 2),
    t = sqrt(n) (mean_n - mu0) / sd_n,   nu = n - 1,

is a test martingale in n under mu = mu0 whatever sigma is (it is the likelihood ratio of the
scale-invariant part of the data), so by Ville's inequality P(BF_n(mu0) >= 1/alpha for some n)
<= alpha. The set of mu0 it does not reject, mean_n +- sd_n / sqrt(n) * t*_n, is therefore a
confidence sequence: it covers the true mean at every n at once with probability >= 1 - alpha,
and so does its running intersection. A comparison is *decided* once the interval excludes 0
(SidAE ahead when it lies above, behind when below); the chance that any decision is wrong
(declared when the true mean is 0, or the wrong way) is at most alpha. `claim_alpha` splits a
family error rate over every comparison the verdict could use (Bonferroni).

The assumption, stated honestly: the per-seed differences are independent draws from one
normal distribution (any mean, any variance, neither known). Accuracy differences of networks
trained from different seeds are roughly normal; the guarantee is exact only under normality.
Simulated at alpha = 0.05 over 20 seeds, a symmetric light-tailed null (uniform) is falsely
decided 5.1 % of the time, a strongly skewed one (exponential, centred) 11 %: a heavily skewed
difference, e.g. one seed on which a method collapses, can break the stated rate.
Why not a distribution-free rule for bounded differences (Waudby-Smith & Ramdas, "Estimating
means of bounded random variables by betting", JRSSB 86(1), 2024)? With |difference| <= B
and nothing else assumed, a mean of 0 is consistent with small positive differences on nearly
every seed and a rare -B, so n seeds all at +d reject it at level a only if
(1 + d / B)^n >= 1 / a: at a = 0.05 / 48 (the split below) even d = B needs 10 seeds and
d = B / 10 needs 72. No bounded-range rule can decide anything on the 3..10 seeds a CPU user
runs; the normal assumption is the price of deciding at all.

What this rule can decide (prior scale g = 10: effect sizes of a few standard deviations, the
size at which a handful of seeds can decide): at the split of a w-sweep with 4 inner w, 2
evaluations and 3 label fractions (alpha = 0.05 / 48) nothing below 5 seeds, then a comparison
whose |mean| / sd >= t*_n / sqrt(n): 9.0 at n = 5, 4.8 at 6, 3.6 at 7, 2.9 at 8, 2.25 at 10.
In simulation (tests/test_sequential.py) a true effect of 3 standard deviations is decided
within 10 seeds about 9 times in 10, 2 standard deviations 4 in 10, 1 standard deviation 3 in 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PRIOR_SCALE = 10.0  # g: the variance of the effect-size prior; any g > 0 keeps the guarantee
ALPHA = 0.05  # the family error rate of a w-sweep's decisions


def t_threshold(n: int, alpha: float, g: float = PRIOR_SCALE) -> float:
    """t*_n: the |t| at which BF_n reaches 1 / alpha; infinite when it cannot at n (n < 2, or
    too few seeds for this alpha however large t is: BF_n is at most (1 + n g)^((n - 1) / 2))."""
    if n < 2:
        return math.inf
    # (1 + a) / (1 + a / (1 + n g)) = R, with a = t^2 / nu, solved for a.
    ratio = (math.sqrt(1 + n * g) / alpha) ** (2 / n)
    if ratio >= 1 + n * g:
        return math.inf
    return math.sqrt((n - 1) * (ratio - 1) / (1 - ratio / (1 + n * g)))


def _mean_and_squares(values: Sequence[float]) -> tuple[float, float]:
    """Welford's running mean and sum of squared deviations (stable, one pass)."""
    mean = squares = 0.0
    for n, x in enumerate(values, start=1):
        step = x - mean
        mean += step / n
        squares += step * (x - mean)
    return mean, squares


def bayes_factor(differences: Sequence[float], mu0: float = 0.0, g: float = PRIOR_SCALE) -> float:
    """BF_n(mu0) of the module's docstring; 1 below two seeds, infinite when all differences are
    equal and not mu0."""
    n = len(differences)
    if n < 2:
        return 1.0
    mean, squares = _mean_and_squares(differences)
    if squares == 0:
        return 1.0 if mean == mu0 else math.inf
    nu = n - 1
    t2 = n * (mean - mu0) ** 2 / (squares / nu)
    return (1 + n * g) ** -0.5 * ((1 + t2 / nu) / (1 + t2 / (nu * (1 + n * g)))) ** (n / 2)


@dataclass(frozen=True)
class Decision:
    """A comparison after `n` seeds: the mean difference and the confidence sequence's interval
    (running intersection), in the differences' unit, at error rate `alpha`."""

    n: int
    mean: float
    low: float
    high: float
    alpha: float

    @property
    def state(self) -> str:
        """ "ahead" (the interval is above 0), "behind" (below 0) or "open"."""
        return "ahead" if self.low > 0 else "behind" if self.high < 0 else "open"

    @property
    def decided(self) -> bool:
        return self.state != "open"

    def interval(self) -> str:
        if math.isinf(self.low) and math.isinf(self.high):
            return "(-inf, +inf)"
        return f"[{self.low:+.2f}, {self.high:+.2f}]"

    def __str__(self) -> str:
        if self.decided:
            return f"{self.state}, {self.interval()} after {self.n} seeds"
        return f"open after {self.n} seeds, {self.interval()}"


def confidence_sequence(
    differences: Sequence[float], alpha: float, g: float = PRIOR_SCALE
) -> list[tuple[float, float]]:
    """The interval after each seed, in order (running intersection of mean_n +- sd_n / sqrt(n)
    * t*_n); (-inf, inf) until it can say anything."""
    low, high = -math.inf, math.inf
    mean = squares = 0.0
    intervals = []
    for n, x in enumerate(differences, start=1):
        step = x - mean  # Welford, as _mean_and_squares, one seed at a time
        mean += step / n
        squares += step * (x - mean)
        threshold = t_threshold(n, alpha, g)
        if math.isfinite(threshold):
            half = math.sqrt(squares / (n - 1) / n) * threshold
            low, high = max(low, mean - half), min(high, mean + half)
            if low > high:  # the intersection emptied: possible only on a miss (prob. <= alpha)
                low = high = mean
        intervals.append((low, high))
    return intervals


def decide(differences: Sequence[float], alpha: float, g: float = PRIOR_SCALE) -> Decision:
    """The state of a comparison after all of `differences` (in the order they arrived: by seed)."""
    if not differences:
        return Decision(0, math.nan, -math.inf, math.inf, alpha)
    low, high = confidence_sequence(differences, alpha, g)[-1]
    return Decision(len(differences), _mean_and_squares(differences)[0], low, high, alpha)


def first_decision(differences: Sequence[float], alpha: float, g: float = PRIOR_SCALE) -> Decision | None:
    """The decision at the first seed at which the comparison was decided; None if never."""
    for n, (low, high) in enumerate(confidence_sequence(differences, alpha, g), start=1):
        if low > 0 or high < 0:
            return Decision(n, _mean_and_squares(differences[:n])[0], low, high, alpha)
    return None


def claim_alpha(family_alpha: float, inner_ws: int, evaluations: int, fractions: int) -> float:
    """The error rate of one comparison: `family_alpha` split (Bonferroni) over SidAE at every
    inner w against both baselines, at every evaluation and label fraction. Every inner w
    counts, not only the chosen one: the choice is made on validation accuracies of the same
    seeds and may move as seeds arrive, and a split over all candidates keeps the guarantee
    whichever w is chosen, when."""
    return family_alpha / (2 * max(inner_ws, 1) * max(evaluations, 1) * max(fractions, 1))
