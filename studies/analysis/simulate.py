"""The confirmatory w-sweep's whole decision in simulation: its error rate and power, stated in
every note and report, and checked by tests/test_sequential.py.

One replicate plays a study: the pilot seeds give each inner w a validation score (its true mean
plus noise) and the best mean is chosen, as studies/analysis/claim.py chooses; the confirmation
seeds then give the chosen w and both baselines a primary-endpoint score per seed, and the
looks of studies/analysis/sequential.py decide. Scores are in units of the standard deviation
of a per-seed difference (each method's noise has variance 1/2), so an effect of 1.5 is a true
mean difference of 1.5 such standard deviations, whatever the data set's spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studies.analysis.sequential import boundaries, t_statistics

NOISE_SD = np.sqrt(0.5)  # each method's per-seed noise: a difference of two has sd 1
DESIGN_EFFECT = 1.5  # the standardised effect the default plan is sized for (power >= 0.8)


@dataclass(frozen=True)
class Plan:
    """A confirmatory w-sweep's shape: pilot seeds at every w of the grid, then the chosen w and
    both baselines on fresh seeds, tested at `looks` (confirmation seeds so far)."""

    pilot_seeds: int
    inner_ws: int
    looks: tuple[int, ...]
    alpha: float

    @property
    def confirm_seeds(self) -> int:
        return self.looks[-1]


@dataclass(frozen=True)
class Rates:
    holds: float  # the share of replicates that end "holds"
    reversed: float
    mean_seeds: float  # confirmation seeds used on average (fewer than the last look: stopped early)


def simulate(
    plan: Plan, effect: float, others: float | None = None, dae: float = 0.0, reps: int = 20_000, seed: int = 0
) -> Rates:
    """Rates of each verdict when the best inner w is `effect` ahead of SimSiam, the other inner
    w are `others` ahead (default: `effect` too), and the DAE's true mean is `dae` (SimSiam's is
    0). effect 0: no true difference; effect 0 with the DAE far behind: the null on which the
    intersection-union test is least conservative (its "holds" rate is then alpha)."""
    rng = np.random.default_rng(seed)
    means = np.full(plan.inner_ws, effect if others is None else others)
    means[0] = effect
    pilot = means + rng.normal(0, NOISE_SD, (reps, plan.pilot_seeds, plan.inner_ws)).mean(axis=1)
    chosen = means[pilot.argmax(axis=1)]  # the chosen w's true effect, replicate by replicate
    n = plan.confirm_seeds
    sidae = chosen[:, None] + rng.normal(0, NOISE_SD, (reps, n))
    baselines = np.array([dae, 0.0])[None, :, None] + rng.normal(0, NOISE_SD, (reps, 2, n))  # DAE, SimSiam
    differences = sidae[:, None, :] - baselines
    decided = np.zeros(reps, dtype=bool)
    holds, reversed_, seeds_used = (np.zeros(reps, dtype=bool), np.zeros(reps, dtype=bool), np.full(reps, n))
    for k, look in enumerate(plan.looks):
        t = t_statistics(differences[:, :, :look])
        ahead = (t >= boundaries(plan.looks, plan.alpha)[k]).all(axis=1)
        behind = (t <= -boundaries(plan.looks, plan.alpha / 2)[k]).any(axis=1)
        now = ~decided & (ahead | behind)
        holds |= now & ahead
        reversed_ |= now & ~ahead & behind
        seeds_used[now] = look
        decided |= now
    return Rates(float(holds.mean()), float(reversed_.mean()), float(seeds_used.mean()))


def operating_characteristics(plan: Plan, reps: int = 20_000) -> dict[str, float]:
    """What every verdict states about its design: the false "holds" rate (w selection included)
    on the least favourable null (SidAE level with SimSiam, the DAE far behind), the false
    "reversed" rate with no true difference at all, and the power at DESIGN_EFFECT, with every inner w that
    far ahead and with only the best one (the others level with the baselines)."""
    null, alike, one = (
        simulate(plan, 0.0, reps=reps),
        simulate(plan, DESIGN_EFFECT, reps=reps),
        simulate(plan, DESIGN_EFFECT, others=0.0, reps=reps),
    )
    return {
        "false_holds": simulate(plan, 0.0, dae=-10.0, reps=reps).holds,
        "false_reversed": null.reversed,
        "power": alike.holds,
        "power_one_w": one.holds,
        "mean_seeds": alike.mean_seeds,
    }
