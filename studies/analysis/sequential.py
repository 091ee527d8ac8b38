"""The confirmatory test of a w-sweep: paired one-sided t-tests on fresh seeds, at one look
(fixed n) or a few (group-sequential), and the verdict they allow.

The endpoint is one number per confirmation seed and method (the test linear probe at the
primary label fraction), paired by seed: trials of one seed share their labelled subsets and
the seeds of their probes. SidAE at the chosen w is compared with each baseline (the DAE,
SimSiam) through the per-seed differences d = SidAE - baseline:

- **holds**: both one-sided tests of "SidAE ahead" reject at level alpha. Requiring both is an
  intersection-union test (R. L. Berger, "Multiparameter hypothesis testing and acceptance
  sampling", Technometrics 24(4), 1982): its error rate is at most alpha with no correction,
  since a false "holds" needs the test of the baseline that is truly level or ahead to err.
- **reversed**: a one-sided test of "the baseline ahead" rejects at alpha / 2 for either
  baseline (Bonferroni over the two), so a false "reversed" is at most alpha too.
- **not shown**: neither, at the last look.

Looks: at n_1 < ... < n_K confirmation seeds. With one look it is the plain paired t-test.
With several, alpha is spent over them by the O'Brien-Fleming-type function of Lan and DeMets
(K. K. G. Lan, D. L. DeMets, "Discrete sequential boundaries for clinical trials", Biometrika
70(3), 1983), alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t = n_k / n_K: early looks spend
almost nothing, so the last look keeps nearly the fixed-n power, and a large effect stops early.
The boundaries are placed on the t-statistics themselves (`boundaries`), not on a normal
approximation of them: with 4 to 10 seeds the usual conversion of z-boundaries to t by their
nominal tail probability errs 5.6 % of the time at a stated 5 % (simulated, looks at 4, 6, 8).
tests/test_sequential.py checks the error rates in simulation.

Assumption, stated: per-seed differences are independent and roughly normal. A seed on which a
method collapses breaks it; the report shows every seed's numbers so that a reader can see it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # one-sided error rate of "holds" (and, separately, of "reversed")
HOLDS, REVERSED, NOT_SHOWN, OPEN = "holds", "reversed", "not shown", "open"
_PATHS = 400_000  # null draws that place group-sequential boundaries (quantiles to about 2 %)


def spent(t: float, alpha: float) -> float:
    """The O'Brien-Fleming-type alpha-spending function: alpha spent by information fraction t."""
    return float(2 - 2 * stats.norm.cdf(stats.norm.isf(alpha / 2) / math.sqrt(t)))


@functools.cache
def boundaries(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """The t at which a one-sided paired test rejects at each look (n_k seeds).

    One look: the t quantile, exact. Several: found look by look so that the chance of crossing
    first at look k, with no true difference, is what the spending function allots it. Under
    that null the joint law of the looks' t-statistics depends on nothing unknown (not on the
    spread of the differences), so it is drawn once, _PATHS times from a fixed seed, and each
    boundary is the matching quantile of the paths still running: exact up to that draw."""
    if len(looks) == 1:
        return (float(stats.t.isf(alpha, looks[0] - 1)),)
    paths = np.random.default_rng(0).standard_normal((_PATHS, looks[-1]))
    running = np.ones(_PATHS, dtype=bool)
    found, previous = [], 0.0
    for n in looks:
        t = t_statistics(paths[:, :n])
        allotted = spent(n / looks[-1], alpha) - previous
        crossing = int(round(allotted * _PATHS))  # paths that must cross first here
        c = float(np.sort(t[running])[::-1][crossing]) if crossing else math.inf
        found.append(c)
        running &= t < c
        previous += allotted
    return tuple(found)


@dataclass(frozen=True)
class PairedTest:
    """SidAE minus one baseline on n seeds: mean and standard error of the differences (points),
    with the boundaries of the look it was taken at."""

    n: int
    mean: float
    se: float
    ahead_at: float  # t at which "SidAE ahead" rejects (at alpha)
    behind_at: float  # t at which "baseline ahead" rejects (at alpha / 2)

    @property
    def t(self) -> float:
        if self.se == 0:
            return math.copysign(math.inf, self.mean) if self.mean else 0.0
        return self.mean / self.se

    @property
    def ahead(self) -> bool:
        return self.t >= self.ahead_at

    @property
    def behind(self) -> bool:
        return self.t <= -self.behind_at

    def interval(self) -> tuple[float, float]:
        """The interval whose lower end is above 0 exactly when `ahead`: mean +- boundary x se
        (a 1 - 2 alpha interval at one look; a repeated confidence interval at several)."""
        half = self.ahead_at * self.se
        return self.mean - half, self.mean + half

    def __str__(self) -> str:
        low, high = self.interval()
        return f"{self.mean:+.2f} [{low:+.2f}, {high:+.2f}] (t = {self.t:.2f}, n = {self.n})"


def paired_test(differences: Sequence[float], looks: tuple[int, ...], alpha: float) -> PairedTest:
    """The test at the last look reached by `differences` (len must be one of `looks`)."""
    n = len(differences)
    k = looks.index(n)
    values = np.asarray(differences, dtype=float)
    se = float(values.std(ddof=1) / math.sqrt(n))
    return PairedTest(n, float(values.mean()), se, boundaries(looks, alpha)[k], boundaries(looks, alpha / 2)[k])


def verdict(vs_dae: PairedTest, vs_simsiam: PairedTest, last_look: bool) -> str:
    """holds / reversed at any look; not shown at the last; open before it."""
    if vs_dae.ahead and vs_simsiam.ahead:
        return HOLDS
    if vs_dae.behind or vs_simsiam.behind:
        return REVERSED
    return NOT_SHOWN if last_look else OPEN


def t_statistics(differences: np.ndarray) -> np.ndarray:
    """Paired t along the last axis, vectorised for simulation (inf where all differences agree)."""
    n = differences.shape[-1]
    sd = differences.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            sd > 0, differences.mean(axis=-1) / (sd / math.sqrt(n)), np.sign(differences.mean(axis=-1)) * np.inf
        )
