"""The supervised baseline of a study: its backbone fine-tuned from a random initialisation on
the same labels, steps and seeds as its trials' fine-tuning. It does not depend on w, noise or
augmentation strengths searched, so it is computed once per seed and kept as the study user
attribute `supervised_finetune` {seed: {fraction: accuracy}}.

It runs where the trials run: one Ray task per seed with a trial's resources (so on a GPU
worker in the `gpu` budget, never on the driver's CPU), submitted before the trials so that it
runs beside them where the cluster has room.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import optuna
import ray
import torch

from sidae.config import SidAEConfig
from sidae.experiment import supervised_baseline
from studies.record import SUPERVISED_ATTR
from studies.service.trainable import TrialContext, cached_splits, trial_config


def missing_seeds(study: optuna.Study, ctx: TrialContext, params: Iterable[dict[str, Any]]) -> dict[str, SidAEConfig]:
    """{seed: config} for each seed the trials `params` use whose baseline is not stored yet."""
    stored = study.user_attrs.get(SUPERVISED_ATTR) or {}
    configs = (trial_config(p, ctx) for p in params)
    return {str(cfg.seed): cfg for cfg in configs if cfg.eval.finetune and str(cfg.seed) not in stored}


@ray.remote
def _fine_tune_from_scratch(cfg: SidAEConfig, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    return supervised_baseline(cfg, cached_splits(cfg.data))


def submit(configs: dict[str, SidAEConfig], ctx: TrialContext, cpus: float, gpus: float) -> dict[str, ray.ObjectRef]:
    """Start one task per seed; Ray runs them as resources allow, beside the trials."""
    if configs:
        print(
            f"supervised baseline (no pre-training) for seed(s) {', '.join(sorted(configs))}: "
            "scheduled beside the trials",
            file=sys.stderr,
            flush=True,
        )
    task = _fine_tune_from_scratch.options(num_cpus=cpus, num_gpus=gpus)
    return {seed: task.remote(cfg, ctx.threads) for seed, cfg in configs.items()}


def record(study: optuna.Study, pending: dict[str, ray.ObjectRef], *, wait: bool) -> None:
    """Store each seed's result. Without `wait` (the time budget is spent) unfinished tasks are
    cancelled; a failed or cancelled seed is computed again at the next start of the study."""
    if not pending:
        return
    if wait and ray.wait(list(pending.values()), num_returns=len(pending), timeout=0)[1]:
        print("waiting for the supervised baseline...", file=sys.stderr, flush=True)
    stored: dict[str, dict[str, float]] = dict(study.user_attrs.get(SUPERVISED_ATTR) or {})
    for seed, ref in sorted(pending.items()):
        ready, _ = ray.wait([ref], timeout=None if wait else 0)
        if not ready:
            ray.cancel(ref, force=True)
            print(
                f"supervised baseline, seed {seed}: cut by the time budget; computed at the next start", file=sys.stderr
            )
            continue
        try:
            stored[seed] = ray.get(ref)
        except ray.exceptions.RayError as error:
            print(
                f"supervised baseline, seed {seed} failed ({str(error).splitlines()[-1][:200]}); "
                "computed at the next start",
                file=sys.stderr,
            )
            continue
        study.set_user_attr(SUPERVISED_ATTR, stored)
