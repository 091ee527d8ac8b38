"""Views: per-sample independent randomness, strengths that switch off, noise levels."""

from __future__ import annotations

import pytest
import torch

from sidae.augment import augment, augment_views
from sidae.config import AugmentConfig, NoiseConfig
from sidae.noise import add_noise

IDENTITY = AugmentConfig(crop_scale_min=1.0, flip_prob=0.0, jitter=0.0, grayscale_prob=0.0, rotation=0.0, translate=0.0)
STRONG = AugmentConfig(crop_scale_min=0.2, flip_prob=0.5, jitter=0.8, grayscale_prob=0.2, rotation=20.0, translate=0.1)


def _batch(n: int = 16, c: int = 3) -> torch.Tensor:
    return torch.rand(1, c, 32, 32).expand(n, c, 32, 32).contiguous()  # n copies of one image


def test_identity_strengths_leave_images_unchanged() -> None:
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(augment(x, IDENTITY, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_each_sample_gets_its_own_random_view() -> None:
    """torchvision v2 on a batch draws one set of parameters; ours must differ per sample."""
    out = augment(_batch(), STRONG, torch.Generator().manual_seed(0))
    diffs = [(out[0] - out[i]).abs().mean().item() for i in range(1, len(out))]
    assert min(diffs) > 1e-3


def test_two_calls_give_two_different_views_and_a_seed_repeats_them() -> None:
    x = torch.rand(8, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    v1, v2 = augment(x, STRONG, g), augment(x, STRONG, g)
    assert (v1 - v2).abs().mean() > 1e-3
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, STRONG, g), v1)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_made_in_one_pass_are_those_of_augment_calls_in_a_row(channels: int) -> None:
    """augment_views batches the pixels of both views but draws their parameters view after
    view: the views, and the generator's state after them, are those of two augment calls
    (so a seed gives the same training run as before the batching)."""
    x = torch.rand(8, channels, 28, 28)
    one_by_one, batched = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    expected = augment(x, STRONG, one_by_one), augment(x, STRONG, one_by_one)
    views = augment_views(x, STRONG, batched)
    assert len(views) == 2 and all(torch.equal(v, e) for v, e in zip(views, expected, strict=True))
    assert torch.equal(batched.get_state(), one_by_one.get_state())


def test_views_stay_in_range_and_shape() -> None:
    for c in (1, 3):
        out = augment(torch.rand(8, c, 28, 28), STRONG, torch.Generator().manual_seed(1))
        assert out.shape == (8, c, 28, 28)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_flip_alone_mirrors() -> None:
    x = torch.rand(1, 1, 8, 8)
    out = augment(x, AugmentConfig(crop_scale_min=1.0, flip_prob=1.0, jitter=0.0, grayscale_prob=0.0), None)
    assert torch.allclose(out, x.flip(-1), atol=1e-5)


def test_grayscale_alone_equalises_channels() -> None:
    out = augment(
        torch.rand(4, 3, 8, 8), AugmentConfig(crop_scale_min=1.0, flip_prob=0.0, jitter=0.0, grayscale_prob=1.0), None
    )
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


@pytest.mark.parametrize("kind", ["gaussian", "mask", "salt-pepper"])
def test_noise_level_zero_is_identity(kind: str) -> None:
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(add_noise(x, NoiseConfig(kind, 0.0)), x)


def test_mask_noise_drops_the_requested_fraction() -> None:
    x = torch.rand(64, 3, 28, 28) * 0.5 + 0.5  # no zeros before masking
    out = add_noise(x, NoiseConfig("mask", 0.3), torch.Generator().manual_seed(0))
    dropped = (out == 0).all(dim=1).float().mean().item()  # a pixel is dropped in every channel
    assert dropped == pytest.approx(0.3, abs=0.01)


def test_gaussian_noise_has_the_requested_sigma() -> None:
    x = torch.full((64, 1, 28, 28), 0.5)
    out = add_noise(x, NoiseConfig("gaussian", 0.1), torch.Generator().manual_seed(0))
    assert (out - x).std().item() == pytest.approx(0.1, rel=0.05)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("kind", "level"), [("gaussian", -0.1), ("mask", 1.5), ("blur", 0.1), ("gaussian", float("nan"))]
)
def test_bad_noise_is_rejected(kind: str, level: float) -> None:
    with pytest.raises(ValueError):
        NoiseConfig(kind, level)
