"""Image folders decoded once and cached: real PNG/JPEG files written by the tests, read by
sidae.image_folder's real reader; the cache is a real file in a temporary SIDAE_CACHE_DIR."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from sidae import image_folder, train
from sidae.config import DataConfig
from sidae.data import load_splits, validation_size
from sidae.evaluate import describe_splits
from sidae.image_set import DataError
from tests import formats


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SIDAE_CACHE_DIR", str(folder))
    return folder


def _cfg(root: Path, dataset: str = "imagefolder", **kw: object) -> DataConfig:
    return DataConfig(dataset=dataset, data_dir=str(root), download=False, **kw)


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(image_folder, "decode_images", refuse)


def test_first_load_writes_the_cache_and_the_second_reads_it(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "images"
    formats.write_image_folder(root, n_per_class=4, classes=3, size=32)
    first = load_splits(_cfg(root, val_size=3))
    assert len(list(cache.glob("imagefolder-*.pt"))) == 2  # train and test
    _no_decoding(monkeypatch)
    second = load_splits(_cfg(root, val_size=3))
    assert torch.equal(first.test.images, second.test.images) and torch.equal(first.val.labels, second.val.labels)
    expected = formats.random_images(12, (3, 32, 32), 1)[0]  # test/class0/0.png, lossless
    assert torch.equal(second.test.images[0], torch.from_numpy(expected))


def test_an_edited_image_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "images"
    formats.write_image_folder(root, n_per_class=2, classes=2, size=32)
    load_splits(_cfg(root, val_size=1))
    edited = root / "test" / "class0" / "0.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(edited)
    os.utime(edited, ns=(1, 1))  # even with an old modification time: the size differs
    data = load_splits(_cfg(root, val_size=1))
    assert data.test.images[0, 0].eq(255).all() and data.test.images[0, 1:].eq(0).all()
    _no_decoding(monkeypatch)  # the cache of the edited folder was replaced
    load_splits(_cfg(root, val_size=1))


def test_a_corrupt_cache_is_rebuilt_with_a_warning(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "images"
    formats.write_image_folder(root, n_per_class=2, classes=2, size=32)
    first = load_splits(_cfg(root, val_size=1))
    for file in cache.glob("imagefolder-*.pt"):
        file.write_bytes(file.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="cache .* is unreadable.*decoding the images again"):
        again = load_splits(_cfg(root, val_size=1))
    assert torch.equal(first.test.images, again.test.images)
    assert all(torch.load(file, weights_only=True)["key"] for file in cache.glob("imagefolder-*.pt"))


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs remounted read-only (chmod does not stop root, which the tests run as)."""
    mount = tmp_path / "read-only"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (tests need root): {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_read_only_data_folder_is_read_and_cached_elsewhere(read_only_folder: Path, cache: Path) -> None:
    formats.write_image_folder(read_only_folder / "CIFAR10-JPEG", n_per_class=3, classes=2, size=32, suffix=".jpg")
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_folder)], check=True)
    data = load_splits(_cfg(read_only_folder, dataset="cifar10-jpeg", val_size=1))
    assert data.image_shape == (3, 32, 32) and len(data.test) == 6
    assert len(list(cache.glob("imagefolder-*.pt"))) == 2


def test_resized_and_cropped_to_the_image_size(tmp_path: Path) -> None:
    formats.write_image_folder(tmp_path, n_per_class=2, classes=2, size=40)
    assert load_splits(_cfg(tmp_path, val_size=1, image_size=16)).image_shape == (3, 16, 16)


def test_different_class_folders_are_a_one_line_error(tmp_path: Path) -> None:
    formats.write_image_folder(tmp_path, n_per_class=2, classes=3, size=32)
    (tmp_path / "test" / "class2").rename(tmp_path / "test" / "class9")
    with pytest.raises(DataError, match="different classes: only in train: class2; only in test: class9") as error:
        load_splits(_cfg(tmp_path, val_size=1))
    assert "\n" not in str(error.value)


def test_cifar10_jpeg_names_the_folder_it_looks_in(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"cifar10-jpeg: {tmp_path}/CIFAR10-JPEG/train is missing"):
        load_splits(_cfg(tmp_path, dataset="cifar10-jpeg"))


@pytest.mark.parametrize(("n_train", "expected"), [(60000, 5000), (50000, 5000), (6000, 600), (12, 1)])
def test_validation_split_is_a_tenth_at_most_5000(n_train: int, expected: int) -> None:
    assert validation_size(n_train, None) == expected
    assert validation_size(n_train, 7) == 7


def test_split_sizes_are_described(tmp_path: Path) -> None:
    formats.write_image_folder(tmp_path, n_per_class=20, classes=5, size=32)
    text = describe_splits(load_splits(_cfg(tmp_path, train_limit=50)), (0.1, 1.0))
    assert re.fullmatch(
        r"imagefolder: 50 pre-training, 90 labelled pool, 10 validation, 100 test images; "
        r"labelled images per fraction: 10 % = 10, 100 % = 90",
        text,
    ), text


def test_the_cli_prints_its_splits_and_says_the_cpu_network_is_reduced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    formats.write_image_folder(tmp_path / "images", n_per_class=40, classes=2, size=32)
    argv = [
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(tmp_path / "images"),
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--label-fractions",
        "0.5,1",
        "--no-finetune",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
    ]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "reduced ResNet-18 (width 16" in out
    assert (
        "imagefolder: 72 pre-training, 72 labelled pool, 8 validation, 80 test images; "
        "labelled images per fraction: 50 % = 36, 100 % = 72"
    ) in out


def test_a_folder_shaped_like_a_users_loads_as_one_rgb_size_with_its_uneven_classes(tmp_path: Path) -> None:
    """Mixed sizes (square or not), JPEG and PNG, some grayscale files, uneven classes: every
    image comes out RGB at the image size, a grayscale one with equal channels, and each class
    keeps its count across the labelled pool and validation."""
    counts = {"many": 24, "some": 10, "few": 4}
    sides = [(32, 32), (96, 40), (48, 64), (40, 96)]
    pixels = formats.random_images(sum(counts.values()) + 3 * 2, (3, 96, 96), seed=2)
    gray_files = set()
    i = 0
    for split, per_class in (("train", counts), ("test", dict.fromkeys(counts, 2))):
        for name, n in per_class.items():
            (tmp_path / split / name).mkdir(parents=True)
            for k in range(n):
                width, height = sides[i % len(sides)]
                image = Image.fromarray(pixels[i].transpose(1, 2, 0)).resize((width, height))
                if i % 7 == 0:
                    image = image.convert("L")
                    gray_files.add((split, name, k))
                image.save(tmp_path / split / name / f"{k}{'.jpg' if i % 2 else '.png'}")
                i += 1
    assert gray_files  # some of each split's files are grayscale

    splits = load_splits(_cfg(tmp_path, val_size=6, image_size=32))
    assert splits.image_shape == (3, 32, 32) and splits.num_classes == 3
    labelled = torch.cat([splits.train.labels, splits.val.labels])
    assert sorted(torch.bincount(labelled).tolist()) == sorted(counts.values())
    assert torch.bincount(splits.test.labels).tolist() == [2, 2, 2]
    every = torch.cat([splits.train.images, splits.val.images, splits.test.images])
    gray = (every[:, 0] == every[:, 1]).all(dim=(1, 2)) & (every[:, 1] == every[:, 2]).all(dim=(1, 2))
    assert int(gray.sum()) == len(gray_files)  # random colour pixels are never equal by chance
