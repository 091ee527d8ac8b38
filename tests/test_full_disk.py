"""A full disk at the writes the driver and the report make, without root: each write runs in a
child process whose RLIMIT_FSIZE (the largest file it may write) is below the write's size, so
the write fails with EFBIG ("File too large") the way it fails with ENOSPC on a full disk
(Python ignores SIGXFSZ, so the write raises instead of killing the process). Then: one line,
nothing already stored lost, and the same step run again (disk freed) completes. The trial's
own checkpoints on a real full file system are in test_reliability.py (a tmpfs, as root)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from tests.smoke_study import REPO

FULL_AT = """
import resource, sys
def disk_full_from_here(limit: int) -> None:
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
"""


def run(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FULL_AT + textwrap.dedent(script), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ATOMIC_WRITE = """
    from pathlib import Path
    from sidae.checkpoint import write_atomic
    path, size, limit = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    disk_full_from_here(limit)
    write_atomic(path, b"n" * size)
"""


def test_an_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_scrap(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(b"old")
    done = run(ATOMIC_WRITE, path, 1 << 20, 64 << 10)
    assert done.returncode != 0 and "File too large" in done.stderr
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # the temporary file is gone
    assert run(ATOMIC_WRITE, path, 1 << 20, 0).returncode == 0
    assert path.read_bytes() == b"n" * (1 << 20)


FIGURE = """
    from pathlib import Path
    from studies.analysis.figures import importance_figure
    path, title, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    disk_full_from_here(limit)
    importance_figure({"w": 0.7, "noise": 0.2, "crop": 0.1}, title, path)
"""


def test_a_figure_on_a_full_disk_keeps_the_previous_one(tmp_path: Path) -> None:
    """The report's figures (studies/analysis/figures.py) are rendered in memory, then written
    atomically: the previous report's PNG stays whole."""
    path = tmp_path / "importances.png"
    assert run(FIGURE, path, "first report", 0).returncode == 0
    before = digest(path)
    done = run(FIGURE, path, "second report", 4096)  # the PNG is tens of kB
    assert done.returncode != 0 and "File too large" in done.stderr
    assert digest(path) == before and path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["importances.png"]
    assert run(FIGURE, path, "second report", 0).returncode == 0
    assert digest(path) != before and path.read_bytes().startswith(b"\x89PNG")


BEST_MODEL = """
    from pathlib import Path
    import optuna
    from storage import make_artifact_store, make_storage
    from sidae.errors import print_warnings
    from studies.service.runner import store_best_model
    print_warnings()  # as the command does
    url, artifacts, run_root, limit = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    study = optuna.load_study(study_name="s", storage=make_storage(url))
    store = make_artifact_store(artifacts)
    disk_full_from_here(limit)
    store_best_model(study, store, run_root)
"""


def test_a_full_disk_when_storing_the_best_model_is_one_warning_and_the_next_run_stores_it(tmp_path: Path) -> None:
    """The driver's last step copies the best trial's weights into the artifact store."""
    url, artifacts, run_root = f"sqlite:///{tmp_path / 'studies.db'}", tmp_path / "artifacts", tmp_path / "runs" / "s"
    weights = run_root / "trial-a" / "model.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(os.urandom(1 << 20))
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    trial = study.ask()
    trial.set_user_attr("run_dir", str(weights.parent))
    study.tell(trial, 0.9)
    before = digest(weights)

    done = run(BEST_MODEL, url, artifacts, run_root, 256 << 10)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: could not store the best trial's weights"), lines
    assert "File too large" in lines[0]
    study = optuna.load_study(study_name="s", storage=url)
    assert "best_model_trial" not in study.user_attrs
    assert [(t.state, t.value) for t in study.trials] == [(optuna.trial.TrialState.COMPLETE, 0.9)]  # nothing lost
    assert digest(weights) == before

    again = run(BEST_MODEL, url, artifacts, run_root, 0)  # space freed: the next run stores it
    assert again.returncode == 0 and again.stderr == "", again.stderr
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["best_model_trial"] == 0
    stored = [m for m in optuna.artifacts.get_all_artifact_meta(study) if m.filename == "best-trial-0-model.pt"]
    assert len(stored) == 1
    assert hashlib.sha256((artifacts / stored[0].artifact_id).read_bytes()).hexdigest() == before


DRIVER_DATABASE = """
    import optuna
    from storage import StorageError, make_storage
    from studies.service import lease
    url, when, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    storage = make_storage(url)
    study = optuna.load_study(study_name="s", storage=storage)
    try:
        if when == "lease":
            disk_full_from_here(limit)
        with lease.holding(storage, "s"):
            disk_full_from_here(limit)
            study.set_user_attr("written", True)
    except StorageError as error:  # as studies.cli.run's main prints it
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
"""


@pytest.mark.parametrize("when", ["lease", "write"])
def test_a_full_disk_under_the_study_database_is_one_line_and_the_rerun_writes(tmp_path: Path, when: str) -> None:
    """SQLite's file (its write-ahead log) cannot grow: taking the lease, or a write under it,
    ends in one error line; the study keeps what it held, and a rerun (the lease of the dead
    driver taken over at once) writes."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.tell(study.ask(), 1.0)
    done = run(DRIVER_DATABASE, url, when, 1024)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()  # at once: a full disk is not waited out like an outage
    assert len(lines) == 1 and lines[0].startswith("error: ") and "disk I/O error" in lines[0], done.stderr
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.value for t in study.trials] == [1.0] and "written" not in study.user_attrs
    rerun = run(DRIVER_DATABASE, url, when, 0)
    assert rerun.returncode == 0, rerun.stderr
    assert optuna.load_study(study_name="s", storage=url).user_attrs["written"] is True
