"""A study run that an error ends half-way loses nothing: one grid point, run three times with
real Ray and real MNIST, each run a process of its own (tests/interrupted_runs.py injects the fault).

1. An error inside Ray Tune's loop (here a callback raising at the first epoch's result) ends
   the run: its trial ends PRUNED, stopped_by "interrupted", and is not counted as a failure.
2. The database refuses the trial's final write (tell): the run stops with one line naming the
   cause, and the trained result stays in the trial's run folder.
3. A clean rerun records that result (reused_result) instead of training the point again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from studies.record import PHASE_SECONDS, REUSED, STOPPED_BY
from tests.interrupted_runs import OUTAGE
from tests.smoke_study import ONE_AT_A_TIME, QUICK, REPO, InProcess

POINT = ["--study", "w-sweep", *QUICK, *ONE_AT_A_TIME, "--w-grid", "0.5", "--seeds", "0", "--max-retries", "1"]


def study_run(fault: str, url: str, cwd: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.interrupted_runs", fault, *POINT, "--storage", url, "--data-dir", str(data_dir)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        # the fault's module imports Ray before the study command could give it a private token
        env={**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"},
    )


@pytest.mark.slow  # three study runs: the two faulty ones each a process with its own Ray
def test_an_interrupted_run_and_a_lost_tell_lose_no_result(
    tmp_path: Path, mnist_dir: Path, study_in_process: InProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"

    broken = study_run("tune-callback", url, tmp_path, mnist_dir)
    assert broken.returncode != 0 and "tune loop broke" in broken.stderr, broken.stderr[-3000:]
    (interrupted,) = _trials(url)
    assert interrupted.state == TrialState.PRUNED and interrupted.user_attrs[STOPPED_BY] == "interrupted"

    lost = study_run("lost-tell", url, tmp_path, mnist_dir)
    assert lost.returncode == 2
    assert [line for line in lost.stderr.splitlines() if line.startswith("error:")] == [f"error: {OUTAGE}"]
    assert "Traceback" not in lost.stderr, lost.stderr[-3000:]
    untold = _trials(url)[-1]
    assert untold.state == TrialState.RUNNING  # the driver stopped writing at the error
    trained = json.loads((Path(untold.user_attrs["run_dir"]) / "results.json").read_text())

    code, _, err = study_in_process(*POINT, "--storage", url)  # no fault: the rerun a user makes
    assert code == 0, err[-3000:]
    trials = _trials(url)
    assert trials[-2].state == TrialState.FAIL  # the second run's, ended by this start
    (done,) = [t for t in trials if t.state == TrialState.COMPLETE]
    assert done.params == {"seed": 0, "w": 0.5}
    assert done.user_attrs[REUSED] is True and "pretrain" not in done.user_attrs[PHASE_SECONDS]
    assert done.value == trained["val_linear"]["0.01"]
    assert done.user_attrs["test_linear"] == trained["linear"]


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="w-sweep-mnist", storage=url).trials
