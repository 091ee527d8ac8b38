"""The commands that only read a study (the report, the dashboard) open its storage read-only
(storage.make_storage's read_only): a SQLite file is never switched to WAL, given tables or
created, and one that holds no study is refused in one line. Real SQLite files, a real
dashboard server, a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from storage import StorageError, make_storage
from studies.analysis.stored import open_existing_storage
from studies.cli import report
from studies.cli.dashboard import serve


def journal_and_tables(path: Path) -> tuple[str, list[str]]:
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        tables = sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    return mode, tables


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in the folder: its bytes and its modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture
def rollback_study(tmp_path: Path) -> Path:
    """A study file in SQLite's default rollback-journal mode (as Optuna itself leaves it, or a
    copy), read-only by its mode bits (root reads through them, but nothing here must write)."""
    path = tmp_path / "studies.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}", direction="maximize")
    study.tell(study.ask(), 1.0)
    path.chmod(0o444)
    time.sleep(0.01)  # a write after this would show in the mtime
    return path


def read_through_everything(url: str) -> None:
    """What the report and the dashboard do with a storage: open it, list and load studies."""
    storage = open_existing_storage(url)
    assert [s.study_name for s in storage.get_all_studies()] == ["s"]
    assert [t.value for t in optuna.load_study(study_name="s", storage=storage).trials] == [1.0]
    server = serve(url, None, "127.0.0.1", 0)
    server.server_close()


def test_reading_a_rollback_journal_study_changes_nothing(rollback_study: Path) -> None:
    folder = rollback_study.parent
    before, files = journal_and_tables(rollback_study), snapshot(folder)
    assert before[0] == "delete" and "sidae_study_leases" not in before[1]
    read_through_everything(f"sqlite:///{rollback_study}")
    assert journal_and_tables(rollback_study) == before  # not switched to WAL, no table added
    assert snapshot(folder) == files  # same bytes, same mtimes, no -wal or -shm left behind


def test_a_write_through_a_read_only_storage_is_refused_at_once(rollback_study: Path) -> None:
    storage = make_storage(f"sqlite:///{rollback_study}", read_only=True)
    started = time.monotonic()
    with pytest.raises(StorageError, match="rejected set_study_user_attr: attempt to write a readonly database"):
        optuna.load_study(study_name="s", storage=storage).set_user_attr("x", 1)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("content", ["empty", "other tables"])
def test_a_sqlite_file_without_a_study_is_refused_in_one_line_and_left_alone(tmp_path: Path, content: str) -> None:
    path = tmp_path / "notes.db"
    if content == "empty":
        path.touch()  # a zero-byte file is an empty SQLite database
    else:
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("CREATE TABLE notes (text TEXT)")
    files = snapshot(tmp_path)
    url = f"sqlite:///{path}"
    for opening in (lambda: open_existing_storage(url), lambda: serve(url, None, "127.0.0.1", 0)):
        with pytest.raises(StorageError) as error:
            opening()
        assert str(error.value) == f"not a study database (no Optuna tables in it): {path}"
    assert snapshot(tmp_path) == files


def test_the_report_command_on_a_file_without_a_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.db"
    path.touch()
    code = report.main(["--name", "s", "--storage", f"sqlite:///{path}", "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == f"error: not a study database (no Optuna tables in it): {path}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.db"] and path.stat().st_size == 0


def test_a_missing_file_is_refused_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="^no SQLite database at "):
        make_storage(f"sqlite:///{tmp_path / 'typo.db'}", read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_a_reader_sees_a_wal_study_written_beside_it(tmp_path: Path) -> None:
    """The dashboard beside a running study: the study's file is WAL (its driver opened it
    read-write), the reader opens it read-only and sees each new trial."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="s", storage=make_storage(url))
    reader = optuna.load_study(study_name="s", storage=make_storage(url, read_only=True))
    for n in range(1, 4):
        study.tell(study.ask(), float(n))
        assert [t.value for t in reader.get_trials()] == [float(n) for n in range(1, n + 1)]
    assert journal_and_tables(tmp_path / "studies.db")[0] == "wal"


def test_a_read_only_postgresql_session_refuses_writes(postgres_url: str) -> None:
    name = f"ro-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=make_storage(postgres_url))
    storage = make_storage(postgres_url, read_only=True)
    with storage.backend.engine.connect() as connection:
        assert connection.execute(sa.text("SHOW default_transaction_read_only")).scalar() == "on"
        assert connection.execute(sa.text("SHOW statement_timeout")).scalar() == "1min"
    with pytest.raises(StorageError, match="rejected set_study_user_attr: cannot execute INSERT in a read-only"):
        optuna.load_study(study_name=name, storage=storage).set_user_attr("x", 1)


def test_a_clusters_dashboard_creates_the_tables_of_a_fresh_database_then_reads_only(tmp_path: Path) -> None:
    """--init-storage (the loopback and compose clusters' dashboards start before any study):
    without it a database with no tables is refused; with it they are made, and the server
    that then serves is still read-only."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(StorageError):
        serve(url, None, "127.0.0.1", 0)
    server = serve(url, None, "127.0.0.1", 0, init_storage=True)
    server.server_close()
    assert "studies" in journal_and_tables(tmp_path / "fresh.db")[1]
    with pytest.raises(StorageError, match="rejected create_new_study"):
        optuna.create_study(study_name="s", storage=make_storage(url, read_only=True))
