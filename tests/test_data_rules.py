"""The data rules: validation images are never pre-trained on nor in the labelled pool, labels
stay with their images through the split, image folders are resized (shorter side) and
centre-cropped, CIFAR-10's labels come out of the release's own pickle format, and the real
Fashion-MNIST reads as published.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from sidae.config import DataConfig
from sidae.data import load_splits
from sidae.image_set import ImageSet
from tests import formats
from tests.conftest import SHARED_DATA


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDAE_CACHE_DIR", str(tmp_path / "cache"))


def _cfg(dataset: str, root: Path, **kw: object) -> DataConfig:
    return DataConfig(dataset=dataset, data_dir=str(root), download=False, **kw)


def _ids(images: ImageSet) -> list[bytes]:
    return [row.numpy().tobytes() for row in images.images.flatten(1)]


def _written_mnist(root: Path, n_train: int, n_test: int) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """formats.write_mnist's files, and each written image's label by its bytes (train, test)."""
    formats.write_mnist(root, "MNIST", n_train=n_train, n_test=n_test)
    labelled = []
    for n, seed in ((n_train, 0), (n_test, 1)):
        images, labels = formats.random_images(n, (28, 28), seed), formats.balanced_labels(n)
        labelled.append({image.tobytes(): int(label) for image, label in zip(images, labels, strict=True)})
    return labelled[0], labelled[1]


@pytest.mark.parametrize("train_limit", [None, 120])
def test_validation_is_disjoint_from_the_labelled_pool_and_pre_training(
    tmp_path: Path, train_limit: int | None
) -> None:
    train_written, test_written = _written_mnist(tmp_path, n_train=300, n_test=50)
    data = load_splits(_cfg("mnist", tmp_path, val_size=40, train_limit=train_limit))
    val, pool, pretrain, test = (_ids(s) for s in (data.val, data.train, data.pretrain, data.test))
    for ids in (val, pool, pretrain, test):
        assert len(set(ids)) == len(ids)  # nothing drawn twice
    assert len(val) == 40 and not set(val) & set(pool) and not set(val) & set(pretrain)
    assert set(val) | set(pool) == set(train_written)  # the training file, split in two
    assert set(pretrain) <= set(pool) and len(pretrain) == (train_limit or 260)
    assert set(test) == set(test_written)
    for split, ids in ((data.val, val), (data.train, pool), (data.pretrain, pretrain)):
        assert split.labels.tolist() == [train_written[i] for i in ids]  # labels travel with their images
    assert data.test.labels.tolist() == [test_written[i] for i in test]


def test_stl10_unlabelled_images_join_pre_training_but_validation_stays_out(tmp_path: Path) -> None:
    formats.write_stl10(tmp_path, n_train=30, n_test=10, n_unlabeled=25)
    data = load_splits(_cfg("stl10", tmp_path, val_size=8, verify=False))
    val, pool, pretrain = (set(_ids(s)) for s in (data.val, data.train, data.pretrain))
    assert len(val) == 8 and not val & pool and not val & pretrain
    assert pool <= pretrain and len(pretrain - pool) == 25


def _three_bands(long: int, short: int) -> np.ndarray:
    """A (short, long, 3) image: red and blue 10-pixel margins at the ends of the long side, and
    between them green up to a quarter of the centred square (short x short), white after."""
    image = np.full((short, long, 3), 255, dtype=np.uint8)
    margin = (long - short) // 2
    image[:, :10] = (255, 0, 0)
    image[:, long - 10 :] = (0, 0, 255)
    image[:, 10 : margin + short // 4] = (0, 160, 0)
    return image


def test_image_folder_images_are_resized_by_the_shorter_side_then_centre_cropped(tmp_path: Path) -> None:
    """80x40 and 40x80 images at image_size 16: the 40-pixel side becomes 16 and the centred
    16x16 square stays: its first quarter green, the rest white; the red and blue margins, which a
    squashing resize or an off-centre crop would keep, are gone; without the resize the crop
    would be all white."""
    wide = _three_bands(80, 40)
    tall = wide.transpose(1, 0, 2)
    for split in ("train", "test"):
        for name, image in (("wide", wide), ("tall", tall)):
            path = tmp_path / split / name / "0.png"
            path.parent.mkdir(parents=True)
            Image.fromarray(np.ascontiguousarray(image)).save(path)
    data = load_splits(_cfg("imagefolder", tmp_path, val_size=1, image_size=16))
    tall_out, wide_out = data.test.images.float()  # classes in sorted order: tall, wide
    for out in (wide_out, tall_out.transpose(1, 2)):  # both as (C, rows, columns along the long side)
        assert out.shape == (3, 16, 16)
        green, white = out[:, :, :3], out[:, :, 6:]
        assert torch.all(green[1] > 120) and torch.all(green[0] < 40) and torch.all(green[2] < 40)
        assert torch.all(white > 230)


# Python 2's cPickle opcodes, as in CIFAR-10's own python files ("data_batch_1" starts with
# b"\x80\x02}q\x01(U\x04data"): str keys and raw bytes are py2 strings (SHORT_BINSTRING /
# BINSTRING), which Python 3 reads back only with encoding="latin1", as torchvision does.
def _py2_str(text: str | bytes) -> bytes:
    raw = text.encode("latin1") if isinstance(text, str) else text
    return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw


def _py2_int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def _py2_uint8_array(array: np.ndarray) -> bytes:
    """numpy's array reduce as Python 2 numpy pickled it: _reconstruct(ndarray, (0,), 'b') then
    __setstate__((1, shape, dtype('u1'), False, raw bytes))."""
    dtype = (
        b"cnumpy\ndtype\n"
        + _py2_str("u1")
        + _py2_int(0)
        + _py2_int(1)
        + b"\x87R"
        + b"("
        + _py2_int(3)
        + _py2_str("|")
        + b"NNN"
        + _py2_int(-1)
        + _py2_int(-1)
        + _py2_int(0)
        + b"tb"
    )
    shape = b"(" + b"".join(_py2_int(n) for n in array.shape) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _py2_int(0)
        + b"\x85"
        + _py2_str("b")
        + b"\x87R"
        + b"("
        + _py2_int(1)
        + shape
        + dtype
        + b"\x89"
        + _py2_str(array.tobytes())
        + b"tb"
    )


def _py2_value(value: object) -> bytes:
    if isinstance(value, np.ndarray):
        return _py2_uint8_array(value)
    if isinstance(value, list):
        return b"](" + b"".join(_py2_value(item) for item in value) + b"e"
    if isinstance(value, int):
        return _py2_int(value)
    return _py2_str(value)  # type: ignore[arg-type]


def _py2_pickle(entry: dict[str, object]) -> bytes:
    body = b"".join(_py2_str(key) + _py2_value(value) for key, value in entry.items())
    return b"\x80\x02}(" + body + b"u."


def _write_cifar10_py2(root: Path, n_per_batch: int) -> dict[str, tuple[np.ndarray, list[int]]]:
    """cifar-10-batches-py/ with five training batches, test_batch and batches.meta in the
    release's format; labels a seeded shuffle (not in image order) so a label that leaves its
    image shows."""
    folder = root / torchvision.datasets.CIFAR10.base_folder
    folder.mkdir(parents=True)
    written = {}
    rng = np.random.default_rng(7)
    for seed, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = formats.random_images(n_per_batch, (3072,), 100 + seed)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        entry = {
            "batch_label": f"batch {name}",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{seed}_{i}.png" for i in range(n_per_batch)],
        }
        (folder / name).write_bytes(_py2_pickle(entry))
        written[name] = (data, labels)
    meta = {
        "num_cases_per_batch": n_per_batch,
        "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        "num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(_py2_pickle(meta))
    return written


def test_cifar10_labels_from_the_release_pickle_format(tmp_path: Path) -> None:
    written = _write_cifar10_py2(tmp_path, n_per_batch=12)
    raw = (tmp_path / torchvision.datasets.CIFAR10.base_folder / "test_batch").read_bytes()
    assert raw.startswith(b"\x80\x02}(U\x0bbatch_label")
    pickletools.dis(raw, out=io.StringIO())  # a well-formed opcode stream
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)  # py2 strings: only encoding="latin1" reads them, as the release needs
    data = load_splits(_cfg("cifar10", tmp_path, val_size=6, verify=False))
    test_images, test_labels = written["test_batch"]
    assert data.test.labels.tolist() == test_labels
    assert torch.equal(data.test.images, torch.from_numpy(test_images.reshape(-1, 3, 32, 32)))
    by_image = {
        image.tobytes(): label
        for name, (images, labels) in written.items()
        if name != "test_batch"
        for image, label in zip(images, labels, strict=True)
    }
    for split in (data.train, data.val):
        assert split.labels.tolist() == [by_image[row.numpy().tobytes()] for row in split.images.flatten(1)]
    assert len(data.train) + len(data.val) == 60 and data.num_classes == 10


def _fashion_mnist_dir() -> Path:
    if not (SHARED_DATA / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.fail(
            f"real Fashion-MNIST not found in {SHARED_DATA}: run `python -m sidae.fetch fashion-mnist "
            "--data-dir DIR` and set SIDAE_DATA_DIR=DIR"
        )
    return SHARED_DATA


def test_real_fashion_mnist() -> None:
    """The published Fashion-MNIST: 6,000 training and 1,000 test images per class, pixel mean
    0.2860 (std 0.3530) over the training set, the well-known first labels (9 = ankle boot)."""
    data = load_splits(DataConfig(dataset="fashion-mnist", data_dir=str(_fashion_mnist_dir()), download=False))
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert data.image_shape == (1, 28, 28) and data.num_classes == 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert torch.bincount(torch.cat([data.train.labels, data.val.labels])).tolist() == [6000] * 10
    assert data.test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    pixels = torch.cat([data.train.images, data.val.images]).float() / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=5e-4)
    assert pixels.std().item() == pytest.approx(0.3530, abs=5e-4)
