"""The GPU device script's CPU dry run: `benchmarks/gpu_sweep.sh --device cpu` runs every step
(the throughput check, the packed CIFAR-10 (JPEG copy) w-sweep, the report, the summary) at
tiny sizes on a tiny JPEG image folder, and writes everything into its one output folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests import formats
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_the_dry_run_writes_every_part_into_one_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    formats.write_image_folder(data / "CIFAR10-JPEG", n_per_class=12, classes=10, size=32, suffix=".jpg")
    out = tmp_path / "out"
    env = {**os.environ, "SIDAE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [
            "bash",
            str(REPO / "benchmarks" / "gpu_sweep.sh"),
            "--device",
            "cpu",
            "--out",
            str(out),
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for part in ("throughput.txt", "sweep.txt", "sweep.log", "study.db", "report/report.md", "summary.txt"):
        assert (out / part).is_file(), part
    assert "images_per_second" in (out / "throughput.txt").read_text()

    trials = optuna.load_study(study_name="gpu-sweep", storage=f"sqlite:///{out / 'study.db'}").trials
    assert sorted(t.params["w"] for t in trials) == [0.0, 0.5, 0.9, 1.0]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.user_attrs["device"] == "cpu" and t.user_attrs["gpu_ids"] == [] for t in trials)

    summary = (out / "summary.txt").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == 4 and all("| cpu | - |" in row for row in rows)
    assert "aggregate:" in summary and "images/s over 4 complete trial(s)" in summary
    assert "lightly's SimSiam on CIFAR-10: kNN accuracy 0.73 after 200 epochs" in summary
    assert "this sweep's SimSiam (w = 1), CIFAR-10 (JPEG copy): test kNN accuracy" in summary
    report = (out / "report" / "report.md").read_text()
    assert "cpu on node" in report and "no GPU" in report  # the phase section's devices
    assert done.stdout.count("== ") >= 5  # each stage announced, with its seconds
