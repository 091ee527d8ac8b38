"""A smoke w-sweep on an image folder the test writes (RGB, 32x32, four classes), through
`python studies/run.py` as a user runs it: real Ray (local), real SQLite storage, and what it
prints before it starts (the splits, the budget sized to the folder, the expected time)."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests import formats
from tests.smoke_study import TINY, run_cli

pytestmark = pytest.mark.slow


def test_smoke_w_sweep_on_an_rgb_image_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    formats.write_image_folder(images, n_per_class=100, classes=4, size=32)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    # smoke's 1,000 validation images are more than the folder has: 40 here
    command = (
        "--study",
        "w-sweep",
        *(arg for arg in TINY if arg != "--quiet"),  # the expected time is shown with the progress bar
        "--w-grid",
        "0,1",  # two trials at once (one wave on 2 cores), sharing the decoded folder
        "--dataset",
        "imagefolder",
        "--set",
        "data.val_size=40",
        "--storage",
        url,
    )
    env = {**os.environ, "SIDAE_CACHE_DIR": str(tmp_path / "cache")}
    done = run_cli(*command, cwd=tmp_path, data_dir=images, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # 360 pre-training images, fewer than the 512 asked for: 3 epochs see as many as 2 of 512
    assert "budget smoke: 3 epochs, not 2: the data set has fewer than 512 pre-training images" in done.stderr
    assert "imagefolder: 360 pre-training, 360 labelled pool, 40 validation, 400 test images" in done.stderr
    assert (
        "expected: about " in done.stderr
        and " for 2 trial(s) and the baseline and controls of 1 seed(s)" in done.stderr
    )
    study = optuna.load_study(study_name="w-sweep-imagefolder", storage=url)
    assert sorted(t.params["w"] for t in study.trials) == [0.0, 1.0]
    assert all(
        t.state == TrialState.COMPLETE and set(t.user_attrs["test_linear"]) == {"0.01", "0.1"} for t in study.trials
    )
    assert len(list((tmp_path / "cache").glob("imagefolder-*.pt"))) == 2  # decoded once, shared by the trials

    # the same command again: nothing to run, so no step is timed and no time is promised
    again = run_cli(*command, cwd=tmp_path, data_dir=images, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing left to run" in again.stderr and "expected:" not in again.stderr
