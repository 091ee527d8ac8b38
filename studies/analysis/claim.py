"""Does the paper's claim hold in a w-sweep? SidAE at one w against SimSiam (w = 1) and the DAE
(w = 0), per evaluation and label fraction, paired by seed.

The w is chosen on validation: the one in (0, 1) with the best mean objective (the validation
linear probe) over seeds. Picking the w with the best *test* mean per column would flatter SidAE
(six tries at beating each baseline), so the test set plays no part in the choice.

Trials with the same seed share their labelled subsets and the seeds of probes and fine-tuning,
so the comparison is seed by seed: a margin is the mean of the per-seed differences, its spread
their standard deviation, and its wins the seeds on which SidAE is ahead.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from optuna.trial import FrozenTrial

from studies.analysis.summary import DAE, SIMSIAM, fraction_label, method_name, trial_scores

EVALUATIONS = {"test_linear": "linear probe", "test_finetune": "fine-tune"}  # user attr -> name, as reported


@dataclass(frozen=True)
class Margin:
    """Accuracy differences (points of percent) between two methods, one per seed both ran."""

    differences: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences)

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.differences)

    def __str__(self) -> str:
        n = len(self.differences)
        spread = f" ± {statistics.stdev(self.differences):.2f}" if n > 1 else ""
        return f"{self.mean:+.2f}{spread} ({self.wins}/{n})"


def by_w_and_seed(trials: list[FrozenTrial]) -> dict[float, dict[int, FrozenTrial]]:
    """Complete trials of a w-sweep, indexed by w then seed (the later trial where a point repeats)."""
    table: dict[float, dict[int, FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        table.setdefault(float(trial.params["w"]), {})[int(trial.params["seed"])] = trial
    return table


def chosen_w(table: dict[float, dict[int, FrozenTrial]]) -> float | None:
    """The w strictly between the baselines with the best mean validation objective; None if none ran."""
    inner = {w: statistics.fmean(t.value for t in runs.values()) for w, runs in table.items() if DAE < w < SIMSIAM}
    return max(inner, key=inner.__getitem__) if inner else None


def margin(a: dict[int, FrozenTrial], b: dict[int, FrozenTrial], attr: str, fraction: float) -> Margin | None:
    """a minus b in user attribute `attr` at `fraction`, on the seeds both have; None if none."""
    pairs = [(trial_scores(a[s], attr), trial_scores(b[s], attr)) for s in sorted(a.keys() & b.keys())]
    differences = tuple(100 * (x[fraction] - y[fraction]) for x, y in pairs if fraction in x and fraction in y)
    return Margin(differences) if differences else None


def verdict(vs_dae: Margin, vs_simsiam: Margin) -> str:
    """ "holds" when SidAE is ahead of both baselines on every seed, "no" when it is behind either
    on average, "unclear" in between (ahead on average, not on every seed)."""
    if min(vs_dae.mean, vs_simsiam.mean) <= 0:
        return "no"
    unanimous = all(m.wins == len(m.differences) for m in (vs_dae, vs_simsiam))
    return "holds" if unanimous else "unclear"


@dataclass(frozen=True)
class ClaimRow:
    """One evaluation at one label fraction: SidAE against each baseline, and SimSiam against the DAE."""

    evaluation: str
    fraction: float
    vs_dae: Margin
    vs_simsiam: Margin
    siamese: Margin

    @property
    def verdict(self) -> str:
        return verdict(self.vs_dae, self.vs_simsiam)


def claim_rows(trials: list[FrozenTrial], evaluations: dict[str, str]) -> tuple[float | None, list[ClaimRow]]:
    """The chosen w and a row per evaluation (user attr -> name) and label fraction; no rows
    unless both baselines and some w in (0, 1) are complete."""
    table = by_w_and_seed(trials)
    w = chosen_w(table)
    if w is None or DAE not in table or SIMSIAM not in table:
        return w, []
    rows = []
    for attr, name in evaluations.items():
        fractions = sorted({f for t in table[w].values() for f in trial_scores(t, attr)})
        for fraction in fractions:
            vs_dae, vs_simsiam = (margin(table[w], table[b], attr, fraction) for b in (DAE, SIMSIAM))
            siamese = margin(table[SIMSIAM], table[DAE], attr, fraction)
            if vs_dae and vs_simsiam and siamese:
                rows.append(ClaimRow(name, fraction, vs_dae, vs_simsiam, siamese))
    return w, rows


def claim_lines(trials: list[FrozenTrial], evaluations: dict[str, str]) -> list[str]:
    """The report's markdown section (empty when there is nothing to compare)."""
    w, rows = claim_rows(trials, evaluations)
    if not rows:
        return []
    sidae, dae, simsiam = (method_name(x) for x in (w, DAE, SIMSIAM))
    return [
        "### Does the claim hold?",
        "",
        f"SidAE at w = {w:g}, the w in (0, 1) with the best mean validation objective (the test set plays no "
        "part in the choice), against each baseline: test accuracy difference in points, mean ± std of the "
        "per-seed differences (seeds on which SidAE is ahead / seeds). The claim *holds* where SidAE is ahead "
        "of both on every seed, is *unclear* where it is ahead on average only, and does not hold (*no*) where "
        "it is behind either on average. The last column asks whether the Siamese part matters more: "
        "SimSiam minus the DAE.",
        "",
        f"| evaluation | {sidae} − {dae} | {sidae} − {simsiam} | claim | {simsiam} − {dae} |",
        "|---|---:|---:|---|---:|",
        *(
            f"| {r.evaluation}, {fraction_label(r.fraction)} labels | {r.vs_dae} | {r.vs_simsiam} | {r.verdict} | "
            f"{r.siamese} |"
            for r in rows
        ),
        "",
    ]


def claim_summary(trials: list[FrozenTrial], attr: str = "test_linear") -> str | None:
    """One line for the terminal: the verdict per label fraction of one evaluation; None when
    there is nothing to compare."""
    w, rows = claim_rows(trials, {attr: attr})
    if not rows:
        return None
    verdicts = ", ".join(f"{fraction_label(r.fraction)} {r.verdict}" for r in rows)
    return (
        f"paper's claim, SidAE at w={w:g} (chosen on validation) against the DAE and SimSiam, "
        f"test linear probe: {verdicts}"
    )
