"""Data sets as uint8 tensors in memory, read once through torchvision's own dataset classes.

Every data set becomes four `ImageSet`s: `pretrain` (images for self-supervised training,
labels unused), `train` (the labelled pool for probes and fine-tuning), `val` (carved out of
the labelled training set with a fixed seed, for monitoring and model selection) and `test`
(final numbers only). Batches are sliced from these tensors on the training device; no
DataLoader workers or per-image Python transforms are involved.

Image folders (`imagefolder`, and `cifar10-jpeg` for the JPEG copy of CIFAR-10 in
<data_dir>/CIFAR10-JPEG) are decoded once and cached in cache_dir(), keyed by their files' names,
sizes and modification times: every later run, and every trial process of a study, reads the
cache instead of decoding again.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

from sidae.checkpoint import save_atomic
from sidae.config import DataConfig

SPLIT_SEED = 0  # the validation split and pre-training subset are the same for every run
_STATS_SAMPLE = 10_000  # images used to estimate channel mean/std
VAL_FRACTION, VAL_MAX = 0.1, 5000  # the automatic validation split (see validation_size)
_DECODE_CHUNK = 1024  # image files per decoding task
_CACHE_FORMAT = 1  # bump when the cache's content changes meaning


class DataError(RuntimeError):
    """Missing, corrupt or unusable data; the message is one line that says what to do."""


@dataclass(frozen=True)
class ImageSet:
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,), -1 where unlabelled

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


def to_float(images: Tensor, device: torch.device) -> Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1] on device: batches are sliced from the uint8 sets
    and converted only on the device that uses them."""
    return images.to(device, non_blocking=True).float().div_(255)


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
    unverified = {"train_list": [[name, None] for name, _ in cls.train_list],
                  "test_list": [[name, None] for name, _ in cls.test_list]}
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
        problem = (f"unreadable or corrupt files in {folder} ({_one_line(error)})" if present
                   else f"no files in {folder}")
        if present or not download:
            raise DataError(f"{name}: {problem}; put torchvision's {name} files there or set "
                            "--data-dir / SIDAE_DATA_DIR to a folder that has them") from error
    try:
        return factory(True)
    except Exception as error:
        raise DataError(f"{name}: {problem} and the download failed ({_one_line(error)}); put torchvision's "
                        f"{name} files in {folder} or set --data-dir / SIDAE_DATA_DIR") from error


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _mnist_like(cls: type, name: str) -> Callable[[DataConfig, Path], tuple[ImageSet, ImageSet, ImageSet | None]]:
    def read(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
        folder = root / cls.__name__ / "raw"
        sets = [_open(name, folder, lambda dl, train=train: cls(str(root), train=train, download=dl), cfg.download)
                for train in (True, False)]
        train, test = (_as_image_set(s.data, s.targets, "NHW") for s in sets)
        return train, test, None

    return read


def _read_cifar10(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    cls = _verified(torchvision.datasets.CIFAR10, cfg.verify)
    folder = root / cls.base_folder
    sets = [_open("cifar10", folder, lambda dl, train=train: cls(str(root), train=train, download=dl), cfg.download)
            for train in (True, False)]
    train, test = (_as_image_set(s.data, s.targets, "NHWC") for s in sets)
    return train, test, None


def _read_stl10(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    """STL-10's 100k unlabelled images join the pre-training set, as the data set intends."""
    cls = _verified(torchvision.datasets.STL10, cfg.verify)
    folder = root / cls.base_folder
    train, test, unlabeled = (
        _as_image_set(s.data, s.labels, "NCHW")
        for s in (_open("stl10", folder, lambda dl, split=split: cls(str(root), split=split, download=dl), cfg.download)
                  for split in ("train", "test", "unlabeled"))
    )
    return train, test, unlabeled


def cache_dir() -> Path:
    """Where decoded image folders are cached: $SIDAE_CACHE_DIR, else $XDG_CACHE_HOME/sidae,
    else ~/.cache/sidae. Never the data folder: it may be shared and read-only."""
    if os.environ.get("SIDAE_CACHE_DIR"):
        return Path(os.environ["SIDAE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sidae"


@dataclass(frozen=True)
class FolderListing:
    """One split folder of an image folder (<split>/<class>/<image>), as ImageFolder lists it."""

    folder: Path
    classes: tuple[str, ...]
    paths: tuple[str, ...]
    labels: tuple[int, ...]

    def key(self, image_size: int) -> str:
        """A digest of every file's name, size and modification time and of the image size:
        any added, removed or edited image (or another size) gives another key."""
        digest = hashlib.sha256(f"{_CACHE_FORMAT}\n{image_size}\n".encode())
        prefix = len(str(self.folder))  # ImageFolder's paths all start with the folder
        for path in self.paths:
            stat = os.stat(path)
            digest.update(f"{path[prefix:]}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def cache_file(self, image_size: int) -> Path:
        """One cache file per folder and image size, so an edited folder replaces its cache."""
        name = hashlib.sha256(f"{self.folder.resolve()}\0{image_size}".encode()).hexdigest()[:20]
        return cache_dir() / f"imagefolder-{name}.pt"


def list_image_folder(folder: Path, name: str) -> FolderListing:
    if not folder.is_dir():
        raise DataError(f"{name}: {folder} is missing; expected {folder.parent}/train/<class>/*.png and "
                        f"{folder.parent}/test/<class>/*.png (set --data-dir / SIDAE_DATA_DIR)")
    try:
        found = torchvision.datasets.ImageFolder(str(folder))
    except Exception as error:  # no class folders or no images
        raise DataError(f"{name}: {_one_line(error)}") from error
    paths, labels = zip(*found.samples, strict=True)
    return FolderListing(folder, tuple(found.classes), paths, labels)


def _decode_file(path: str, image_size: int) -> Tensor:
    """uint8 (3, S, S): RGB, resized (shorter side) and centre-cropped to image_size.

    torchvision's native decoders read JPEG/PNG/WebP about 2x faster than PIL (in 0.29 they
    are deprecated in favour of TorchCodec, not installed here); PIL reads the other formats
    ImageFolder accepts (BMP, TIFF, PPM/PGM)."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        image = torchvision.io.decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                                            mode=torchvision.io.ImageReadMode.RGB)
    except RuntimeError:
        with Image.open(io.BytesIO(data)) as opened:
            image = v2.functional.pil_to_tensor(opened.convert("RGB"))
    if image.shape[-2:] != (image_size, image_size):
        image = v2.functional.center_crop(v2.functional.resize(image, image_size, antialias=True), image_size)
    return image


def _decode_chunk(paths: Sequence[str], image_size: int) -> list[Tensor]:
    images = []
    for path in paths:
        try:
            images.append(_decode_file(path, image_size))
        except Exception as error:
            raise DataError(f"imagefolder: cannot decode {path} ({_one_line(error)})") from error
    return images


def decode_images(paths: Sequence[str], image_size: int) -> Tensor:
    """Decode image files into one uint8 (N, 3, S, S) tensor, a chunk of files per thread (the
    decoders release the GIL)."""
    from tqdm import tqdm

    chunks = [paths[i:i + _DECODE_CHUNK] for i in range(0, len(paths), _DECODE_CHUNK)]
    images: list[Tensor] = []
    with (warnings.catch_warnings(), ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool,
          tqdm(total=len(paths), desc="decode images", unit="img", leave=False) as bar):
        warnings.filterwarnings("ignore", message="The image decoding .* deprecated", category=DeprecationWarning)
        for decoded in pool.map(partial(_decode_chunk, image_size=image_size), chunks):
            images.extend(decoded)
            bar.update(len(decoded))
    return torch.stack(images)


def _load_cache(path: Path, key: str) -> ImageSet | None:
    """The cached images if the file holds this key; None if it is absent or stale; a corrupt
    file is reported and decoded again."""
    if not path.exists():
        return None
    try:
        cached = torch.load(path, weights_only=True, mmap=True)  # pages are read as the split copies them
        stale = cached["key"] != key
        images = None if stale else ImageSet(cached["images"], cached["labels"])
    except Exception as error:  # truncated or overwritten file: torch raises many types
        warnings.warn(f"imagefolder: cache {path} is unreadable ({_one_line(error)}); decoding the images again",
                      RuntimeWarning, stacklevel=3)
        return None
    return images


def _save_cache(path: Path, key: str, images: ImageSet) -> None:
    """Atomic (temporary file, fsync, rename): processes that decode the same folder at once
    each write a whole file, and a reader never sees half of one."""
    try:
        save_atomic({"key": key, "images": images.images, "labels": images.labels}, path)
    except OSError as error:  # an unwritable cache costs time, not the run
        warnings.warn(f"imagefolder: cannot write the cache {path} ({_one_line(error)}); set SIDAE_CACHE_DIR "
                      "to a writable folder", RuntimeWarning, stacklevel=3)


def read_image_split(listing: FolderListing, image_size: int) -> ImageSet:
    """A split folder's images, decoded once and then read back from the cache."""
    key, path = listing.key(image_size), listing.cache_file(image_size)
    images = _load_cache(path, key)
    if images is None:
        images = ImageSet(decode_images(listing.paths, image_size), torch.tensor(listing.labels, dtype=torch.int64))
        _save_cache(path, key, images)
    return images


def _check_same_classes(train: FolderListing, test: FolderListing, name: str) -> None:
    """Labels are class-folder indices in sorted order: different class sets would silently
    mislabel the test images."""
    if train.classes == test.classes:
        return
    only_train = ", ".join(sorted(set(train.classes) - set(test.classes))) or "-"
    only_test = ", ".join(sorted(set(test.classes) - set(train.classes))) or "-"
    raise DataError(f"{name}: {train.folder} and {test.folder} have different classes: only in train: {only_train}; "
                    f"only in test: {only_test}")


def _image_folder_reader(subfolder: str) -> Callable[[DataConfig, Path], tuple[ImageSet, ImageSet, ImageSet | None]]:
    """<root>/<subfolder>/train/<class>/* and .../test/<class>/*, decoded once (cached in
    cache_dir()), resized (shorter side) and centre-cropped to image_size."""

    def read(cfg: DataConfig, root: Path) -> tuple[ImageSet, ImageSet, ImageSet | None]:
        train, test = (list_image_folder(root / subfolder / split, cfg.dataset) for split in ("train", "test"))
        _check_same_classes(train, test, cfg.dataset)
        return read_image_split(train, cfg.image_size), read_image_split(test, cfg.image_size), None

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
    pretrain = rest if unlabeled is None else ImageSet(torch.cat([rest.images, unlabeled.images]),
                                                       torch.cat([rest.labels, unlabeled.labels]))
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
        raise DataError(f"{cfg.dataset}: train images are {tuple(train.images.shape[1:])} but test images "
                        f"{tuple(test.images.shape[1:])}")
    return split(train, test, unlabeled, cfg, cfg.dataset)
