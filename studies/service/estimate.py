"""The expected time a study run prints before its trials start.

The driver times each kind of trial's steps on its own machine (sidae.estimate): the DAE
(w = 0, no Siamese branch), SimSiam (w = 1, no decoder) and SidAE (both) cost different
amounts, and every SidAE w the same. Trials and the per-seed baseline tasks share the slots: a
round ends when the last slot does, each task taken by the slot that frees first. Workers of a
cluster may be faster or slower than the driver's machine; the progress bar's ETA, from
finished trials, follows.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sidae.allocator import keep_freed_memory
from sidae.config import SidAEConfig
from sidae.data import DataSplits
from sidae.estimate import run_seconds, seed_task_seconds, step_seconds
from sidae.pretraining import cpu_has_amx
from studies.service.trainable import TrialContext, trial_config


def cost_kind(w: float) -> float:
    """The w whose trials stand for w's cost: 0 (DAE), 1 (SimSiam) or 0.5 (any SidAE)."""
    return w if w in (0.0, 1.0) else 0.5


@dataclass(frozen=True)
class Expected:
    """Seconds of one trial by cost kind, and of one seed's baseline and controls; before a
    confirmatory w-sweep's pilot, also the confirmation's (its fresh seeds' trials fine-tune and
    their tasks run the supervised baseline, where the pilot's do not)."""

    trial: Mapping[float, float]
    seed_task: float
    confirmation: Expected | None = None

    def round_seconds(self, ws: Sequence[float], seed_tasks: int, slots: int) -> float:
        """How long trials at `ws` and `seed_tasks` baseline tasks take on `slots` slots: the
        baseline tasks (submitted first), then the trials in order, each on the slot that frees
        first. A round is never shorter than its longest task."""
        ends = [0.0] * max(1, slots)
        for seconds in [self.seed_task] * seed_tasks + [self.trial[cost_kind(w)] for w in ws]:
            heapq.heapreplace(ends, ends[0] + seconds)  # ends[0]: the slot that frees first
        return max(ends)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Time with the trials' thread count, not the driver's, and their allocator settings (those
    stay: the driver loses nothing by keeping freed memory too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    keep_freed_memory()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_trials(
    ctx: TrialContext,
    data: DataSplits,
    points: Sequence[Mapping[str, Any]],
    ws: Sequence[float],
    fresh_seed: int | None = None,
) -> Expected:
    """Time a trial of each cost kind among `ws` (at the first of `points`, else the study's
    base configuration) on this machine, a few seconds each; with a confirmatory w-sweep's first
    `fresh_seed`, also what the confirmation's trials and tasks cost (Expected.confirmation)."""
    base = dict(points[0]) if points else {}
    stages = {"round": base} | ({"fresh": {**base, "seed": fresh_seed}} if fresh_seed is not None else {})
    trial: dict[str, dict[float, float]] = {stage: {} for stage in stages}
    seed_task: dict[str, float] = {}
    fits = None  # the logistic fits cost the same for every kind: timed with the first
    with _threads(ctx.threads):
        for kind in sorted({cost_kind(w) for w in ws}):
            cfgs = {stage: trial_config({**point, "w": kind}, ctx) for stage, point in stages.items()}
            # timed once, on a config that fine-tunes if either does: its steps time fine-tuning
            steps = step_seconds(max(cfgs.values(), key=lambda cfg: cfg.eval.finetune), data, fits)
            fits = steps.fit, steps.fit_pixels
            for stage, cfg in cfgs.items():
                trial[stage][kind] = run_seconds(cfg, data, steps)
                seed_task[stage] = seed_task_seconds(cfg, data, steps)
    confirmation = Expected(trial["fresh"], seed_task["fresh"]) if "fresh" in stages else None
    return Expected(trial["round"], seed_task["round"], confirmation)


def expected_lines(
    expected: Expected, ws: Sequence[float], seed_tasks: int, slots: int, confirmation_looks: Sequence[int] = ()
) -> list[str]:
    """What a round of trials at `ws` and `seed_tasks` baseline tasks will take on `slots`
    slots; with a confirmatory w-sweep's looks (before its pilot), what its confirmation will."""
    tasks = f" and the baseline and controls of {seed_tasks} seed(s)" if seed_tasks else ""
    lines = [
        f"expected: about {duration(expected.round_seconds(ws, seed_tasks, slots))} for {len(ws)} trial(s){tasks}, "
        f"{slots} at a time (each kind of step timed on this machine; the bar's ETA follows once a "
        "trial is done)"
    ]
    if confirmation_looks:
        # each fresh seed runs the chosen w (a SidAE), the DAE and SimSiam, and its baseline task
        first, last = confirmation_looks[0], confirmation_looks[-1]
        confirmation = expected.confirmation or expected
        seconds = {n: confirmation.round_seconds([0.5, 0.0, 1.0] * n, n, slots) for n in (first, last)}
        lines.append(f"then the confirmation: {3 * first} trials, about {duration(seconds[first])}")
        if last != first:
            lines[-1] += f" ({3 * last}, about {duration(seconds[last])}, if it needs every look)"
    return lines


def bf16_hint(cfg: SidAEConfig, gpus_per_trial: float) -> list[str]:
    """One line suggesting cpu_bf16 where CPU trials run float32 on a CPU with AMX."""
    if gpus_per_trial > 0 or cfg.cpu_bf16 or not cpu_has_amx():
        return []
    return [
        "this machine's CPU has AMX (bfloat16 matrix units): a study with --set cpu_bf16=True pre-trains "
        'about twice as fast (benchmarks/README.md, "bfloat16 on the CPU")'
    ]


def duration(seconds: float) -> str:
    """'40 s', '12 min', '1 h 50 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
