"""What a study's trials are measured against, computed once per seed: they depend on neither w
nor the noise or augmentation strengths searched.

- The supervised baseline: the backbone fine-tuned from a random initialisation on the same
  labels, steps and seeds as the trials' fine-tuning (only when they fine-tune). Kept as the
  study user attribute `supervised_finetune` {seed: {fraction: accuracy}}.
- The controls (sidae.controls): the trials' linear probe on the untrained encoder at the
  seed's initial weights and on raw pixels (whenever the trials probe, so also in the `smoke`
  budget). Kept as `controls` {seed: {"untrained": {fraction: accuracy}, "pixels": {...}}}.

They run where the trials run: one Ray task per seed, submitted before the trials so that it
runs beside them where the cluster has room, never on the driver. A task with the supervised
baseline (it trains) takes a trial's resources, so a GPU share in the `gpu` budget; a task of
controls alone (a forward pass and linear probes, every budget without fine-tuning) takes a
trial's CPUs and no GPU share, and computes on the CPU: it does not hold a GPU slot the trials
pack into. A task computes only what its seed lacks, and records where it ran and on what
device (`seed_tasks`, studies.record.TaskPlacement), as a trial does.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import optuna
import ray
import torch
from ray.tune import Callback
from ray.tune.experiment import Trial

from sidae.allocator import keep_freed_memory
from sidae.config import SidAEConfig, override
from sidae.controls import controls
from sidae.experiment import supervised_baseline
from sidae.pretraining import resolve_device
from studies.record import CONTROLS_ATTR, SEED_TASKS_ATTR, SUPERVISED_ATTR, TaskPlacement
from studies.service.trainable import TrialContext, cached_splits, ray_gpu_ids, trial_config

logger = logging.getLogger(__name__)

STORE_EVERY_S = 5.0  # how often a running round stores its ended seed tasks


@dataclass(frozen=True)
class SeedWork:
    """What one seed still lacks: the config of one of its trials, and which of the two
    results to compute (at least one)."""

    cfg: SidAEConfig
    supervised: bool
    controls: bool

    def describe(self) -> str:
        parts = ["supervised baseline (no pre-training)"] if self.supervised else []
        return " and ".join(parts + (["controls (untrained encoder, raw pixels)"] if self.controls else []))


def missing_seeds(study: optuna.Study, ctx: TrialContext, params: Iterable[dict[str, Any]]) -> dict[str, SeedWork]:
    """{seed: work} for each seed the trials `params` use that lacks its supervised baseline
    (when the trials fine-tune) or its controls (when they probe), or both."""
    supervised = study.user_attrs.get(SUPERVISED_ATTR) or {}
    stored_controls = study.user_attrs.get(CONTROLS_ATTR) or {}
    missing: dict[str, SeedWork] = {}
    for cfg in (trial_config(p, ctx) for p in params):
        seed = str(cfg.seed)
        work = SeedWork(
            cfg,
            supervised=cfg.eval.finetune and seed not in supervised,
            controls=cfg.eval.linear and seed not in stored_controls,
        )
        if (work.supervised or work.controls) and seed not in missing:
            missing[seed] = work
    return missing


@ray.remote
def _seed_results(work: SeedWork, threads: int) -> dict[str, Any]:
    """{attribute: this seed's value} for each result the seed lacks (studies.record's names),
    and where the task ran (SEED_TASKS_ATTR)."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    cfg = work.cfg
    device = resolve_device(cfg.device)
    data = cached_splits(cfg.data)
    out: dict[str, Any] = {}
    if work.controls:
        out[CONTROLS_ATTR] = controls(cfg, data, device)
    if work.supervised:
        out[SUPERVISED_ATTR] = supervised_baseline(cfg, data)
    out[SEED_TASKS_ATTR] = TaskPlacement(
        node=socket.gethostname(),
        ray_node_id=ray.get_runtime_context().get_node_id(),
        gpu_ids=ray_gpu_ids(),
        device=str(device),
    )
    return out


def task_resources(work: SeedWork, cpus: float, gpus: float) -> tuple[float, float, SeedWork]:
    """(CPUs, GPUs, work) for a seed's task, given a trial's CPUs and GPUs. Only the supervised
    baseline trains: a task without it takes no GPU share and computes on the CPU (Ray 2.60 no
    longer hides a node's GPUs from a task that holds none, so `auto` would take one unasked)."""
    if work.supervised or gpus == 0:
        return cpus, gpus, work
    return cpus, 0.0, replace(work, cfg=override(work.cfg, {"device": "cpu"}))


class SeedTasks:
    """One round's seed tasks, each seed's results stored as soon as its task ends: a driver
    stopped mid-round (killed, Ctrl-C) keeps the seeds already computed, which it lost when they
    were stored only after the round's last trial."""

    def __init__(self, study: optuna.Study, pending: dict[str, ray.ObjectRef]) -> None:
        self._study = study
        self._pending = dict(pending)
        self.total = len(pending)

    @property
    def done(self) -> int:
        return self.total - len(self._pending)

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the Tuner's callbacks, and so this, into its experiment folder: only the
        # study's name goes there, not the study (its storage URL may hold a password) nor the
        # tasks. Unpickled it is that record: the seeds are stored by the driver that ran them.
        return {"study_name": self._study.study_name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.study_name: str = state["study_name"]

    def store_finished(self) -> None:
        """Store the seeds whose tasks have ended; wait for none."""
        if not self._pending:
            return
        ready, _ = ray.wait(list(self._pending.values()), num_returns=len(self._pending), timeout=0)
        for seed in [s for s, ref in self._pending.items() if ref in ready]:
            self._store(seed)

    def finish(self, *, wait: bool) -> None:
        """Store every seed. Without `wait` (the time budget is spent) unfinished tasks are
        cancelled; a failed or cancelled seed is computed again at the next start of the study."""
        self.store_finished()
        if wait and self._pending:
            print("waiting for the supervised baseline and controls...", file=sys.stderr, flush=True)
        for seed, ref in sorted(self._pending.items()):
            ready, _ = ray.wait([ref], timeout=None if wait else 0)
            if ready:
                self._store(seed)
                continue
            ray.cancel(ref, force=True)
            logger.warning(
                "supervised baseline and controls, seed %s: cut by the time budget; computed at the next start", seed
            )

    def _store(self, seed: str) -> None:
        ref = self._pending.pop(seed)
        try:
            results = ray.get(ref)
        except ray.exceptions.RayError as error:
            logger.warning(
                "supervised baseline and controls, seed %s failed (%s); computed at the next start",
                seed,
                str(error).splitlines()[-1][:200],
            )
            return
        for attr, value in results.items():
            self._study.set_user_attr(attr, {**(self._study.user_attrs.get(attr) or {}), seed: value})


class StoreFinished(Callback):
    """Tune's loop stores the seed tasks that have ended every STORE_EVERY_S, between trials."""

    def __init__(self, tasks: SeedTasks) -> None:
        self._tasks = tasks
        self._stored_at = time.monotonic()

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if time.monotonic() - self._stored_at > STORE_EVERY_S:
            self._stored_at = time.monotonic()
            self._tasks.store_finished()


def submit(study: optuna.Study, work: dict[str, SeedWork], ctx: TrialContext, cpus: float, gpus: float) -> SeedTasks:
    """Start one task per seed; Ray runs them as resources allow, beside the trials."""
    for what in sorted({w.describe() for w in work.values()}):
        seeds = ", ".join(sorted(s for s, w in work.items() if w.describe() == what))
        print(f"{what} for seed(s) {seeds}: scheduled beside the trials", file=sys.stderr, flush=True)
    pending = {}
    for seed, w in work.items():
        task_cpus, task_gpus, task_work = task_resources(w, cpus, gpus)
        pending[seed] = _seed_results.options(num_cpus=task_cpus, num_gpus=task_gpus).remote(task_work, ctx.threads)
    return SeedTasks(study, pending)
