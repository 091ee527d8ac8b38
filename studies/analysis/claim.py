"""Does the paper's claim hold in a w-sweep? The confirmatory verdict and the descriptive rows.

A confirmatory w-sweep declares its design before it runs (`Design`, stored on the study):
1. pilot seeds run every w of the grid; the w in (0, 1) with the best mean validation objective
   on them is chosen (the test set plays no part), and stored once chosen;
2. the chosen w, the DAE (w = 0) and SimSiam (w = 1) run on fresh seeds that played no part in
   the choice, looked at after n_1 < ... < n_K of them;
3. one primary endpoint, the test linear probe at the primary label fraction, decides by paired
   one-sided t-tests against both baselines (studies/analysis/sequential.py): holds, reversed
   or not shown. Every other evaluation and fraction is descriptive: a mean with a 95 %
   t interval, not a claim.
The learning gate: a method that does not beat the untrained encoder (the same initial weights,
probed by the same code) on the confirmation seeds did not learn at this budget, and a verdict
between methods that did not learn is void: it names no winner.

A sweep whose points the user named (--w-grid, --seeds) has no design: its rows are descriptive
and, since w is chosen on validation of the same seeds, SidAE's margins there are optimistic.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import optuna
from optuna.trial import FrozenTrial
from scipy import stats

from studies.analysis.controls import control_scores
from studies.analysis.sequential import ALPHA, HOLDS, OPEN, REVERSED, PairedTest, paired_test, verdict
from studies.analysis.summary import DAE, SIMSIAM, complete_trials, fraction_label, method_name, trial_scores

EVALUATIONS = {"test_linear": "linear probe", "test_finetune": "fine-tune"}  # user attr -> name, as reported
PRIMARY_ATTR = "test_linear"  # the primary endpoint's evaluation
DESIGN_ATTR = "design"  # study attribute: Design.to_attr()
CHOSEN_ATTR = "chosen_w"  # study attribute: the w the pilot chose, fixed once stored
VOID = "void"
NO_LEARNING = "pre-training did not learn at this budget: the comparison is void"


@dataclass(frozen=True)
class Design:
    """A confirmatory w-sweep's plan, declared before the run."""

    w_grid: tuple[float, ...]
    pilot_seeds: tuple[int, ...]
    confirm_seeds: tuple[int, ...]  # fresh seeds, in the order they run
    looks: tuple[int, ...]  # confirmation seeds at each look; the last is len(confirm_seeds)
    primary_fraction: float
    alpha: float = ALPHA

    def to_attr(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_attr(cls, attr: Mapping[str, object] | None) -> Design | None:
        if not attr:
            return None
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in attr.items()})  # type: ignore[arg-type]

    def pilot_points(self) -> list[dict[str, float]]:
        """Every w of the grid on every pilot seed (seed-major, as the grid study queues them)."""
        return [{"seed": s, "w": w} for s in self.pilot_seeds for w in self.w_grid]

    def look_points(self, w: float, look: int) -> list[dict[str, float]]:
        """The chosen w and both baselines on the confirmation seeds of look number `look`."""
        return [{"seed": s, "w": x} for s in self.confirm_seeds[: self.looks[look]] for x in (w, DAE, SIMSIAM)]

    def describe(self) -> str:
        looks = ", ".join(map(str, self.looks))
        return (
            f"pilot: every w of {', '.join(f'{w:g}' for w in self.w_grid)} on seeds "
            f"{', '.join(map(str, self.pilot_seeds))} choose w on validation; confirmation: the chosen w, the DAE and "
            f"SimSiam on fresh seeds {', '.join(map(str, self.confirm_seeds))}, looked at after {looks} of them; "
            f"primary endpoint: test linear probe at {fraction_label(self.primary_fraction)} labels, paired one-sided "
            f"t-tests against both baselines at error {self.alpha:g} "
            + ("(fixed n)" if len(self.looks) == 1 else "(O'Brien-Fleming-type alpha spending over the looks)")
        )


Table = dict[float, dict[int, FrozenTrial]]  # w -> seed -> trial


def by_w_and_seed(trials: list[FrozenTrial]) -> Table:
    """Complete trials of a w-sweep, indexed by w then seed (the later trial where a point repeats)."""
    table: Table = {}
    for trial in sorted(trials, key=lambda t: t.number):
        table.setdefault(float(trial.params["w"]), {})[int(trial.params["seed"])] = trial
    return table


def chosen_w(table: Table, seeds: Sequence[int] | None = None) -> float | None:
    """The w strictly between the baselines with the best mean validation objective over `seeds`
    (default: all); None if no inner w has all of them."""
    inner = {}
    for w, runs in table.items():
        picked = [runs[s] for s in (seeds if seeds is not None else runs) if s in runs]
        if DAE < w < SIMSIAM and picked and (seeds is None or len(picked) == len(seeds)):
            inner[w] = statistics.fmean(t.value for t in picked)
    return max(inner, key=inner.__getitem__) if inner else None


def differences(table: Table, a: float, b: float, attr: str, fraction: float, seeds: Sequence[int]) -> list[float]:
    """a minus b in points at `fraction` of user attribute `attr`, seed by seed over `seeds`
    that both have (paired: the same labelled subsets and probe seeds)."""
    out = []
    for s in seeds:
        if s in table.get(a, {}) and s in table.get(b, {}):
            x, y = trial_scores(table[a][s], attr), trial_scores(table[b][s], attr)
            if fraction in x and fraction in y:
                out.append(100 * (x[fraction] - y[fraction]))
    return out


@dataclass(frozen=True)
class Interval:
    """A descriptive mean difference (points) with its 95 % t interval over n seeds."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    def bounds(self) -> tuple[float, float]:
        n = len(self.values)
        if n < 2:
            return -math.inf, math.inf
        half = float(stats.t.isf(0.025, n - 1)) * statistics.stdev(self.values) / math.sqrt(n)
        return self.mean - half, self.mean + half

    def __str__(self) -> str:
        low, high = self.bounds()
        spread = f" [{low:+.2f}, {high:+.2f}]" if len(self.values) > 1 else ""
        return f"{self.mean:+.2f}{spread} (n={len(self.values)})"


@dataclass(frozen=True)
class Learning:
    """A method against the untrained encoder on the same seeds at the primary endpoint."""

    method: str
    difference: Interval

    @property
    def learned(self) -> bool:
        """Ahead of the untrained encoder by a one-sided paired t-test at ALPHA."""
        values = self.difference.values
        if len(values) < 2:
            return False
        sd = statistics.stdev(values)
        if sd == 0:
            return self.difference.mean > 0
        t = self.difference.mean / (sd / math.sqrt(len(values)))
        return t >= float(stats.t.isf(ALPHA, len(values) - 1))


def over_control(
    table: Table, control: Mapping[int, Mapping[float, float]], w: float, fraction: float, seeds: Sequence[int]
) -> Interval | None:
    """w's test linear probe minus a control's (studies.analysis.controls) at `fraction`, in
    points, seed by seed over `seeds` that both have (paired: the same labels and probe seeds)."""
    values = tuple(
        100 * (trial_scores(table[w][s], PRIMARY_ATTR)[fraction] - control[s][fraction])
        for s in seeds
        if s in table.get(w, {})
        and s in control
        and fraction in control[s]
        and fraction in trial_scores(table[w][s], PRIMARY_ATTR)
    )
    return Interval(values) if values else None


def learning(
    table: Table,
    untrained: Mapping[int, Mapping[float, float]],
    ws: Sequence[float],
    fraction: float,
    seeds: Sequence[int],
) -> list[Learning]:
    """Each w of `ws` against the untrained encoder at `fraction` of the test linear probe."""
    return [
        Learning(method_name(w), margin)
        for w in ws
        if (margin := over_control(table, untrained, w, fraction, seeds)) is not None
    ]


@dataclass(frozen=True)
class PrimaryVerdict:
    """The confirmatory answer: the chosen w against both baselines at the look reached."""

    design: Design
    w: float
    vs_dae: PairedTest
    vs_simsiam: PairedTest
    tested: str  # holds, reversed, not shown, open: what the tests say
    gate: list[Learning]  # the three methods against the untrained encoder; empty: no controls

    @property
    def void(self) -> bool:
        return any(not g.learned for g in self.gate)

    @property
    def word(self) -> str:
        """The verdict as every report prints it: void when a method did not learn."""
        return VOID if self.void and self.tested != OPEN else self.tested

    def summary(self) -> str:
        """One line for the terminal and the note."""
        design = self.design
        head = (
            f"primary verdict (SidAE at w={self.w:g}, chosen on pilot seeds, test linear probe at "
            f"{fraction_label(design.primary_fraction)} labels, {self.vs_dae.n} fresh seeds): {self.word.upper()}"
        )
        if self.word == VOID:
            failed = ", ".join(g.method for g in self.gate if not g.learned)
            head += f" ({NO_LEARNING}; not ahead of the untrained encoder: {failed})"
        return (
            f"{head}; SidAE − DAE {self.vs_dae}; SidAE − SimSiam {self.vs_simsiam} (points, {_interval_name(design)})"
        )


def _interval_name(design: Design) -> str:
    level = f"{100 * (1 - 2 * design.alpha):g} %"
    return f"{level} interval" if len(design.looks) == 1 else f"{level} repeated confidence interval"


def primary_verdict(
    trials: list[FrozenTrial], design: Design, w: float | None, untrained: Mapping[int, Mapping[float, float]]
) -> PrimaryVerdict | None:
    """The verdict at the first look that decides, else at the last look complete; None before
    the first look is complete (or before w is chosen)."""
    if w is None:
        return None
    table = by_w_and_seed(trials)
    found = None
    for k, n in enumerate(design.looks):
        seeds = design.confirm_seeds[:n]
        pair = [differences(table, w, b, PRIMARY_ATTR, design.primary_fraction, seeds) for b in (DAE, SIMSIAM)]
        if any(len(d) < n for d in pair):
            break
        vs_dae, vs_simsiam = (paired_test(d, design.looks, design.alpha) for d in pair)
        tested = verdict(vs_dae, vs_simsiam, last_look=k == len(design.looks) - 1)
        gate = learning(table, untrained, (w, DAE, SIMSIAM), design.primary_fraction, seeds)
        found = PrimaryVerdict(design, w, vs_dae, vs_simsiam, tested, gate if len(gate) == 3 else [])
        if tested in (HOLDS, REVERSED):
            break
    return found


@dataclass(frozen=True)
class ClaimRow:
    """One evaluation at one label fraction, descriptive: SidAE against each baseline, and
    SimSiam against the DAE."""

    evaluation: str
    fraction: float
    vs_dae: Interval
    vs_simsiam: Interval
    siamese: Interval


def claim_rows(
    trials: list[FrozenTrial], evaluations: Mapping[str, str], w: float | None, seeds: Sequence[int] | None = None
) -> list[ClaimRow]:
    """A descriptive row per evaluation (user attr -> name) and label fraction, SidAE at `w`,
    on `seeds` (default: every seed); none unless both baselines and w are complete."""
    table = by_w_and_seed(trials)
    if w is None or w not in table or DAE not in table or SIMSIAM not in table:
        return []
    seeds = sorted(table[w]) if seeds is None else seeds
    rows = []
    for attr, name in evaluations.items():
        for fraction in sorted({f for t in table[w].values() for f in trial_scores(t, attr)}):
            pairs = [
                differences(table, a, b, attr, fraction, seeds) for a, b in ((w, DAE), (w, SIMSIAM), (SIMSIAM, DAE))
            ]
            if all(pairs):
                rows.append(ClaimRow(name, fraction, *(Interval(tuple(p)) for p in pairs)))
    return rows


def study_verdict(study: optuna.Study) -> tuple[Design | None, float | None, PrimaryVerdict | None]:
    """A stored study's design, chosen w and primary verdict (None for a descriptive sweep or
    before the first look). A descriptive sweep's w is chosen on all its seeds."""
    trials = complete_trials(study)
    design = Design.from_attr(study.user_attrs.get(DESIGN_ATTR))
    if design is None:
        return None, chosen_w(by_w_and_seed(trials)), None
    stored = study.user_attrs.get(CHOSEN_ATTR)
    w = float(stored) if stored is not None else None
    return design, w, primary_verdict(trials, design, w, control_scores(study, "untrained"))
