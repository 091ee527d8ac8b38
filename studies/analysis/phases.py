"""Where the trials' time went: mean seconds per phase over complete trials, and each phase's
share of the trial time (the user attribute studies.record.PHASE_SECONDS; sidae.timing and
studies.record say what each phase covers); and what they ran on: the torch device and the GPU
ids Ray gave each trial and each seed's baseline task, per Ray node (so that a GPU packed too
tightly, or a trial that fell back to the CPU, shows)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial

from studies.record import GPU_IDS, PHASE_SECONDS

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


def placement(attrs: Mapping[str, Any]) -> str:
    """ "cpu on node 1a2b3c4d, GPU 0" from a trial's user attributes or a seed task's record."""
    gpus = attrs.get(GPU_IDS)
    given = "GPU ids not recorded" if gpus is None else f"GPU {','.join(gpus)}" if gpus else "no GPU"
    return f"{attrs.get('device', '?')} on node {str(attrs.get('ray_node_id', '?'))[:8]}, {given}"


def placement_lines(
    trials: Sequence[FrozenTrial], seed_tasks: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """One bullet per (device, Ray node, GPU ids) with its number of trials, then one per seed
    task (studies.record.SEED_TASKS_ATTR); empty when none recorded a device."""
    counts = Counter(placement(t.user_attrs) for t in trials if "device" in t.user_attrs)
    lines = [f"- {where}: {n} trial(s)" for where, n in sorted(counts.items())]
    lines += [
        f"- {placement(task)}: seed {seed}'s baseline and controls" for seed, task in sorted((seed_tasks or {}).items())
    ]
    if not lines:
        return []
    return ["Where they ran (torch device, Ray node, the GPU ids Ray gave):", "", *lines]


def phase_section(
    trials: Sequence[FrozenTrial], seed_tasks: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """The report's section; empty when no trial stored phases (a study from before they were).
    seed_tasks: the study's SEED_TASKS_ATTR, listed with the trials' devices."""
    table = phase_table(trials)
    if not table:
        return []
    where = placement_lines(trials, seed_tasks)
    return [
        "## Where the trials' time went",
        "",
        "Mean seconds per phase over the complete trials, and each phase's share of the trial time "
        "(from the worker's process start, or a reused actor's previous trial, to the driver's "
        "storage writes).",
        "",
        *table,
        "",
        *(where + [""] if where else []),
    ]
