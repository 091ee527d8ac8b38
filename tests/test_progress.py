"""The study's progress line (studies.service.progress) keeps moving while nothing happens: a
trial of 10 minutes with no event must not look like a hung study. No Ray: Tune's callback
hooks are called directly, as Tune's loop calls them."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest

from storage import make_artifact_store
from studies.service import progress
from studies.service.search import StudySearch, TrialIndex


def test_the_line_is_redrawn_between_trial_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    study = optuna.create_study(direction="maximize")
    search = StudySearch(
        study,
        lambda trial: None,
        artifact_store=make_artifact_store(tmp_path / "artifacts"),
        index=TrialIndex(),
        run_root=tmp_path / "runs",
    )
    monkeypatch.setattr(progress, "REFRESH_S", 0.05)
    line = progress.StudyProgress(search, total=2)  # no seed tasks: the trials alone
    capsys.readouterr()
    time.sleep(0.1)
    line.on_step_begin(iteration=1, trials=[])
    drawn = capsys.readouterr().err
    assert "complete 0, running 0, pruned 0, failed 0, best -" in drawn
    line.on_step_begin(iteration=2, trials=[])  # too soon: not drawn again
    assert capsys.readouterr().err == ""
