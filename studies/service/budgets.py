"""Compute budgets: how much each trial trains and how many trials a study runs.

smoke: seconds to a minute per trial, for tests and first contact.
cpu:   the default, sized for a 2-core laptop. A confirmatory w-sweep runs 24 or 30 trials
       (docs/verdict.md): 33-37 minutes for 30 on MNIST on 2 idle cores (a pilot trial 80-100 s
       on one core, a confirmation trial, which fine-tunes, 120-140 s); 32x32 RGB data has its
       own variant (below).
gpu:   paper-scale pre-training, for a cluster of GPU workers.
A budget may have a variant per data set (budget_for); explicit command-line flags override
its fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    name: str
    epochs: int
    train_limit: int | None  # pre-training images (None: the whole training set)
    val_size: int | None  # validation images (None: the data set's default)
    trials: int  # for model-based samplers; grid studies run their whole grid
    seeds: tuple[int, ...]  # every grid point runs on these: a w-sweep's pilot seeds
    w_grid: tuple[float, ...]
    finetune_steps: int | None  # None: no fine-tuning evaluation
    knn_bank_size: int
    label_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    # Few epochs need AdamW: SGD at SimSiam's lr hardly trains the decoder in that time (see
    # sidae.config.OptimConfig). Paper-scale runs keep SimSiam's SGD recipe.
    optimizer: str = "adamw"
    base_lr: float = 1e-3  # lr = base_lr * batch / 256 (sidae.config.OptimConfig)
    batch_size: int | None = None  # None: the data set's default (256)
    # The encoder and decoder; None: the data set's default for the device (sidae.config)
    backbone: str | None = None
    width: int | None = None
    decoder_width: int | None = None
    # The objective's label fraction (--primary-fraction): validation linear probe at it
    primary_fraction: float = 0.01
    # A w-sweep's confirmation stage (studies/analysis/claim.py): the chosen w and both baselines
    # on fresh seeds, tested after looks[k] of them. (4, 6): power 0.84 at a standardised effect
    # of 1.5 with 5.6 seeds on average (studies/analysis/simulate.py); a fixed 6 has 0.88 at 6.
    looks: tuple[int, ...] = (4, 6)

    def config_values(self) -> dict[str, Any]:
        """The budget as config overrides (dotted paths, see sidae.config.override)."""
        values = {
            path: getattr(self, name)
            for path, name in CONFIG_FIELDS.items()
            if getattr(self, name) is not None or path in ALWAYS_SET
        }
        values["eval.finetune"] = self.finetune_steps is not None
        return values

    def sized_for(self, pretrain_images: int) -> Budget:
        """This budget on a data set with `pretrain_images` pre-training images. A budget is a
        number of images seen, train_limit x epochs (its optimizer steps, so its time): a data
        set with fewer images than train_limit trains more epochs to see as many, since a folder
        of 5,000 images at the 14,000-image budget's 5 epochs takes too few steps to learn
        (benchmarks/README.md, "The same budget on a user-shaped folder")."""
        if self.train_limit is None or pretrain_images >= self.train_limit:
            return self
        return dataclasses.replace(self, epochs=math.ceil(self.epochs * self.train_limit / pretrain_images))

    def with_config(self, values: Mapping[str, Any]) -> Budget:
        """This budget with the budget fields among `values` (--set KEY=VALUE, dotted config
        paths) applied, so that the header and the study's note describe what the trials run."""
        changes = {name: values[path] for path, name in CONFIG_FIELDS.items() if path in values}
        if values.get("eval.finetune") is False:
            changes["finetune_steps"] = None
        return dataclasses.replace(self, **changes)


# The budget fields that are config fields, by dotted path. A None budget value leaves the
# data set's default (val_size) or means "off" (finetune_steps), except where None is the value.
CONFIG_FIELDS = {
    "optim.epochs": "epochs",
    "data.train_limit": "train_limit",
    "data.val_size": "val_size",
    "eval.knn_bank_size": "knn_bank_size",
    "eval.label_fractions": "label_fractions",
    "eval.finetune_steps": "finetune_steps",
    "optim.optimizer": "optimizer",
    "optim.base_lr": "base_lr",
    "optim.batch_size": "batch_size",
    "model.backbone": "backbone",
    "model.width": "width",
    "model.decoder_width": "decoder_width",
}
ALWAYS_SET = ("data.train_limit",)  # None: the whole training set


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        "smoke",
        epochs=2,
        train_limit=2048,
        val_size=1000,
        trials=3,
        seeds=(0,),
        w_grid=(0.0, 0.5, 1.0),
        looks=(2,),  # the mechanics only: two seeds decide nothing but a very large effect
        finetune_steps=None,
        knn_bank_size=2000,
        label_fractions=(0.01, 0.1),
    ),
    "cpu": Budget(
        "cpu",
        epochs=3,
        train_limit=20000,
        val_size=None,
        trials=12,
        seeds=(0, 1),
        w_grid=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
        finetune_steps=300,
        knn_bank_size=5000,
    ),
    "gpu": Budget(
        "gpu",
        epochs=200,
        train_limit=None,
        val_size=None,
        trials=60,
        seeds=(0, 1),
        w_grid=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        finetune_steps=2000,
        knn_bank_size=10000,
        optimizer="sgd",
        base_lr=0.05,
    ),
}

# 32x32 RGB on a CPU: the 4-layer conv net (width 32), not the reduced ResNet-18, at batch 32 on
# 14,000 images: in one-seed pilots every method's encoder then beat its own untrained starting
# point by >= 5 points at 10 % labels, where the ResNet-18 at every batch and size tried did not
# (pilots p0-p7, benchmarks/README.md, "CPU budget pilots for 32x32 RGB").
CPU_RGB32 = dataclasses.replace(
    BUDGETS["cpu"],
    epochs=5,
    train_limit=14000,
    w_grid=(0.0, 0.25, 0.5, 0.75, 1.0),
    finetune_steps=50,
    knn_bank_size=2000,
    batch_size=32,
    base_lr=8e-3,  # lr 1e-3, AdamW's, at batch 32
    backbone="convnet",
    width=32,
    decoder_width=32,
    # 1 % is 45 labelled images a class: in the pilots the DAE's margin over its untrained
    # encoder there (+1.4 points) was within one seed's noise, at 10 % every method's was >= 5
    primary_fraction=0.1,
)
RGB32_DATASETS = ("cifar10", "cifar10-jpeg", "imagefolder")
VARIANTS: dict[tuple[str, str], Budget] = {("cpu", dataset): CPU_RGB32 for dataset in RGB32_DATASETS}


def budget_for(name: str, dataset: str) -> Budget:
    """The named budget as it applies to `dataset` (its variant, if it has one). KeyError for
    an unknown name, as BUDGETS[name]."""
    return VARIANTS.get((name, dataset)) or BUDGETS[name]
