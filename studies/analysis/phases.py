"""Where the trials' time went: mean seconds per phase over complete trials, and each phase's
share of the trial time (the user attribute studies.record.PHASE_SECONDS; sidae.timing and
studies.record say what each phase covers)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from optuna.trial import FrozenTrial

from studies.record import PHASE_SECONDS

# In the order a trial runs them; a phase not named here is listed after them.
PHASES = {
    "worker_start": "worker start (process, or reused actor's gap)",
    "data_load": "data load",
    "model_setup": "model set-up",
    "pretrain": "pre-training epochs",
    "monitor": "per-epoch kNN monitor",
    "checkpoint": "per-epoch checkpoint",
    "report": "per-epoch report to Ray Tune",
    "eval_features": "encoding for probes and test kNN",
    "linear_probes": "linear probes",
    "finetune": "fine-tuning",
    "results_file": "results.json",
    "save_files": "grid and weights",
    "other": "other (in the trainable)",
    "storage": "storage and artifacts (driver)",
}
# The compute the study is for: pre-training, the probes (with the encoding they need), fine-tuning.
COMPUTE = ("pretrain", "eval_features", "linear_probes", "finetune")


def timed(trials: Sequence[FrozenTrial]) -> list[dict[str, float]]:
    """The phase seconds of each trial that stored them."""
    return [t.user_attrs[PHASE_SECONDS] for t in trials if t.user_attrs.get(PHASE_SECONDS)]


def mean_phases(trials: Sequence[FrozenTrial]) -> dict[str, float]:
    """Phase -> mean seconds over the trials that stored phases (a phase a trial skipped counts
    0 s for it), in PHASES' order; empty when none did."""
    phases = timed(trials)
    names = [
        *(p for p in PHASES if any(p in t for t in phases)),
        *sorted({p for t in phases for p in t} - PHASES.keys()),
    ]
    return {name: statistics.fmean(t.get(name, 0.0) for t in phases) for name in names}


def compute_share(means: dict[str, float]) -> float:
    """The share of the trial time that is pre-training, probes or fine-tuning (COMPUTE)."""
    total = sum(means.values())
    return sum(means.get(p, 0.0) for p in COMPUTE) / total if total else 0.0


def phase_rows(trials: Sequence[FrozenTrial]) -> list[tuple[str, float, float]]:
    """(phase, mean seconds, share of the mean trial time), then ("total", ...)."""
    means = mean_phases(trials)
    total = sum(means.values())
    return [(p, s, s / total if total else 0.0) for p, s in means.items()] + [("total", total, 1.0)]


def phase_table(trials: Sequence[FrozenTrial]) -> list[str]:
    """A markdown table of phase_rows; empty when no trial stored phases."""
    n = len(timed(trials))
    if not n:
        return []
    lines = ["| phase | what | mean s | share |", "|---|---|---:|---:|"]
    for phase, seconds, share in phase_rows(trials):
        lines.append(f"| {phase} | {PHASES.get(phase, '')} | {seconds:.1f} | {100 * share:.1f} % |")
    share = compute_share(mean_phases(trials))
    return lines + [
        "",
        f"Over {n} complete trial(s). Pre-training, probes (with their encoding) and "
        f"fine-tuning: {100 * share:.1f} % of the trial time.",
    ]


def phase_section(trials: Sequence[FrozenTrial]) -> list[str]:
    """The report's section; empty when no trial stored phases (a study from before they were)."""
    table = phase_table(trials)
    if not table:
        return []
    return [
        "## Where the trials' time went",
        "",
        "Mean seconds per phase over the complete trials, and each phase's share of the trial time "
        "(from the worker's process start, or a reused actor's previous trial, to the driver's "
        "storage writes).",
        "",
        *table,
        "",
    ]
