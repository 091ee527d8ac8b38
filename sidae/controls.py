"""The two controls every comparison of pre-trained encoders needs, probed exactly like them.

- **untrained**: the encoder at its initial weights (`build_model` seeds with cfg.seed, so these
  are the weights a run of that seed starts from), features taken in eval mode as
  `sidae.experiment.evaluate` takes them (with clean BN statistics too where
  cfg.eval.recompute_bn says so): what the architecture alone gives.
- **pixels**: the images themselves, as float in [0, 1] flattened to (N, C*H*W): what a
  linear classifier gets without any encoder.

Both go through `linear_probes` (which standardises the features) at the config's label
fractions and seed, scored on the test split, so a pre-trained encoder's `linear` scores and
these are the same measurement of different features. Neither depends on w, noise or
augmentations: a study computes them once per seed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sidae.batchnorm import evaluation_encoder
from sidae.config import SidAEConfig
from sidae.data import DataSplits
from sidae.evaluate import extract_features, label_subset, linear_probes
from sidae.image_set import to_float
from sidae.pretraining import build_model

UNTRAINED, PIXELS = "untrained", "pixels"

Features = Callable[[Tensor], Tensor]  # uint8 images (N, C, H, W) -> features (N, D) on the device


def pixel_features(images: Tensor, device: torch.device) -> Tensor:
    """The raw-pixel control's features: (N, C*H*W) floats in [0, 1]."""
    return to_float(images, device).flatten(1)


def probe_on_test(features: Features, data: DataSplits, cfg: SidAEConfig, device: torch.device) -> dict[str, float]:
    """Test accuracy per label fraction (keyed like "0.01") of linear probes on `features`,
    encoding only the labelled images some fraction uses (the rest of the pool stays zero and
    is never read: linear_probes picks the same subsets)."""
    fractions = cfg.eval.label_fractions
    needed = torch.unique(torch.cat([label_subset(data.train.labels, f, cfg.seed) for f in fractions]))
    labelled = features(data.train.images[needed])
    pool_x = torch.zeros(len(data.train), labelled.shape[1], device=device)
    pool_x[needed.to(device)] = labelled
    test = (features(data.test.images), data.test.labels.to(device))
    return linear_probes(pool_x, data.train.labels.to(device), {"test": test}, fractions, cfg.seed)["test"]


def controls(cfg: SidAEConfig, data: DataSplits, device: torch.device) -> dict[str, dict[str, float]]:
    """{"untrained": {fraction: test accuracy}, "pixels": {...}}, with RunResult.linear's keys."""
    encoder = evaluation_encoder(build_model(cfg, data, device).encoder, data, cfg, device)
    return {
        UNTRAINED: probe_on_test(lambda images: extract_features(encoder, images, device), data, cfg, device),
        PIXELS: probe_on_test(lambda images: pixel_features(images, device), data, cfg, device),
    }
