"""What a study's trials are measured against, computed once per seed: they depend on neither w
nor the noise or augmentation strengths searched.

- The supervised baseline: the backbone fine-tuned from a random initialisation on the same
  labels, steps and seeds as the trials' fine-tuning (only when they fine-tune). Kept as the
  study user attribute `supervised_finetune` {seed: {fraction: accuracy}}.
- The controls (sidae.controls): the trials' linear probe on the untrained encoder at the
  seed's initial weights and on raw pixels (whenever the trials probe, so also in the `smoke`
  budget). Kept as `controls` {seed: {"untrained": {fraction: accuracy}, "pixels": {...}}}.

They run where the trials run: one Ray task per seed with a trial's resources (so on a GPU
worker in the `gpu` budget, never on the driver's CPU), submitted before the trials so that it
runs beside them where the cluster has room. A task computes only what its seed lacks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import optuna
import ray
import torch

from sidae.config import SidAEConfig
from sidae.controls import controls
from sidae.experiment import supervised_baseline
from sidae.pretraining import resolve_device
from studies.record import CONTROLS_ATTR, SUPERVISED_ATTR
from studies.service.trainable import TrialContext, cached_splits, trial_config

ATTRS = (SUPERVISED_ATTR, CONTROLS_ATTR)


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
    """{attribute: this seed's value} for each result the seed lacks (studies.record's names)."""
    torch.set_num_threads(threads)
    data = cached_splits(work.cfg.data)
    out: dict[str, Any] = {}
    if work.controls:
        out[CONTROLS_ATTR] = controls(work.cfg, data, resolve_device(work.cfg.device))
    if work.supervised:
        out[SUPERVISED_ATTR] = supervised_baseline(work.cfg, data)
    return out


def submit(work: dict[str, SeedWork], ctx: TrialContext, cpus: float, gpus: float) -> dict[str, ray.ObjectRef]:
    """Start one task per seed; Ray runs them as resources allow, beside the trials."""
    for what in sorted({w.describe() for w in work.values()}):
        seeds = ", ".join(sorted(s for s, w in work.items() if w.describe() == what))
        print(f"{what} for seed(s) {seeds}: scheduled beside the trials", file=sys.stderr, flush=True)
    task = _seed_results.options(num_cpus=cpus, num_gpus=gpus)
    return {seed: task.remote(w, ctx.threads) for seed, w in work.items()}


def record(study: optuna.Study, pending: dict[str, ray.ObjectRef], *, wait: bool) -> None:
    """Store each seed's results. Without `wait` (the time budget is spent) unfinished tasks are
    cancelled; a failed or cancelled seed is computed again at the next start of the study."""
    if not pending:
        return
    if wait and ray.wait(list(pending.values()), num_returns=len(pending), timeout=0)[1]:
        print("waiting for the supervised baseline and controls...", file=sys.stderr, flush=True)
    stored: dict[str, dict[str, Any]] = {attr: dict(study.user_attrs.get(attr) or {}) for attr in ATTRS}
    for seed, ref in sorted(pending.items()):
        ready, _ = ray.wait([ref], timeout=None if wait else 0)
        if not ready:
            ray.cancel(ref, force=True)
            print(
                f"supervised baseline and controls, seed {seed}: cut by the time budget; computed at the next start",
                file=sys.stderr,
            )
            continue
        try:
            results = ray.get(ref)
        except ray.exceptions.RayError as error:
            print(
                f"supervised baseline and controls, seed {seed} failed ({str(error).splitlines()[-1][:200]}); "
                "computed at the next start",
                file=sys.stderr,
            )
            continue
        for attr, value in results.items():
            stored[attr][seed] = value
            study.set_user_attr(attr, stored[attr])
