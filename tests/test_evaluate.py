"""Label subsets, kNN, linear probe and fine-tuning on separable synthetic features."""

from __future__ import annotations

import pytest
import torch

from sidae.augment import augment
from sidae.config import AugmentConfig, default_config, override
from sidae.evaluate import (
    collapse_std,
    finetune_augmentation,
    knn_accuracy,
    label_subset,
    linear_probe,
    linear_probes,
)


def _blobs(n: int, seed: int, classes: int = 4, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 3
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_label_subset_is_stratified_and_seed_stable() -> None:
    labels = torch.arange(1000) % 10
    idx = label_subset(labels, 0.05, seed=3)
    assert torch.bincount(labels[idx]).tolist() == [5] * 10
    assert torch.equal(idx, label_subset(labels, 0.05, seed=3))
    assert not torch.equal(idx, label_subset(labels, 0.05, seed=4))


def test_label_subset_keeps_every_class_and_ignores_unlabelled() -> None:
    labels = torch.tensor([0] * 500 + [1] * 5 + [-1] * 50)
    idx = label_subset(labels, 0.01, seed=0)
    assert sorted(labels[idx].tolist()) == [0] * 5 + [1]


@pytest.mark.parametrize("fraction", [0.0, 1.5, -0.1])
def test_label_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(ValueError, match="label fraction"):
        label_subset(torch.arange(10), fraction, 0)


def test_probes_separate_blobs_and_fail_on_noise() -> None:
    train_x, train_y = _blobs(400, 0)
    test_x, test_y = _blobs(200, 1)
    assert linear_probe(train_x, train_y, {"test": (test_x, test_y)}, seed=0)["test"] > 0.95
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=5) > 0.95
    shuffled = train_y[torch.randperm(400, generator=torch.Generator().manual_seed(0))]
    assert linear_probe(train_x, shuffled, {"test": (test_x, test_y)}, seed=0)["test"] < 0.5


def test_linear_probes_keys_are_fractions() -> None:
    train_x, train_y = _blobs(400, 0)
    test_x, test_y = _blobs(100, 1)
    targets = {"test": (test_x, test_y), "train": (train_x, train_y)}
    scores = linear_probes(train_x, train_y, targets, (0.1, 1.0), seed=0)
    assert set(scores) == {"test", "train"}
    assert set(scores["test"]) == {"0.1", "1"} and all(0 <= v <= 1 for v in scores["test"].values())
    assert scores["train"]["1"] >= scores["test"]["1"] - 0.05  # scored on its own training data


def test_collapse_indicator() -> None:
    spread = torch.randn(512, 64)
    collapsed = torch.ones(512, 64) + 1e-4 * torch.randn(512, 64)
    assert collapse_std(spread) == pytest.approx(64**-0.5, rel=0.1)
    assert collapse_std(collapsed) < 1e-3


def test_finetune_augmentation_keeps_only_the_flips_when_asked() -> None:
    cfg = default_config("fashion-mnist")  # crops, rotation, translation, jitter and flips
    assert finetune_augmentation(cfg) == cfg.augment  # by default: the pre-training views
    flips = finetune_augmentation(override(cfg, {"eval.finetune_augment": "flip"}))
    assert flips == AugmentConfig(crop_scale_min=1.0, flip_prob=cfg.augment.flip_prob, jitter=0.0, grayscale_prob=0.0)
    images = torch.rand(64, 1, 28, 28)
    view = augment(images, flips, torch.Generator().manual_seed(0))
    same = (view - images).abs().flatten(1).amax(1) < 1e-5
    mirrored = (view - images.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert bool((same | mirrored).all())  # each image is itself or its mirror (sampled exactly)
    assert 0 < int(mirrored.sum()) < 64
