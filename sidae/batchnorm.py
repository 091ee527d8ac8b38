"""BatchNorm statistics for evaluation, recomputed on clean training images.

An encoder pre-trained on noised views (0 < w < 1, or noise_at_w1) keeps running BN statistics
of noised inputs, yet every evaluation feeds it clean images; SimSiam's encoder (w = 1) keeps
statistics of clean ones. With EvalConfig.recompute_bn, every encoder is evaluated with
statistics of the same clean images, so the arms differ only in their weights. Recomputing is
what the BN layers would have settled to had training seen clean images: a cumulative average
over a few thousand images, taken in train mode without gradients (Ioffe & Szegedy, 2015, Alg. 2).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from sidae.config import SidAEConfig
from sidae.data import DataSplits
from sidae.image_set import to_float

BN_IMAGES = 4096  # 16 training-size batches: the average of many batches, cheap beside the evaluation
_BATCH = 256  # a training batch: the statistics are averaged over batches of the trained size


def _norm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def with_clean_statistics(encoder: nn.Module, images: Tensor, device: torch.device, seed: int) -> nn.Module:
    """A copy of `encoder` whose BN running statistics are the average over BN_IMAGES clean
    uint8 `images` (a seeded subset); the encoder itself is left untouched."""
    recomputed = copy.deepcopy(encoder).train()
    layers = _norm_layers(recomputed)
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # None: a cumulative average over every batch seen
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:BN_IMAGES]
    for start in range(0, len(pick), _BATCH):
        batch = pick[start : start + _BATCH]
        if len(batch) > 1:  # a single image has no batch variance
            recomputed(to_float(images[batch.to(images.device)], device))
    for layer, original in zip(layers, _norm_layers(encoder), strict=True):
        layer.momentum = original.momentum
    return recomputed.eval()


def evaluation_encoder(encoder: nn.Module, data: DataSplits, cfg: SidAEConfig, device: torch.device) -> nn.Module:
    """The encoder every frozen-feature evaluation uses: as trained, or (cfg.eval.recompute_bn)
    a copy with BN statistics of the clean pre-training images."""
    if not cfg.eval.recompute_bn:
        return encoder
    return with_clean_statistics(encoder, data.pretrain.images, device, cfg.seed)
