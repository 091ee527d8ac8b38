"""Compute budgets: how much each trial trains and how many trials a study runs.

smoke: seconds to a minute per trial, for tests and first contact.
cpu:   the default; a study that finishes on a 2-core laptop in about 20 minutes.
gpu:   paper-scale pre-training, for a cluster of GPU workers.
Explicit command-line flags override a budget's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    name: str
    epochs: int
    train_limit: int | None  # pre-training images (None: the whole training set)
    val_size: int | None  # validation images (None: the data set's default)
    trials: int  # for model-based samplers; grid studies run their whole grid
    seeds: tuple[int, ...]  # repeats of each grid point, so a difference can be told from noise
    w_grid: tuple[float, ...]
    finetune_steps: int | None  # None: no fine-tuning evaluation
    knn_bank_size: int
    label_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    # Few epochs need AdamW: SGD at SimSiam's lr hardly trains the decoder in that time (see
    # sidae.config.OptimConfig). Paper-scale runs keep SimSiam's SGD recipe.
    optimizer: str = "adamw"
    base_lr: float = 1e-3

    def config_values(self) -> dict[str, Any]:
        """The budget as config overrides (dotted paths, see sidae.config.override)."""
        values: dict[str, Any] = {
            "optim.epochs": self.epochs,
            "data.train_limit": self.train_limit,
            "eval.knn_bank_size": self.knn_bank_size,
            "eval.finetune": self.finetune_steps is not None,
            "eval.label_fractions": self.label_fractions,
            "optim.optimizer": self.optimizer,
            "optim.base_lr": self.base_lr,
        }
        if self.finetune_steps is not None:
            values["eval.finetune_steps"] = self.finetune_steps
        if self.val_size is not None:
            values["data.val_size"] = self.val_size
        return values


BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", epochs=2, train_limit=2048, val_size=1000, trials=3, seeds=(0,),
                    w_grid=(0.0, 0.5, 1.0), finetune_steps=None, knn_bank_size=2000,
                    label_fractions=(0.01, 0.1)),
    "cpu": Budget("cpu", epochs=3, train_limit=20000, val_size=None, trials=12, seeds=(0, 1, 2),
                  w_grid=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0), finetune_steps=300, knn_bank_size=5000),
    "gpu": Budget("gpu", epochs=200, train_limit=None, val_size=None, trials=60, seeds=(0, 1, 2),
                  w_grid=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), finetune_steps=2000,
                  knn_bank_size=10000, optimizer="sgd", base_lr=0.05),
}
