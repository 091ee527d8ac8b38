"""storage/: URLs -> Optuna storages and artifact folders, against real SQLite files and a real
PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.trial import TrialState

from storage import (
    DEFAULT_SQLITE_NAME,
    StorageError,
    artifact_dir_for,
    default_url,
    is_sqlite,
    make_artifact_store,
    make_storage,
    parse,
    redact,
)
from storage.urls import POSTGRES_CONNECT_TIMEOUT_S, POSTGRES_CONNECTION_OPTIONS, SQLITE_BUSY_TIMEOUT_S
from tests.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def write_trials(storage: optuna.storages.BaseStorage, name: str) -> None:
    """Three finished trials, each with a parameter, intermediate values and a user attr."""
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    for i in range(3):
        trial = study.ask()
        w = trial.suggest_float("w", 0.0, 1.0)
        for epoch in range(4):
            trial.report(1.0 / (epoch + 1) + i, step=epoch)
        trial.set_user_attr("run_dir", f"runs/{i}")
        study.tell(trial, w + i)


def assert_trials_read_back(url: str, name: str) -> None:
    """Read through a second, independent storage object, as another process would."""
    trials = optuna.load_study(study_name=name, storage=make_storage(url)).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for i, trial in enumerate(trials):
        assert trial.intermediate_values == {epoch: 1.0 / (epoch + 1) + i for epoch in range(4)}
        assert trial.user_attrs == {"run_dir": f"runs/{i}"}
        assert trial.value == pytest.approx(trial.params["w"] + i)


def assert_one_line_error(error: pytest.ExceptionInfo[StorageError], *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    assert "secret" not in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message


# --- URLs ----------------------------------------------------------------------------------


def test_default_url_is_a_sqlite_file_in_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the package's folder: an installed package is in site-packages
    assert default_url() == f"sqlite:///{tmp_path / DEFAULT_SQLITE_NAME}"
    assert is_sqlite(default_url())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://sidae:secret@db:5432/sidae", "postgresql+psycopg://sidae:***@db:5432/sidae"),
        ("postgresql://u:secret@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db?password=secret&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://u:secret@[::1/db", "postgresql://u:***@[::1/db"),  # does not parse
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_redact_hides_passwords(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize("password", ["p@ss", "p@s@s", "pa:ss", "pa/ss", "a@b:c/d", "@/:@"])
@pytest.mark.parametrize("host", ["db:5432", "[::1"])  # one that parses, one that does not
def test_redact_hides_every_character_of_a_password(password: str, host: str) -> None:
    """Up to the last '@': a password with '@' showed its tail (`u:***@ss@h`)."""
    url = f"postgresql://u:{password}@{host}/sidae?sslmode=require"
    assert redact(url) == f"postgresql://u:***@{host}/sidae?sslmode=require"


def test_a_password_with_a_raw_at_sign_is_refused_without_showing_it() -> None:
    """SQLAlchemy would read `u:p@ss@h` as password `p` and host `ss@h`, and the driver's
    error would name that host."""
    with pytest.raises(StorageError) as error:
        parse("postgresql://u:se@cret@127.0.0.1:1/db")
    assert_one_line_error(error, "%40", "postgresql://u:***@127.0.0.1:1/db")
    assert "cret" not in str(error.value)


def test_plain_postgresql_url_uses_psycopg3() -> None:
    assert parse("postgresql://u:p@h:5432/db").drivername == "postgresql+psycopg"
    assert parse("postgresql+psycopg://u:p@h:5432/db").drivername == "postgresql+psycopg"
    assert not is_sqlite("postgresql://u:p@h:5432/db")


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("sqlite//x", ["not a storage URL", "sqlite//x"]),
        ("not a url", ["not a storage URL", "not a url"]),
        ("mysql://u:secret@h/db", ["unsupported", "mysql://u:***@h/db", "scheme 'mysql'"]),
        ("sqlite://", ["in-memory SQLite is not supported"]),
        (
            "postgresql+psycopg://u:secret@127.0.0.1:1/db",
            ["cannot reach PostgreSQL", "postgresql+psycopg://u:***@127.0.0.1:1/db", "connection refused"],
        ),
        ("postgresql://u:secret@127.0.0.1:1/db", ["cannot reach PostgreSQL", "u:***@127.0.0.1:1/db", "refused"]),
    ],
)
def test_bad_urls_raise_one_line_without_password_and_create_nothing(
    url: str, fragments: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    with pytest.raises(StorageError) as error:
        make_storage(url)
    assert time.monotonic() - started < 5
    assert isinstance(error.value, ValueError)
    assert_one_line_error(error, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_server_that_never_answers_fails_after_connect_timeout(tmp_path: Path) -> None:
    """A host that accepts TCP but never speaks PostgreSQL (a wedged server, a wrong port
    behind a firewall) must not hang a study's start-up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StorageError) as error:
            make_storage(f"postgresql+psycopg://u:secret@127.0.0.1:{port}/db")
        elapsed = time.monotonic() - started
    assert POSTGRES_CONNECT_TIMEOUT_S - 1 < elapsed < 3 * POSTGRES_CONNECT_TIMEOUT_S
    assert_one_line_error(error, "cannot reach PostgreSQL", "timeout")


def test_missing_database_names_the_database(postgres_url: str) -> None:
    with pytest.raises(StorageError) as error:
        make_storage(postgres_url.rsplit("/", 1)[0] + "/no_such_db")
    assert_one_line_error(error, "cannot reach PostgreSQL", 'database "no_such_db" does not exist')


def test_postgresql_asks_for_the_password(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No trust: without the password file a client is refused, with a wrong password too."""
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(StorageError) as error:
        make_storage(postgres_url)
    assert_one_line_error(error, "cannot reach PostgreSQL", "no password supplied")
    with pytest.raises(StorageError) as error:
        make_storage(postgres_url.replace("sidae@", "sidae:secret@"))
    assert_one_line_error(error, "password authentication failed")


def test_postgresql_of_the_tests_and_the_loopback_cluster_is_locked_down(postgres_server: PostgresServer) -> None:
    """scripts/pg_local.sh: the study role is no superuser and owns the study database, the
    server listens on 127.0.0.1 only, no pg_hba rule trusts anyone, passwords are scram-sha-256,
    the data folder is 0700 and the password file 0600."""
    import sqlalchemy as sa

    engine = make_storage(postgres_server.url).backend.engine
    with engine.connect() as connection:
        role = connection.execute(
            sa.text("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        ).one()
        owner = connection.execute(
            sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
        ).scalar()
        listen = connection.execute(sa.text("SHOW listen_addresses")).scalar()
        hashed = connection.execute(sa.text("SHOW password_encryption")).scalar()
    engine.dispose()
    assert tuple(role) == (False, False, False) and owner == "sidae"
    assert listen == "127.0.0.1" and hashed == "scram-sha-256"
    pgdata = postgres_server.datadir / "data"
    rules = [
        line.split()
        for line in (pgdata / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules and all(rule[-1] in ("peer", "scram-sha-256") for rule in rules), rules
    assert all(rule[-1] == "scram-sha-256" for rule in rules if rule[0].startswith("host"))
    assert pgdata.stat().st_mode & 0o777 == 0o700
    assert postgres_server.password_file.stat().st_mode & 0o777 == 0o600


def test_sqlite_path_that_cannot_be_created_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(StorageError) as error:
        make_storage(sqlite_url(tmp_path / "afile" / "studies.db"))
    assert_one_line_error(error, "cannot open SQLite database", "file exists", str(tmp_path / "afile"))


def test_sqlite_file_that_is_not_a_database_raises_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "studies.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError) as error:
        make_storage(sqlite_url(path))
    assert_one_line_error(error, "cannot open SQLite database", "not a database")


# --- SQLite ----------------------------------------------------------------------------------


def test_sqlite_storage_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    storage = make_storage(sqlite_url(tmp_path / "new" / "folder" / "studies.db"))
    storage.backend.engine.dispose()  # the pragmas must hold on a fresh connection, not only the first
    with storage.backend.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_S * 1000


def test_relative_sqlite_url_is_anchored_at_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = make_storage("sqlite:///sub/studies.db")
    assert (tmp_path / "sub" / "studies.db").is_file()
    monkeypatch.chdir(REPO)  # the storage keeps using the same file from any cwd
    write_trials(storage, "relative")
    assert_trials_read_back(sqlite_url(tmp_path / "sub" / "studies.db"), "relative")


def test_sqlite_round_trip(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "studies.db")
    write_trials(make_storage(url), "round-trip")
    assert_trials_read_back(url, "round-trip")


WORKER = textwrap.dedent(
    """
    import sys
    import optuna
    from storage import make_storage

    url, name = sys.argv[1], sys.argv[2]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=make_storage(url), load_if_exists=True)
    study.optimize(lambda trial: trial.suggest_float("x", -1.0, 1.0) ** 2, n_trials=20)
    """
)


def test_two_processes_write_one_sqlite_file_without_locking_errors(tmp_path: Path) -> None:
    """Both start on a file that does not exist yet: they race to create the tables as well as
    to write trials."""
    url = sqlite_url(tmp_path / "shared.db")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, "shared"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert "database is locked" not in stderr
        assert worker.returncode == 0, stderr
    trials = optuna.load_study(study_name="shared", storage=make_storage(url)).get_trials()
    assert len(trials) == 40
    assert {t.state for t in trials} == {TrialState.COMPLETE}


# --- PostgreSQL -----------------------------------------------------------------------------


def test_postgresql_round_trip(postgres_url: str) -> None:
    name = f"round-trip-{uuid.uuid4().hex[:8]}"
    storage = make_storage(postgres_url)
    assert storage.backend.engine.url.drivername == "postgresql+psycopg"
    write_trials(storage, name)
    assert_trials_read_back(postgres_url, name)
    assert_trials_read_back(postgres_url.replace("postgresql+psycopg://", "postgresql://"), name)


def test_postgresql_connections_have_keepalives_and_a_statement_timeout(postgres_url: str) -> None:
    """A server gone without a word is found dead in about a minute, not the OS's two hours."""
    import sqlalchemy as sa

    def settings(url: str) -> tuple[str, dict[str, str]]:
        engine = make_storage(url).backend.engine
        with engine.connect() as connection:
            timeout = connection.execute(sa.text("SHOW statement_timeout")).scalar()
            parameters = connection.connection.dbapi_connection.info.get_parameters()
        engine.dispose()
        return timeout, parameters

    timeout, parameters = settings(postgres_url)
    assert timeout == "1min"
    expected = {key: str(value) for key, value in POSTGRES_CONNECTION_OPTIONS.items()}
    assert {key: parameters.get(key) for key in expected} == expected
    assert parameters["connect_timeout"] == str(POSTGRES_CONNECT_TIMEOUT_S)
    # the URL's own values win
    timeout, parameters = settings(f"{postgres_url}?options=-c%20statement_timeout%3D5s&keepalives_idle=7")
    assert timeout == "5s" and parameters["keepalives_idle"] == "7"
    timeout, parameters = settings(f"{postgres_url}?options=-c%20lock_timeout%3D3s")
    assert timeout == "1min" and parameters["options"] == "-c lock_timeout=3s -c statement_timeout=60000"


def test_same_storage_keeps_working_after_postgresql_restart(postgres_server: PostgresServer) -> None:
    """A study's storage object outlives a server restart: pool_pre_ping replaces the pooled
    connections the restart killed, so nobody has to rebuild the storage or resume the study."""
    storage = make_storage(postgres_server.url)
    study = optuna.create_study(study_name=f"restart-{uuid.uuid4().hex[:8]}", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    assert storage.backend.engine.pool.checkedin() > 0  # a connection the restart is about to kill

    with postgres_server.stopped():
        assert not postgres_server.is_running()
    assert postgres_server.is_running()

    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    trials = study.get_trials()
    assert len(trials) == 6
    assert {t.state for t in trials} == {TrialState.COMPLETE}


# --- artifacts ------------------------------------------------------------------------------


def test_sqlite_artifacts_live_beside_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDAE_ARTIFACT_DIR", str(tmp_path / "ignored-for-sqlite"))
    assert artifact_dir_for("sqlite:////data/w-sweep.db", None) == Path("/data/w-sweep-artifacts")
    monkeypatch.chdir(tmp_path)
    assert artifact_dir_for("sqlite:///runs/mnist.db", None) == tmp_path / "runs" / "mnist-artifacts"
    assert artifact_dir_for(default_url(), None) == tmp_path / "studies-artifacts"


def test_postgresql_artifacts_come_from_override_env_or_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://u:p@db:5432/sidae"
    monkeypatch.delenv("SIDAE_ARTIFACT_DIR", raising=False)
    assert artifact_dir_for(url, None) == REPO / "artifacts"
    monkeypatch.setenv("SIDAE_ARTIFACT_DIR", str(tmp_path / "shared"))
    assert artifact_dir_for(url, None) == tmp_path / "shared"
    assert artifact_dir_for(url, str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_explicit_override_wins_for_sqlite_too(tmp_path: Path) -> None:
    assert artifact_dir_for("sqlite:////data/s.db", str(tmp_path / "mine")) == tmp_path / "mine"


def test_artifact_dir_for_bad_url_raises_storage_error() -> None:
    with pytest.raises(StorageError) as error:
        artifact_dir_for("mysql://u:secret@h/db", None)
    assert_one_line_error(error, "unsupported")


def test_artifact_store_is_created_and_round_trips_a_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "studies.db")
    store = make_artifact_store(artifact_dir_for(url, None))
    assert isinstance(store, FileSystemArtifactStore)
    assert (tmp_path / "studies-artifacts").is_dir()

    study = optuna.create_study(storage=make_storage(url))
    trial = study.ask()
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"\x89PNG fake image bytes")
    artifact_id = upload_artifact(artifact_store=store, file_path=str(grid), study_or_trial=trial)
    study.tell(trial, 0.0)
    copy = tmp_path / "copy.png"
    download_artifact(artifact_store=store, file_path=str(copy), artifact_id=artifact_id)
    assert copy.read_bytes() == grid.read_bytes()


def test_unusable_artifact_dir_raises_one_line_storage_error(tmp_path: Path) -> None:
    """Tests run as root, for whom chmod does not make a folder unwritable; a folder under a
    regular file cannot be created by anyone."""
    (tmp_path / "afile").write_text("a file, not a folder")
    target = tmp_path / "afile" / "sub"
    with pytest.raises(StorageError) as error:
        make_artifact_store(target)
    assert_one_line_error(error, str(target), "not a directory")


def test_postgresql_without_its_driver_installed_says_what_to_install() -> None:
    """sys.modules[name] = None makes `import name` fail, as on an install without the extra."""
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from storage import StorageError, make_storage\n"
        "try:\n    make_storage('postgresql+psycopg://u@127.0.0.1:1/db')\n"
        "except StorageError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("install it with: pip install 'sidae-studies[cluster]'")
    assert len(done.stdout.strip().splitlines()) == 1
