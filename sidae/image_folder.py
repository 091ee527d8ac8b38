"""Image folders (<split>/<class>/<image>, the layout of torchvision's `ImageFolder`) decoded
once into uint8 tensors and cached.

The cache lives in cache_dir(), keyed by the files' names, sizes and modification times and the
image size: every later run, and every trial process of a study, reads the cache instead of
decoding again. Images are resized (shorter side) and centre-cropped to a square, as
torchvision's `Resize` + `CenterCrop` do.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

from sidae.checkpoint import save_atomic
from sidae.image_set import DataError, ImageSet, one_line

_DECODE_CHUNK = 1024  # image files per decoding task
_CACHE_FORMAT = 1  # bump when the cache's content changes meaning


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
        raise DataError(
            f"{name}: {folder} is missing; expected {folder.parent}/train/<class>/*.png and "
            f"{folder.parent}/test/<class>/*.png (set --data-dir / SIDAE_DATA_DIR)"
        )
    try:
        found = torchvision.datasets.ImageFolder(str(folder))
    except Exception as error:  # no class folders or no images
        raise DataError(f"{name}: {one_line(error)}") from error
    paths, labels = zip(*found.samples, strict=True)
    return FolderListing(folder, tuple(found.classes), paths, labels)


def _decode_file(path: str, image_size: int) -> Tensor:
    """uint8 (3, S, S): RGB, resized (shorter side) and centre-cropped to image_size.

    torchvision's native decoders read JPEG/PNG/WebP, faster than PIL (the figures are in
    benchmarks/README.md, image_folder_cache.py; in torchvision 0.29 they are deprecated in favour
    of TorchCodec, not installed here); PIL reads the other formats ImageFolder accepts (BMP,
    TIFF, PPM/PGM)."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        image = torchvision.io.decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=torchvision.io.ImageReadMode.RGB
        )
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
            raise DataError(f"imagefolder: cannot decode {path} ({one_line(error)})") from error
    return images


def decode_images(paths: Sequence[str], image_size: int) -> Tensor:
    """Decode image files into one uint8 (N, 3, S, S) tensor, a chunk of files per thread (the
    decoders release the GIL)."""
    from tqdm import tqdm

    chunks = [paths[i : i + _DECODE_CHUNK] for i in range(0, len(paths), _DECODE_CHUNK)]
    images: list[Tensor] = []
    with (
        warnings.catch_warnings(),
        ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool,
        tqdm(total=len(paths), desc="decode images", unit="img", leave=False) as bar,
    ):
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
        warnings.warn(
            f"imagefolder: cache {path} is unreadable ({one_line(error)}); decoding the images again",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return images


def _save_cache(path: Path, key: str, images: ImageSet) -> None:
    """Atomic (temporary file, fsync, rename): processes that decode the same folder at once
    each write a whole file, and a reader never sees half of one."""
    try:
        save_atomic({"key": key, "images": images.images, "labels": images.labels}, path)
    except OSError as error:  # an unwritable cache costs time, not the run
        warnings.warn(
            f"imagefolder: cannot write the cache {path} ({one_line(error)}); set SIDAE_CACHE_DIR to a writable folder",
            RuntimeWarning,
            stacklevel=3,
        )


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
    raise DataError(
        f"{name}: {train.folder} and {test.folder} have different classes: only in train: {only_train}; "
        f"only in test: {only_test}"
    )


def read_image_folder(folder: Path, name: str, image_size: int) -> tuple[ImageSet, ImageSet]:
    """<folder>/train/<class>/* and <folder>/test/<class>/*, decoded once (cached in cache_dir()),
    resized (shorter side) and centre-cropped to image_size."""
    train, test = (list_image_folder(folder / split, name) for split in ("train", "test"))
    _check_same_classes(train, test, name)
    return read_image_split(train, image_size), read_image_split(test, image_size)
