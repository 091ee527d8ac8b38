"""The supervised baseline of a study: its backbone fine-tuned from a random initialisation on
the same labels, steps and seeds as its trials' fine-tuning. It does not depend on w, noise or
augmentation strengths searched, so it is computed once per seed (on the driver, after the
trials) and kept as the study user attribute `supervised_finetune` {seed: {fraction: accuracy}}.
"""

from __future__ import annotations

import os
import sys

import optuna
import torch

from sidae.config import DataConfig
from sidae.data import DataSplits, load_splits
from sidae.experiment import supervised_baseline
from studies.objective import TrialContext, trial_config
from studies.summary import SUPERVISED_ATTR, complete_trials


def record_supervised_baseline(study: optuna.Study, ctx: TrialContext) -> None:
    """Compute the baseline for each seed the study's complete trials used, if not stored yet."""
    stored: dict[str, dict[str, float]] = dict(study.user_attrs.get(SUPERVISED_ATTR) or {})
    configs = {}
    for trial in complete_trials(study):
        cfg = trial_config(trial.params, ctx)
        if cfg.eval.finetune and str(cfg.seed) not in stored:
            configs[str(cfg.seed)] = cfg
    if not configs:
        return
    torch.set_num_threads(os.cpu_count() or 1)
    splits: dict[DataConfig, DataSplits] = {}  # the seeds share their data: decode it once
    for seed, cfg in sorted(configs.items()):
        print(f"supervised baseline (no pre-training), seed {seed}...", file=sys.stderr, flush=True)
        if cfg.data not in splits:
            splits[cfg.data] = load_splits(cfg.data)
        stored[seed] = supervised_baseline(cfg, splits[cfg.data])
        study.set_user_attr(SUPERVISED_ATTR, stored)
