"""Data sets as uint8 tensors in memory, read once through torchvision's own dataset classes.

Every data set becomes four `ImageSet`s (sidae.image_set): `pretrain` (images for
self-supervised training, labels unused), `train` (the labelled pool for probes and
fine-tuning), `val` (carved out of the labelled training set with a fixed seed, for monitoring
and model selection) and `test` (final numbers only).

Image folders (`imagefolder`, and `cifar10-jpeg` for the JPEG copy of CIFAR-10 in
<data_dir>/CIFAR10-JPEG) are read by sidae.image_folder, which decodes them once and caches them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor

from sidae.config import DataConfig
from sidae.image_folder import read_image_folder
from sidae.image_set import DataError, ImageSet, one_line

SPLIT_SEED = 0  # the validation split and pre-training subset are the same for every run
_STATS_SAMPLE = 10_000  # images used to estimate channel mean/std
VAL_FRACTION, VAL_MAX = 0.1, 5000  # the automatic validation split (see validation_size)


@dataclass(frozen=True)
class DataSplits:
    name: str
    pretrain: ImageSet
    train: ImageSet
    val: ImageSet
    test: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.test.images.shape[1:]
        return int(c), int(h), int(w)


def data_root(data_dir: str | None) -> Path:
    """--data-dir, else $SIDAE_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get("SIDAE_DATA_DIR") or "data")


def _as_image_set(images: Any, labels: Any, layout: str) -> ImageSet:
    """torchvision keeps MNIST as an (N, H, W) tensor, CIFAR as (N, H, W, C) and STL-10 as
    (N, C, H, W) numpy arrays; bring all to (N, C, H, W) uint8."""
    x = torch.as_tensor(np.asarray(images))
    if layout == "NHW":
        x = x.unsqueeze(1)
    elif layout == "NHWC":
        x = x.permute(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return ImageSet(x.contiguous(), y)


def _verified(cls: type, verify: bool) -> type:
    """torchvision refuses CIFAR/STL files whose MD5 differs from the published archive; with
    verify=False (re-packed or partial copies) it only requires the files to exist."""
    if verify:
        return cls

    # torchvision's check_integrity(path, md5=None) only checks that the file exists.
    unverified = {
        "train_list": [[name, None] for name, _ in cls.train_list],
        "test_list": [[name, None] for name, _ in cls.test_list],
    }
    if hasattr(cls, "meta"):
        unverified["meta"] = {**cls.meta, "md5": None}
    return type(cls.__name__, (cls,), unverified)


def _open(name: str, folder: Path, factory: Callable[[bool], Any], download: bool) -> Any:
    """Open a torchvision data set from disk, downloading it if allowed and missing.

    Any failure becomes one DataError line naming the folder the files must be in."""
    try:
        return factory(False)
    except Exception as error:  # torchvision raises RuntimeError, ValueError, OSError...
        present = folder.is_dir() and any(folder.iterdir())
        problem = f"unreadable or corrupt files in {folder} ({one_line(error)})" if present else f"no files in {folder}"
        if present or not download:
            raise DataError(
                f"{name}: {problem}; put torchvision's {name} files there or set "
                "--data-dir / SIDAE_DATA_DIR to a folder that has them"
            ) from error
    try:
        return factory(True)
    except Exception as error:
        raise DataError(
            f"{name}: {problem} and the download failed ({one_line(error)}); put torchvision's "
            f"{name} files in {folder} or set --data-dir / SIDAE_DATA_DIR"
        ) from error


def _mnist_like(cls: type, name: str) -> Callable[[DataConfig, Path], tuple[ImageSet, ImageSet, ImageSet | None]]:
    def read(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
        folder = root / cls.__name__ / "raw"
        sets = [
            _open(name, folder, lambda dl, train=train: cls(str(root), train=train, download=dl), cfg.download)
            for train in (True, False)
        ]
        train, test = (_as_image_set(s.data, s.targets, "NHW") for s in sets)
        return train, test, None

    return read


def _read_cifar10(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    cls = _verified(torchvision.datasets.CIFAR10, cfg.verify)
    folder = root / cls.base_folder
    sets = [
        _open("cifar10", folder, lambda dl, train=train: cls(str(root), train=train, download=dl), cfg.download)
        for train in (True, False)
    ]
    train, test = (_as_image_set(s.data, s.targets, "NHWC") for s in sets)
    return train, test, None


def _read_stl10(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    """STL-10's 100k unlabelled images join the pre-training set, as the data set intends."""
    cls = _verified(torchvision.datasets.STL10, cfg.verify)
    folder = root / cls.base_folder
    train, test, unlabeled = (
        _as_image_set(s.data, s.labels, "NCHW")
        for s in (
            _open("stl10", folder, lambda dl, split=split: cls(str(root), split=split, download=dl), cfg.download)
            for split in ("train", "test", "unlabeled")
        )
    )
    return train, test, unlabeled


def _image_folder_reader(subfolder: str) -> Callable[[DataConfig, Path], tuple[ImageSet, ImageSet, ImageSet | None]]:
    """<root>/<subfolder>/train/<class>/* and .../test/<class>/* (see sidae.image_folder)."""

    def read(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
        train, test = read_image_folder(root / subfolder, cfg.dataset, cfg.image_size)
        return train, test, None

    return read


READERS: dict[str, Callable[[DataConfig, Path], tuple[ImageSet, ImageSet, ImageSet | None]]] = {
    "mnist": _mnist_like(torchvision.datasets.MNIST, "mnist"),
    "fashion-mnist": _mnist_like(torchvision.datasets.FashionMNIST, "fashion-mnist"),
    "cifar10": _read_cifar10,
    "stl10": _read_stl10,
    "imagefolder": _image_folder_reader("."),
    "cifar10-jpeg": _image_folder_reader("CIFAR10-JPEG"),
}


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units, from a seeded sample of the images."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    sample = images[torch.randperm(len(images), generator=generator)[:_STATS_SAMPLE]].float() / 255
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def validation_size(n_train: int, requested: int | None) -> int:
    """The requested size, else a tenth of the labelled training images, at most 5,000 (about
    +-0.7 points of standard error on an accuracy; MNIST's and Fashion-MNIST's published
    results use 5,000 of their 60,000) and at least one."""
    if requested is not None:
        return requested
    return max(1, min(VAL_MAX, round(VAL_FRACTION * n_train)))


def split(train: ImageSet, test: ImageSet, unlabeled: ImageSet | None, cfg: DataConfig, name: str) -> DataSplits:
    """Carve the validation split from the labelled training set and pick the pre-training set."""
    n_val = validation_size(len(train), cfg.val_size)
    if n_val >= len(train):
        raise DataError(f"{name}: val_size {n_val} leaves no training images (training set has {len(train)})")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val, rest = train.subset(order[:n_val]), train.subset(order[n_val:])
    pretrain = (
        rest
        if unlabeled is None
        else ImageSet(torch.cat([rest.images, unlabeled.images]), torch.cat([rest.labels, unlabeled.labels]))
    )
    if cfg.train_limit is not None and cfg.train_limit < len(pretrain):
        pick = torch.randperm(len(pretrain), generator=torch.Generator().manual_seed(SPLIT_SEED + 1))
        pretrain = pretrain.subset(pick[: cfg.train_limit])
    labels = rest.labels[rest.labels >= 0]
    mean, std = channel_stats(pretrain.images)
    return DataSplits(name, pretrain, rest, val, test, int(labels.max()) + 1, mean, std)


def load_splits(cfg: DataConfig) -> DataSplits:
    """Read cfg.dataset from data_root(cfg.data_dir) and split it."""
    train, test, unlabeled = READERS[cfg.dataset](cfg, data_root(cfg.data_dir))
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"{cfg.dataset}: train images are {tuple(train.images.shape[1:])} but test images "
            f"{tuple(test.images.shape[1:])}"
        )
    return split(train, test, unlabeled, cfg, cfg.dataset)
