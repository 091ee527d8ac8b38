"""SidAE: Siamese denoising autoencoders (Baier, Mair, Fadel, "Self-Supervised Siamese
Autoencoders", IDA 2024) in PyTorch.

L = w * L_siam + (1 - w) * L_rec; w = 1 is SimSiam, w = 0 a denoising autoencoder. This
package knows nothing of Optuna or Ray: it takes a typed config and a per-epoch callback.
"""

from sidae.config import (
    AugmentConfig,
    DataConfig,
    EvalConfig,
    ModelConfig,
    NoiseConfig,
    OptimConfig,
    SidAEConfig,
    default_config,
)
from sidae.config_checks import ConfigError
from sidae.data import DataSplits, load_splits
from sidae.experiment import RunResult, run
from sidae.image_set import DataError, ImageSet
from sidae.pretraining import TrainingDiverged, pretrain

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "DataError",
    "DataSplits",
    "EvalConfig",
    "ImageSet",
    "ModelConfig",
    "NoiseConfig",
    "OptimConfig",
    "RunResult",
    "SidAEConfig",
    "TrainingDiverged",
    "default_config",
    "load_splits",
    "pretrain",
    "run",
]
