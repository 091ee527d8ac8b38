"""Notes and reports name storage and folders relative to the folder the command ran in, so a reader of a report
can rerun its command in their own checkout, and name the data set as its numbers must be named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidae.config import DATASET_TITLES, DATASETS
from studies.service.budgets import budget_for
from studies.service.catalogue import STUDIES
from studies.service.notes import About, project_relative, redacted_command, study_note


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the command runs in: a checkout with ../shared beside it."""
    project = tmp_path / "main"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def test_paths_in_and_beside_the_project_become_relative(here: Path) -> None:
    assert project_relative(f"sqlite:///{here}/runs/cifar/studies.db") == "sqlite:///runs/cifar/studies.db"
    assert project_relative(f"{here.parent}/shared/data") == "../shared/data"
    assert project_relative("sqlite:///runs/a.db") == "sqlite:///runs/a.db"  # already relative
    assert project_relative("--quiet") == "--quiet"


def test_the_reproduce_command_is_relative_and_redacted(here: Path) -> None:
    command = (
        f"python studies/run.py --storage sqlite:///{here}/studies.db --data-dir {here.parent}/shared/data --set w=0.5"
    )
    assert redacted_command(command) == (
        "python studies/run.py --storage sqlite:///studies.db --data-dir ../shared/data --set w=0.5"
    )
    secret = "python studies/run.py --storage postgresql+psycopg://user:pw@host:5432/sidae"
    assert "pw@" not in redacted_command(secret)


def test_the_note_names_the_jpeg_copy_as_such() -> None:
    note = study_note(About(STUDIES["w-sweep"], budget_for("cpu", "cifar10-jpeg"), "cifar10-jpeg", ""))
    assert "**Data set**: `cifar10-jpeg` (CIFAR-10 (JPEG copy))." in note
    assert "5 epochs per trial on 14000 pre-training images at batch 32" in note and "fine-tuning 50 steps" in note
    assert "encoder convnet of width 32" in note
    assert set(DATASET_TITLES) == set(DATASETS)
