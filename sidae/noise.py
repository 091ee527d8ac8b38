"""Input corruption for the denoising branch: the encoder sees the noised view, the decoder
must return the clean one. Images are float tensors in [0, 1], shape (N, C, H, W)."""

from __future__ import annotations

import torch
from torch import Tensor

from sidae.config import NoiseConfig
from sidae.config_checks import ConfigError


def _pixel_mask(x: Tensor, fraction: float, generator: torch.Generator | None) -> Tensor:
    """(N, 1, H, W) boolean mask choosing `fraction` of the pixels, shared across channels."""
    n, _, h, w = x.shape
    return torch.rand(n, 1, h, w, device=x.device, generator=generator) < fraction


def add_noise(x: Tensor, noise: NoiseConfig, generator: torch.Generator | None = None) -> Tensor:
    """Return a corrupted copy of x; level 0 returns x itself."""
    if noise.level == 0:
        return x
    if noise.kind == "gaussian":
        eps = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return eps.mul_(noise.level).add_(x).clamp_(0.0, 1.0)  # in place: no new image-sized buffers
    mask = _pixel_mask(x, noise.level, generator)
    if noise.kind == "mask":
        return x.masked_fill(mask, 0.0)
    if noise.kind == "salt-pepper":
        salt = torch.rand(mask.shape, device=x.device, generator=generator) < 0.5
        return torch.where(mask, salt.to(x.dtype), x)
    raise ConfigError(f"unknown noise kind {noise.kind!r}")
