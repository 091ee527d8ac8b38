"""Writers for small data sets in each data set's real on-disk format, so the tests exercise
torchvision's own reading code (not a stand-in)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import torchvision
from PIL import Image


def random_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def balanced_labels(n: int, classes: int = 10) -> np.ndarray:
    return (np.arange(n) % classes).astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX (LeCun's MNIST format): magic 0x0000 08 <ndim>, big-endian dims, raw uint8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, n_train: int, n_test: int) -> None:
    raw = root / folder / "raw"
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", random_images(n, (28, 28), seed))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", balanced_labels(n))


def write_cifar10(root: Path, n_per_batch: int) -> None:
    """CIFAR-10's python pickles: data_batch_1..5, test_batch (rows of 3072 = R, G, B planes).
    The originals are Python 2 pickles whose str keys torchvision reads back as str."""
    folder = root / torchvision.datasets.CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        entry = {
            "data": random_images(n_per_batch, (3072,), seed),
            "labels": balanced_labels(n_per_batch).tolist(),
            "batch_label": name,
            "filenames": [f"{i}.png" for i in range(n_per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072, "num_cases_per_batch": n_per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def write_stl10(root: Path, n_train: int, n_test: int, n_unlabeled: int) -> None:
    """STL-10's binaries: uint8 images stored column-major (N, 3, 96, 96) transposed, labels 1..10."""
    folder = root / torchvision.datasets.STL10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 0), ("test", n_test, 1), ("unlabeled", n_unlabeled, 2)):
        images = random_images(n, (3, 96, 96), seed).transpose(0, 1, 3, 2)
        (folder / f"{name}_X.bin").write_bytes(np.ascontiguousarray(images).tobytes())
        if name != "unlabeled":
            (folder / f"{name}_y.bin").write_bytes((balanced_labels(n) + 1).tobytes())


def write_image_folder(root: Path, n_per_class: int, classes: int = 3, size: int = 40, suffix: str = ".png") -> None:
    """<root>/{train,test}/class<c>/<i><suffix>: image i of random_images(..., seed 0 / 1) in class i % classes."""
    for split, seed in (("train", 0), ("test", 1)):
        images = random_images(n_per_class * classes, (3, size, size), seed)
        for i, image in enumerate(images):
            path = root / split / f"class{i % classes}" / f"{i}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(path)
