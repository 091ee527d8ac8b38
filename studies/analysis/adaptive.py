"""Seeds where the verdict is still open: the plan of an adaptive w-sweep.

After a first round of seeds at every w, each comparison the verdict uses (SidAE at the
validation-chosen w against the DAE and against SimSiam, per evaluation and label fraction:
studies/analysis/claim.py) is judged by the anytime-valid rule of studies/analysis/sequential.py.
Further seeds go only to the grid points of open comparisons (the chosen w, and each baseline
it is not yet decided against), one seed at a time, until every comparison is decided or the
seed budget is spent. The choice of w stays on validation data; the error split counts every
inner w (sequential.claim_alpha), so it holds wherever the choice moves.

Everything here is a pure function of the study's complete trials, so a driver that stops
anywhere and starts again plans the same next seeds (resume needs no state of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from studies.analysis.claim import DAE, SIMSIAM, by_w_and_seed, claim_rows
from studies.analysis.sequential import ALPHA, Decision, claim_alpha, decide
from studies.analysis.summary import fraction_label, method_name

ADAPTIVE_ATTR = "until_decided"  # study attribute: {"seeds": the seed budget, "w_grid": the grid}


@dataclass(frozen=True)
class Comparison:
    evaluation: str
    fraction: float
    baseline: float  # DAE or SIMSIAM
    decision: Decision

    def __str__(self) -> str:
        return f"{self.evaluation} {fraction_label(self.fraction)} vs {method_name(self.baseline)}: {self.decision}"


@dataclass(frozen=True)
class Plan:
    """Where an adaptive w-sweep stands and what it runs next."""

    w: float | None  # the chosen w (None before any inner w is complete)
    comparisons: list[Comparison]
    next_points: list[tuple[int, float]]  # (seed, w) to run next; empty when decided or spent
    trials_done: int  # complete trials of grid points
    full_budget: int  # trials of the same grid with every seed of the budget everywhere

    @property
    def open(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.decision.decided]

    @property
    def finished(self) -> bool:
        return not self.next_points

    def summary(self) -> str:
        """The terminal line: comparisons decided (which way, interval) or open, and the trials
        run against the full budget."""
        if self.w is None or not self.comparisons:
            return "until decided: nothing to compare yet"
        decided = len(self.comparisons) - len(self.open)
        head = (
            f"until decided (SidAE at w={self.w:g}, family error {ALPHA:g}): {decided} of "
            f"{len(self.comparisons)} comparisons decided"
        )
        trials = f"{self.trials_done} trials of the {self.full_budget} a full-budget run would take"
        return "; ".join([head, *(str(c) for c in self.comparisons), trials])


def plan(
    trials: list[FrozenTrial],
    evaluations: dict[str, str],
    ws: Sequence[float],
    seeds: Sequence[int],
    alpha: float = ALPHA,
) -> Plan:
    """The plan for a w-sweep over `ws` with the seed budget `seeds` (in the order they are run;
    the first round is assumed run), from its complete `trials`."""
    table = by_w_and_seed([t for t in trials if float(t.params["w"]) in ws and int(t.params["seed"]) in seeds])
    done = sum(len(runs) for runs in table.values())
    full = len(ws) * len(seeds)
    w, rows = claim_rows(trials, evaluations)
    if w is None or not rows:
        return Plan(w, [], [], done, full)
    fractions = {r.fraction for r in rows}
    per = claim_alpha(alpha, sum(DAE < x < SIMSIAM for x in ws), len({r.evaluation for r in rows}), len(fractions))
    comparisons = [
        Comparison(r.evaluation, r.fraction, baseline, decide(m.differences, per))
        for r in rows
        for baseline, m in ((DAE, r.vs_dae), (SIMSIAM, r.vs_simsiam))
    ]
    open_baselines = sorted({c.baseline for c in comparisons if not c.decision.decided})
    if not open_baselines:
        return Plan(w, comparisons, [], done, full)
    have = table.get(w, {})
    missing = [s for s in seeds if s not in have]
    if not missing:  # budget spent at the chosen w
        return Plan(w, comparisons, [], done, full)
    wanted = [s for s in seeds if s in have] + missing[:1]  # pairs completed, and one more seed
    points = [(s, x) for s in wanted for x in (w, *open_baselines) if s not in table.get(x, {})]
    return Plan(w, comparisons, points, done, full)


def decision_lines(
    trials: list[FrozenTrial], evaluations: dict[str, str], ws: Sequence[float], seeds: Sequence[int]
) -> list[str]:
    """The report's section for an adaptive w-sweep: each comparison decided or open."""
    p = plan(trials, evaluations, ws, seeds)
    if p.w is None or not p.comparisons:
        return []
    per = p.comparisons[0].decision.alpha
    lines = [
        "### Decided or open (adaptive seeds)",
        "",
        f"Seeds were added only where a comparison was open, up to {len(seeds)} seeds. Each interval is an "
        f"anytime-valid confidence sequence for the mean per-seed difference in points (SidAE at w = {p.w:g} "
        f"minus the baseline; studies/analysis/sequential.py: normal differences assumed), at error "
        f"{per:.3g} per comparison, {ALPHA:g} for all of them together; *decided* once it excludes 0.",
        "",
        f"| evaluation | SidAE − {method_name(DAE)} | SidAE − {method_name(SIMSIAM)} |",
        "|---|---|---|",
    ]
    by_row: dict[tuple[str, float], dict[float, Comparison]] = {}
    for c in p.comparisons:
        by_row.setdefault((c.evaluation, c.fraction), {})[c.baseline] = c
    for (evaluation, fraction), pair in by_row.items():
        lines.append(
            f"| {evaluation}, {fraction_label(fraction)} labels | {pair[DAE].decision} | {pair[SIMSIAM].decision} |"
        )
    state = "finished" if p.finished else "still running"
    lines += [
        "",
        f"Trials: {p.trials_done} of the {p.full_budget} that {len(seeds)} seeds at every w would take "
        f"({p.full_budget - p.trials_done} not run; {state}).",
        "",
    ]
    return lines
