"""Encoders (image -> feature vector) and the matching decoder (feature vector -> image).

Inputs are images in [0, 1]; each encoder starts by standardising them with the data set's
channel statistics, so the decoder's target stays the raw [0, 1] image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from sidae.config_checks import ConfigError


class Standardize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


def convnet(channels: int, width: int) -> nn.Sequential:
    """Four conv layers (width, 2, 4, 8 x width channels) for small images: 28x28 digits, and
    32x32 RGB on a CPU (the cpu budget's choice: it learns more than the reduced ResNet-18 in the
    same time, benchmarks/README.md).

    A 5x5 stride-2 stem halves the side at once: on CPU the full-resolution layers dominate the
    cost, and small images lose little at half resolution. Output dim: 8 * width.
    """
    return nn.Sequential(
        *_conv_bn_relu(channels, width, 5, 2),
        *_conv_bn_relu(width, 2 * width, 3, 2),
        *_conv_bn_relu(2 * width, 4 * width, 3, 2),
        *_conv_bn_relu(4 * width, 8 * width, 3, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def _resnet_stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or c_in != c_out:
        downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential(BasicBlock(c_in, c_out, stride, downsample), BasicBlock(c_out, c_out))


def resnet18(channels: int, width: int) -> nn.Sequential:
    """ResNet-18 (torchvision's BasicBlock, [2, 2, 2, 2]) for small images: a 3x3 stride-1 stem
    and no max-pool, as in SimSiam's CIFAR experiments. Output dim: 8 * width."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    stages = [
        _resnet_stage(c_in, c_out, 1 if i == 0 else 2)
        for i, (c_in, c_out) in enumerate(zip([width] + widths[:-1], widths, strict=True))
    ]
    return nn.Sequential(
        *_conv_bn_relu(channels, width, 3, 1),
        *stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


BACKBONE_BUILDERS = {"convnet": convnet, "resnet18": resnet18}


def build_encoder(
    backbone: str, channels: int, width: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[nn.Sequential, int]:
    """The encoder f and its feature dimension."""
    body = BACKBONE_BUILDERS[backbone](channels, width)
    return nn.Sequential(Standardize(mean, std), *body), 8 * width


def _upsampling_steps(size: int) -> int:
    """How many x2 upsamplings take a small seed map (side 3..7) to `size`."""
    for steps in range(1, 8):
        seed, rest = divmod(size, 2**steps)
        if rest == 0 and seed <= 7:
            return steps
    raise ConfigError(f"image size {size} is not a small map times a power of two (e.g. 28, 32, 96)")


class Decoder(nn.Module):
    """Encoding -> image in [0, 1]: a small seed map, then transposed convs that double the side
    and halve the channels, as in standard convolutional DAEs. No BatchNorm: on CPU it costs as
    much as the convolutions here and the decoder is shallow.

    `from_map` False: the encoding is the pooled feature vector (N, feat_dim), and a linear layer
    makes the seed map: the DAE reconstructs through the same 8 * width numbers the probes read.
    True: the encoding is the encoder's last feature map (N, feat_dim, s, s), before pooling; a
    1x1 conv makes the seed map, resized (bilinear) where s is not the seed's side."""

    def __init__(self, feat_dim: int, channels: int, size: int, width: int, from_map: bool = False) -> None:
        super().__init__()
        steps = _upsampling_steps(size)
        self.seed_side = size // 2**steps
        self.seed_channels = width * 2 ** (steps - 1)
        self.from_map = from_map
        if from_map:
            self.fc: nn.Module = nn.Conv2d(feat_dim, self.seed_channels, 1)
        else:
            self.fc = nn.Linear(feat_dim, self.seed_channels * self.seed_side**2)
        layers: list[nn.Module] = []
        c = self.seed_channels
        for step in range(steps):
            c_out = channels if step == steps - 1 else c // 2
            layers.append(nn.ReLU(inplace=True))
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1))
            c = c_out
        self.up = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return torch.sigmoid(self.up(self._seed(h)))

    def _seed(self, h: Tensor) -> Tensor:
        if not self.from_map:
            return self.fc(h).view(-1, self.seed_channels, self.seed_side, self.seed_side)
        seed = self.fc(h)
        if seed.shape[-1] != self.seed_side:
            seed = F.interpolate(seed, size=(self.seed_side, self.seed_side), mode="bilinear", align_corners=False)
        return seed
