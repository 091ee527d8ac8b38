"""storage.resilient against a real PostgreSQL outage that lands on each kind of call the study
service makes: the server is stopped, the call is made, the server comes back within the
storage's patience, and the call must have succeeded (after logging its retries)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError

from storage import StorageError, make_storage
from storage.resilient import ResilientStorage
from tests.postgres import PostgresServer


@contextmanager
def outage(server: PostgresServer, seconds: float = 2.0) -> Iterator[None]:
    """The server is down when the block starts and comes back `seconds` later, whatever the
    block is doing then (it is waiting in a retry)."""
    server.stop()
    comeback = threading.Timer(seconds, server.start)
    comeback.start()
    try:
        yield
    finally:
        comeback.join()


def study_with_one_trial(url: str) -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(study_name=f"outage-{uuid.uuid4().hex[:8]}", storage=make_storage(url))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    return study, trial


CALLS: dict[str, tuple[Callable[[optuna.Study, optuna.Trial], Any], Callable[[optuna.Study], bool]]] = {
    # the call made during the outage, and what the storage must hold afterwards
    "ask": (lambda study, trial: study.ask(), lambda study: len(study.trials) == 2),
    "report": (
        lambda study, trial: trial.report(0.25, 1),
        lambda study: study.trials[0].intermediate_values == {1: 0.25},
    ),
    "tell": (
        lambda study, trial: study.tell(trial, 0.5),
        lambda study: (study.trials[0].state, study.trials[0].value) == (TrialState.COMPLETE, 0.5),
    ),
    "get_trials": (lambda study, trial: study.get_trials(), lambda study: len(study.trials) == 1),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_each_kind_of_call_waits_out_an_outage(
    postgres_server: PostgresServer, call: str, caplog: pytest.LogCaptureFixture
) -> None:
    study, trial = study_with_one_trial(postgres_server.url)
    make_call, stored = CALLS[call]
    with caplog.at_level(logging.WARNING, logger="storage.resilient"), outage(postgres_server):
        make_call(study, trial)
    assert any("database unreachable during" in r.getMessage() for r in caplog.records)  # it did hit the outage
    assert stored(study)


def test_retrying_ends_after_the_patience_with_one_line(postgres_server: PostgresServer) -> None:
    storage = ResilientStorage(make_storage(postgres_server.url).backend, patience_s=2.0)
    with postgres_server.stopped(), pytest.raises(StorageError) as error:
        storage.get_all_studies()
    message = str(error.value)
    assert message.startswith("database unreachable for 2 s (during get_all_studies): ")
    assert "\n" not in message


class _Rejecting:
    """A backend whose database answers, and rejects the request (a constraint violated)."""

    calls = 0

    def get_all_studies(self) -> list[Any]:
        self.calls += 1
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key value violates unique constraint"))


def test_a_rejected_request_is_not_retried() -> None:
    backend = _Rejecting()
    with pytest.raises(StorageError, match="^the database rejected get_all_studies: .*duplicate key value") as error:
        ResilientStorage(backend, patience_s=60).get_all_studies()  # type: ignore[arg-type]
    assert backend.calls == 1 and isinstance(error.value.__cause__, IntegrityError)


# --- what is an outage: the driver's own error, found through Optuna's wrapping ----------------
# A trigger makes the real server refuse one user attribute with a chosen SQLSTATE, so the
# error reaches the storage exactly as Optuna builds it: psycopg's error -> SQLAlchemy's
# OperationalError/DataError/... -> StorageInternalError (RDBStorage's _create_scoped_session).

REFUSE = """
CREATE OR REPLACE FUNCTION sidae_test_refuse() RETURNS trigger AS $$
BEGIN
    IF NEW.key LIKE 'refuse-%' AND nextval('sidae_test_refusals') <= 1 THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = substr(NEW.key, 8, 5);
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql
"""


@contextmanager
def refusing(storage: ResilientStorage) -> Iterator[None]:
    """The server refuses the first `refuse-<SQLSTATE>` study attribute written in the block."""
    import sqlalchemy as sa

    with storage.backend.engine.begin() as connection:
        connection.execute(sa.text("CREATE SEQUENCE IF NOT EXISTS sidae_test_refusals"))
        connection.execute(sa.text("SELECT setval('sidae_test_refusals', 1, false)"))
        connection.execute(sa.text(REFUSE))
        connection.execute(sa.text("DROP TRIGGER IF EXISTS sidae_test_refuse ON study_user_attributes"))
        connection.execute(
            sa.text(
                "CREATE TRIGGER sidae_test_refuse BEFORE INSERT ON study_user_attributes "
                "FOR EACH ROW EXECUTE FUNCTION sidae_test_refuse()"
            )
        )
    try:
        yield
    finally:
        with storage.backend.engine.begin() as connection:
            connection.execute(sa.text("DROP TRIGGER sidae_test_refuse ON study_user_attributes"))


def test_a_full_disk_on_postgresql_is_one_line_at_once(postgres_url: str) -> None:
    """SQLSTATE 53100 arrives wrapped twice (StorageInternalError from OperationalError from
    psycopg's DiskFull); it must still be seen, and not waited out for the patience."""
    storage = ResilientStorage(make_storage(postgres_url).backend, patience_s=300.0)
    study = optuna.create_study(study_name=f"full-{uuid.uuid4().hex[:8]}", storage=storage)
    started = time.monotonic()
    with refusing(storage), pytest.raises(StorageError) as error:
        study.set_user_attr("refuse-53100", 1)
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert message.startswith("no space for the database's writes (during set_study_user_attr)"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    "sqlstate",
    [
        "22001",  # data exception: a value too long
        "XX000",  # an internal error (class 23, integrity, Optuna ignores on this call: _Rejecting above)
        "42501",  # access: insufficient privilege
        "25006",  # a read-only transaction (a standby)
        "28P01",  # the password no longer works
    ],
)
def test_a_request_the_server_rejects_is_one_line_at_once(postgres_url: str, sqlstate: str) -> None:
    storage = ResilientStorage(make_storage(postgres_url).backend, patience_s=300.0)
    study = optuna.create_study(study_name=f"rejected-{uuid.uuid4().hex[:8]}", storage=storage)
    started = time.monotonic()
    with refusing(storage), pytest.raises(StorageError) as error:
        study.set_user_attr(f"refuse-{sqlstate}", 1)
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert message.startswith("the database rejected set_study_user_attr: "), message
    assert "refused by the test" in message and "\n" not in message


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "57P01", "53300", "08006"])
def test_a_transient_refusal_is_retried(postgres_url: str, sqlstate: str, caplog: pytest.LogCaptureFixture) -> None:
    """Serialization failures, deadlocks, an administrator's shutdown, too many connections, a
    lost connection: the same write goes through on the next try."""
    storage = ResilientStorage(make_storage(postgres_url).backend, patience_s=300.0)
    study = optuna.create_study(study_name=f"transient-{uuid.uuid4().hex[:8]}", storage=storage)
    with caplog.at_level(logging.WARNING, logger="storage.resilient"), refusing(storage):
        study.set_user_attr(f"refuse-{sqlstate}", 1)
    assert any("database unreachable during" in r.getMessage() for r in caplog.records)
    assert study.user_attrs == {f"refuse-{sqlstate}": 1}


def test_a_read_only_sqlite_file_refuses_a_write_at_once(tmp_path: Path) -> None:
    """SQLite opened read-only (mode=ro: as root no chmod makes a file read-only) says
    "attempt to write a readonly database" as an OperationalError, like a lost connection; no
    wait changes it. The fence, asked before each try of a write, sees a retry at once."""
    path = tmp_path / "studies.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    storage = ResilientStorage(RDBStorage(f"sqlite:///file:{path}?mode=ro&uri=true"), patience_s=300.0)
    tries = []

    def fence() -> None:
        tries.append(time.monotonic())
        assert len(tries) == 1, "a write to a read-only file was retried"

    storage.fence = fence
    study = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(StorageError) as error:
        study.set_user_attr("x", 1)
    assert str(error.value) == "the database rejected set_study_user_attr: attempt to write a readonly database"
    assert len(tries) == 1


def test_every_public_storage_method_is_written_out_and_passed_through(tmp_path: Path) -> None:
    """A public method of Optuna's BaseStorage that ResilientStorage did not write out would run
    BaseStorage's own code (or fail as abstract) without retries; each one written out must
    reach the backend's method of the same name with the same arguments."""
    import inspect

    from optuna.storages import BaseStorage

    public = {name for name, _ in inspect.getmembers(BaseStorage, inspect.isfunction) if not name.startswith("_")}
    assert {name for name in public if name not in vars(ResilientStorage)} == set()

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = make_storage(url)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.set_user_attr("budget", "smoke")
    trial = study.ask({"w": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("seed", 3)
    trial.report(0.5, 1)
    study.tell(trial, 0.7)
    study_id = storage.get_study_id_from_name("s")
    assert storage.get_study_name_from_id(study_id) == "s"
    assert storage.get_n_trials(study_id, TrialState.COMPLETE) == 1
    (stored,) = optuna.load_study(study_name="s", storage=url).trials  # read back by plain Optuna
    assert (stored.value, stored.params, stored.intermediate_values) == (0.7, trial.params, {1: 0.5})
    assert stored.user_attrs == {"seed": 3} and storage.get_study_user_attrs(study_id) == {"budget": "smoke"}
