"""Each data set's real torchvision loading code on small files in the real on-disk format,
the real MNIST when present, the splits, and clear errors for missing or corrupt files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sidae.config import DataConfig
from sidae.data import data_root, load_splits
from sidae.image_set import DataError
from tests import formats


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image folders are cached under SIDAE_CACHE_DIR: not in the user's ~/.cache."""
    monkeypatch.setenv("SIDAE_CACHE_DIR", str(tmp_path / "cache"))


def _cfg(dataset: str, root: Path, **kw: object) -> DataConfig:
    return DataConfig(dataset=dataset, data_dir=str(root), download=False, **kw)


@pytest.mark.parametrize(("dataset", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_files(tmp_path: Path, dataset: str, folder: str) -> None:
    formats.write_mnist(tmp_path, folder, n_train=120, n_test=30)
    data = load_splits(_cfg(dataset, tmp_path, val_size=20))
    assert data.image_shape == (1, 28, 28)
    assert (len(data.pretrain), len(data.train), len(data.val), len(data.test)) == (100, 100, 20, 30)
    assert data.pretrain.images.dtype == torch.uint8 and data.num_classes == 10
    expected = formats.random_images(30, (28, 28), 1)
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(expected))


def test_cifar10_pickles(tmp_path: Path) -> None:
    formats.write_cifar10(tmp_path, n_per_batch=20)
    data = load_splits(_cfg("cifar10", tmp_path, val_size=10, verify=False))
    assert data.image_shape == (3, 32, 32)
    assert (len(data.train), len(data.test)) == (90, 20)
    row = formats.random_images(20, (3072,), 5)[0]  # test_batch, first image: R, G, B planes
    assert torch.equal(data.test.images[0], torch.from_numpy(row.reshape(3, 32, 32)))


def test_cifar10_checksums_are_verified_by_default(tmp_path: Path) -> None:
    formats.write_cifar10(tmp_path, n_per_batch=4)
    with pytest.raises(DataError, match="cifar10: unreadable or corrupt files"):
        load_splits(_cfg("cifar10", tmp_path, val_size=2))


def test_stl10_binaries_with_unlabeled_pretraining(tmp_path: Path) -> None:
    formats.write_stl10(tmp_path, n_train=30, n_test=20, n_unlabeled=40)
    data = load_splits(_cfg("stl10", tmp_path, val_size=10, verify=False))
    assert data.image_shape == (3, 96, 96)
    assert len(data.pretrain) == 20 + 40 and len(data.train) == 20
    assert (data.pretrain.labels == -1).sum() == 40 and (data.train.labels >= 0).all()
    expected = formats.random_images(20, (3, 96, 96), 1)[0]  # stored transposed, read back upright
    assert torch.equal(data.test.images[0], torch.from_numpy(expected))
    assert data.test.labels[:3].tolist() == [0, 1, 2]


def test_image_folder(tmp_path: Path) -> None:
    formats.write_image_folder(tmp_path, n_per_class=4, classes=3, size=40)
    data = load_splits(_cfg("imagefolder", tmp_path, val_size=3, image_size=32))
    assert data.image_shape == (3, 32, 32) and data.num_classes == 3
    assert len(data.train) + len(data.val) == 12 and len(data.test) == 12


def test_real_mnist(mnist_dir: Path) -> None:
    data = load_splits(DataConfig(dataset="mnist", data_dir=str(mnist_dir), download=False))
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert data.mean[0] == pytest.approx(0.1307, abs=0.002) and data.std[0] == pytest.approx(0.3081, abs=0.002)
    counts = torch.bincount(data.test.labels)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_train_limit_and_val_split_are_fixed(mnist_dir: Path) -> None:
    a = load_splits(DataConfig(dataset="mnist", data_dir=str(mnist_dir), train_limit=500, download=False))
    b = load_splits(DataConfig(dataset="mnist", data_dir=str(mnist_dir), train_limit=500, download=False))
    assert len(a.pretrain) == 500 and torch.equal(a.pretrain.images, b.pretrain.images)
    assert torch.equal(a.val.labels, b.val.labels)


def test_missing_files_say_where_they_belong(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"mnist: no files in {tmp_path}/MNIST/raw.*SIDAE_DATA_DIR"):
        load_splits(_cfg("mnist", tmp_path))


def test_corrupt_idx_file(tmp_path: Path) -> None:
    formats.write_mnist(tmp_path, "MNIST", n_train=50, n_test=10)
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])  # truncated
    with pytest.raises(DataError, match="unreadable or corrupt") as error:
        load_splits(_cfg("mnist", tmp_path))
    assert "\n" not in str(error.value)


def test_corrupt_image_in_folder(tmp_path: Path) -> None:
    formats.write_image_folder(tmp_path, n_per_class=2, classes=2)
    (tmp_path / "train" / "class0" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode .*0.png"):
        load_splits(_cfg("imagefolder", tmp_path, val_size=1))


def test_data_dir_comes_from_option_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDAE_DATA_DIR", "/from/env")
    assert data_root("/from/option") == Path("/from/option")
    assert data_root(None) == Path("/from/env")
    monkeypatch.delenv("SIDAE_DATA_DIR")
    assert data_root(None) == Path("data")
