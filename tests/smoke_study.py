"""One real smoke w-sweep (3 trials, local Ray, SQLite, real MNIST) shared by the tests that
inspect a finished study: the storage, the dashboard, the report."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--budget", "smoke", "--train-limit", "512", "--quiet"]


def run_cli(
    *args: str, cwd: Path, data_dir: Path, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python studies/run.py ARGS` as a user runs it (in `env`, default: this process's)."""
    return subprocess.run(
        [sys.executable, str(REPO / "studies" / "run.py"), "--data-dir", str(data_dir), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@dataclass(frozen=True)
class SmokeStudy:
    folder: Path
    url: str
    name: str
    artifact_dir: Path
    stdout: str


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> SmokeStudy:
    folder = tmp_path_factory.mktemp("smoke-study")
    url = f"sqlite:///{folder / 'studies.db'}"
    # A few fine-tuning steps, so the fine-tune tables and the supervised baseline exist too.
    done = run_cli(
        "--study",
        "w-sweep",
        *TINY,
        "--set",
        "eval.finetune=True",
        "--set",
        "eval.finetune_steps=20",
        "--storage",
        url,
        cwd=folder,
        data_dir=mnist_dir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return SmokeStudy(folder, url, "w-sweep-mnist", folder / "studies-artifacts", done.stdout)
