"""SidAE: Siamese denoising autoencoders (Baier, Mair, Fadel, "Self-Supervised Siamese
Autoencoders", IDA 2024) in PyTorch.

L = w * L_siam + (1 - w) * L_rec; w = 1 is SimSiam, w = 0 a denoising autoencoder. This
package knows nothing of Optuna or Ray: it takes a typed config and a per-epoch callback.

The names below load on first use (PEP 562): `import sidae.errors` or `sidae.config` must not
pay for torch, which the loopback cluster's launcher and every CLI's error path would wait for.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "AugmentConfig": "sidae.config",
    "DataConfig": "sidae.config",
    "EvalConfig": "sidae.config",
    "ModelConfig": "sidae.config",
    "NoiseConfig": "sidae.config",
    "OptimConfig": "sidae.config",
    "SidAEConfig": "sidae.config",
    "default_config": "sidae.config",
    "ConfigError": "sidae.config_checks",
    "DataSplits": "sidae.data",
    "load_splits": "sidae.data",
    "RunResult": "sidae.experiment",
    "run": "sidae.experiment",
    "DataError": "sidae.image_set",
    "ImageSet": "sidae.image_set",
    "TrainingDiverged": "sidae.pretraining",
    "pretrain": "sidae.pretraining",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sidae' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
