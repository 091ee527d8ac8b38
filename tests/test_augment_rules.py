"""Every random augmentation is drawn per sample and stays inside its bounds: crop area and
aspect ratio, rotation, translation, saturation, hue rotation, salt-and-pepper noise.

The geometric parameters are read back from the per-sample affine matrices
(sidae.augment.affine_params); the photometric ones and the noise from the images themselves.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from sidae.augment import (
    affine_params,
    augment,
    colour_jitter,
    draw_jitter,
    mix_channels,
    rotate_hue,
    saturation_matrix,
)
from sidae.config import AugmentConfig, NoiseConfig
from sidae.noise import add_noise

N = 512
OFF = AugmentConfig(crop_scale_min=1.0, flip_prob=0.0, jitter=0.0, grayscale_prob=0.0, rotation=0.0, translate=0.0)


def _theta(aug: AugmentConfig, seed: int = 0) -> torch.Tensor:
    return affine_params(torch.zeros(N, 3, 32, 32), aug, torch.Generator().manual_seed(seed))


def _spread(values: torch.Tensor, low: float, high: float) -> None:
    """Per-sample draws: many distinct values, reaching close to both ends of [low, high]."""
    assert len(torch.unique(values)) > 0.9 * len(values)
    width = high - low
    assert values.min() < low + 0.1 * width and values.max() > high - 0.1 * width


def test_crop_area_and_aspect_ratio_are_drawn_per_sample_within_bounds() -> None:
    """RandomResizedCrop: area fraction in [crop_scale_min, 1], aspect ratio in [3/4, 4/3], the
    crop inside the image."""
    theta = _theta(dataclasses.replace(OFF, crop_scale_min=0.3))
    half_w, half_h = theta[:, 0, 0], theta[:, 1, 1]  # no rotation or flip: a diagonal matrix
    assert torch.all(theta[:, 0, 1] == 0) and torch.all(theta[:, 1, 0] == 0)
    area, log_ratio = half_w * half_h, torch.log(half_w / half_h)
    assert area.min() >= 0.3 - 1e-6 and area.max() <= 1 + 1e-6
    _spread(area, 0.3, 1.0)
    assert log_ratio.abs().max() <= math.log(4 / 3) + 1e-5
    assert len(torch.unique(log_ratio)) > 0.5 * N and log_ratio.min() < -0.1 and log_ratio.max() > 0.1
    centre_x, centre_y = theta[:, 0, 2], theta[:, 1, 2]
    assert torch.all(centre_x.abs() + half_w <= 1 + 1e-5) and torch.all(centre_y.abs() + half_h <= 1 + 1e-5)
    _spread(centre_x / (1 - half_w).clamp(min=1e-6), -1.0, 1.0)  # the crop's position varies too


def test_rotation_is_drawn_per_sample_within_its_bound() -> None:
    theta = _theta(dataclasses.replace(OFF, rotation=25.0))
    angle = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert angle.abs().max() <= 25.0 + 1e-3
    _spread(angle, -25.0, 25.0)
    scale_x, scale_y = theta[:, :, 0].norm(dim=1), theta[:, :, 1].norm(dim=1)
    assert torch.allclose(scale_x, torch.ones(N)) and torch.allclose(scale_y, torch.ones(N))  # a pure rotation


def test_translation_is_drawn_per_sample_and_per_axis_within_its_bound() -> None:
    """translate is a fraction of the image side; the image spans 2 in normalised units."""
    theta = _theta(dataclasses.replace(OFF, translate=0.1))
    shift_x, shift_y = theta[:, 0, 2] / 2, theta[:, 1, 2] / 2
    for shift in (shift_x, shift_y):
        assert shift.abs().max() <= 0.1 + 1e-6
        _spread(shift, -0.1, 0.1)
    assert abs(torch.corrcoef(torch.stack([shift_x, shift_y]))[0, 1]) < 0.2  # independent axes


@pytest.mark.parametrize("field", ["crop_scale_min", "rotation", "translate"])
def test_each_geometric_augmentation_alone_gives_copies_of_one_image_different_views(field: str) -> None:
    """The drawn parameters reach the images: one warp per sample, not one per batch."""
    value = {"crop_scale_min": 0.3, "rotation": 30.0, "translate": 0.15}[field]
    x = torch.rand(1, 1, 28, 28).expand(64, 1, 28, 28).contiguous()
    out = augment(x, dataclasses.replace(OFF, **{field: value}), torch.Generator().manual_seed(0))
    distinct = torch.unique(out.flatten(1).round(decimals=4), dim=0)
    assert len(distinct) > 60


def _hue_angle(rgb: torch.Tensor) -> torch.Tensor:
    """Angle (turns) of each colour's component perpendicular to the grey axis."""
    r, g, b = rgb.unbind(-1)
    return torch.atan2(math.sqrt(3) * (g - b), 2 * r - g - b) / (2 * math.pi)


def test_hue_rotation_turns_the_colour_wheel() -> None:
    """A third of a turn maps red to green to blue; a rotation keeps grey grey."""
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    green = rotate_hue(red, torch.tensor([1 / 3]))
    assert torch.allclose(green.flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    assert torch.allclose(rotate_hue(green, torch.tensor([1 / 3])).flatten(), torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    grey = torch.full((1, 3, 1, 1), 0.4)
    assert torch.allclose(rotate_hue(grey, torch.tensor([0.17])), grey)


def test_saturation_matrix_is_torchvisions_adjust_saturation_per_sample() -> None:
    """One batched matmul gives what torchvision's adjust_saturation gives image by image (up to
    its red luma weight, 0.2989 where BT.601 and ours say 0.299)."""
    images = torch.rand(8, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    factors = torch.linspace(0.2, 1.8, 8)
    ours = mix_channels(images, saturation_matrix(factors)).clamp(0, 1)
    for image, factor, mine in zip(images, factors, ours, strict=True):
        assert torch.allclose(mine, TF.adjust_saturation(image, factor.item()), atol=1e-4)


def test_hue_shift_is_drawn_per_sample_within_a_fifth_of_the_strength() -> None:
    """Colour jitter's hue shift is +-0.2 s turns, drawn per sample (brightness, contrast and
    saturation scale the chroma but keep its angle, on a colour that never clips)."""
    strength = 0.5
    colour = torch.tensor([0.55, 0.45, 0.45]).view(1, 3, 1, 1).expand(N, 3, 4, 4).contiguous()
    out = colour_jitter(colour, draw_jitter(colour, strength, torch.Generator().manual_seed(0)))
    assert out.min() > 0 and out.max() < 1  # no clipping, so the hue is only rotated
    shift = _hue_angle(out[:, :, 0, 0]) - _hue_angle(colour[:, :, 0, 0])
    shift = (shift + 0.5) % 1 - 0.5
    jittered = (out != colour).flatten(1).any(dim=1)
    assert 0.7 < jittered.float().mean() < 0.9  # applied with probability 0.8
    assert torch.all(shift[~jittered] == 0)
    bound = 0.2 * strength
    assert shift.abs().max() <= bound + 1e-4
    _spread(shift[jittered], -bound, bound)


def test_salt_and_pepper_hits_a_fresh_level_fraction_of_each_image() -> None:
    x = torch.full((64, 3, 28, 28), 0.5)
    out = add_noise(x, NoiseConfig("salt-pepper", 0.3), torch.Generator().manual_seed(0))
    hit = out != 0.5
    assert torch.equal(hit.all(dim=1), hit.any(dim=1))  # all channels of a pixel together
    values = out[hit]
    assert torch.all((values == 0) | (values == 1))
    assert (values == 1).float().mean().item() == pytest.approx(0.5, abs=0.02)  # salt as often as pepper
    per_image = hit[:, 0].flatten(1).float().mean(dim=1)
    assert torch.all((per_image - 0.3).abs() < 0.08)  # 784 pixels each: the fraction holds per image
    masks = hit[:, 0].flatten(1)
    assert len(torch.unique(masks, dim=0)) == 64  # each image its own pixels
    salt = (out[:, 0] == 1).flatten(1)
    overlap = (masks[0] & masks[1]).float().mean().item()
    assert overlap == pytest.approx(0.09, abs=0.04)  # independent masks: 0.3 * 0.3
    assert len(torch.unique(salt, dim=0)) == 64
