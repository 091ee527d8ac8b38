"""A user's first run: the data folder is empty and the data set is downloaded, once, through
torchvision's real download code, from a mirror on 127.0.0.1 that stands in for the internet
(tests/mnist_mirror.py); then the run goes on as usual and the next run downloads nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import REPO
from tests.mnist_mirror import RAW_FILES, gzip_mnist, serve, write_sitecustomize
from tests.smoke_study import QUICK, run_cli


@dataclass(frozen=True)
class Mirror:
    env: dict[str, str]  # a process environment whose torchvision downloads MNIST from the mirror
    requests: list[str]  # files the mirror has sent so far


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Iterator[Mirror]:
    folder = tmp_path_factory.mktemp("mirror")
    resources = gzip_mnist(mnist_dir / "MNIST" / "raw", folder / "files")
    with serve(folder / "files") as (url, requests):
        site = write_sitecustomize(folder / "site", url, resources)
        env = {k: v for k, v in os.environ.items() if k != "SIDAE_DATA_DIR"}
        yield Mirror({**env, "PYTHONPATH": str(site)}, requests)


def downloads(mirror: Mirror) -> list[str]:
    return sorted(path.lstrip("/") for path in mirror.requests)


def assert_real_mnist_in(data_dir: Path, mnist_dir: Path) -> None:
    for name in RAW_FILES:
        assert (data_dir / "MNIST" / "raw" / name).read_bytes() == (mnist_dir / "MNIST" / "raw" / name).read_bytes()


@pytest.mark.slow
def test_study_downloads_missing_data_once_on_the_driver(tmp_path: Path, mnist_dir: Path, mirror: Mirror) -> None:
    data_dir = tmp_path / "data"  # what ./data is on a fresh clone: not there at all
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    mirror.requests.clear()
    # two grid points: two trials at once (one wave on 2 cores), both reading the data the driver fetched
    command = ["--study", "w-sweep", *QUICK, "--w-grid", "0,1", "--storage", url]
    first = run_cli(*command, cwd=tmp_path, data_dir=data_dir, env=mirror.env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert downloads(mirror) == sorted(f"{name}.gz" for name in RAW_FILES)  # each file once: driver only
    assert_real_mnist_in(data_dir, mnist_dir)  # torchvision verified the archives' MD5 and unpacked them
    study = optuna.load_study(study_name="w-sweep-mnist", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2

    again = run_cli(*command, cwd=tmp_path, data_dir=data_dir, env=mirror.env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing left to run" in again.stderr
    assert len(mirror.requests) == len(RAW_FILES)  # nothing downloaded the second time


@pytest.mark.slow
def test_sidae_train_downloads_missing_data_once(tmp_path: Path, mnist_dir: Path, mirror: Mirror) -> None:
    data_dir = tmp_path / "data"
    mirror.requests.clear()
    for out in ("first", "second"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sidae.train",
                "--data-dir",
                str(data_dir),
                "--epochs",
                "1",
                "--train-limit",
                "256",
                "--val-size",
                "500",
                "--label-fractions",
                "0.01",  # the smallest probe: a run is 10 s, not 20 (the download is the point)
                "--no-finetune",
                "--quiet",
                "--out",
                str(tmp_path / out),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            env=mirror.env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert (tmp_path / out / "results.json").is_file()
        assert downloads(mirror) == sorted(f"{name}.gz" for name in RAW_FILES)
    assert_real_mnist_in(data_dir, mnist_dir)


def test_failed_download_says_what_failed_and_where_files_go(tmp_path: Path, mnist_dir: Path) -> None:
    """No mirror answers (a closed port on 127.0.0.1 stands in for no network)."""
    data_dir = tmp_path / "data"
    site = write_sitecustomize(tmp_path / "site", "http://127.0.0.1:9/", [(f"{n}.gz", "0" * 32) for n in RAW_FILES])
    env = {**{k: v for k, v in os.environ.items() if k != "SIDAE_DATA_DIR"}, "PYTHONPATH": str(site)}
    work = tmp_path / "work"
    work.mkdir()
    done = run_cli("--study", "w-sweep", *QUICK, cwd=work, data_dir=data_dir, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mnist: no files in "), done.stderr
    assert "the download failed" in lines[0] and str(data_dir / "MNIST" / "raw") in lines[0]
    assert list(work.iterdir()) == []  # no storage created for a study that could not start
