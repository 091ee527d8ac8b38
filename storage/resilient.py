"""An Optuna storage that waits out a database restart instead of failing the study.

A study driver writes to the database after every epoch of every trial. If PostgreSQL restarts
(maintenance, a failover, a container restart) the writes in that window fail, and Ray Tune
ends the whole experiment on an exception from its searcher. Here every storage call that fails
because its connection was lost or refused is retried, with a growing pause, until it succeeds
or `patience_s` passes (then one-line StorageError); pool_pre_ping (set in storage.urls)
replaces the connections the restart killed. A request the database refuses (bad data, a
read-only file, a full disk) is one StorageError line at once: see _is_outage.

`ResilientStorage` wraps the RDBStorage; it is not a subclass of it. Optuna puts its private
`_CachedStorage` in front of any RDBStorage it is given, and that layer calls the RDBStorage's
private methods (`_create_new_trial`, `_get_trials`, ...), so a subclass that retries the public
methods never sees ask, suggest or get_trials. A storage that is not an RDBStorage Optuna uses
as it is: every call the service, Optuna and Ray make goes through the retry below.

A `fence` (studies.service.lease) is asked before every write, and before each retry of one: a driver
that no longer holds its study's lease raises instead of writing, and an outage longer than the
lease lets it wait ends in that error rather than in a write landing after another driver took
over.

A write whose commit reached the server just before the connection dropped is retried too and
may then apply twice (Optuna has no idempotency keys); in a restart the connection almost
always drops before the commit, and the worst case is one duplicated intermediate value.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Container, Iterator, Sequence
from typing import Any

import sqlalchemy.exc
from optuna.distributions import BaseDistribution
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from storage.errors import StorageError

logger = logging.getLogger(__name__)

PATIENCE_S = 300.0  # how long a study waits for its database to come back
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 10.0
WRITE_PREFIXES = ("create_", "set_", "delete_")  # the BaseStorage methods that change the database


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error behind it, each once: what it was raised from or during
    (__cause__, __context__) and a SQLAlchemy error's driver error (.orig). Optuna's RDBStorage
    raises StorageInternalError from SQLAlchemy's error, which holds the driver's as .orig."""
    seen: set[int] = set()
    todo: list[object] = [error]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]


def driver_error(error: BaseException) -> BaseException | None:
    """The database driver's own error behind `error` (psycopg's or sqlite3's), if any."""
    return next((e for e in _chain(error) if hasattr(e, "sqlstate") or isinstance(e, sqlite3.Error)), None)


# Which failures are an outage, waited out for `patience_s`, and which are a request the
# database refuses, which no wait changes. Only a connection that was lost, refused or could
# not be had is an outage, and a transaction the server aborted only because of another one:
# SQLSTATE class 08 (connection exception), 57P01-57P03 (administrator or crash shutdown, the
# server not accepting connections yet: a restart), 53300 (too many connections), 40001 and
# 40P01 (serialization failure, deadlock: the same statement goes through on a retry), 57014
# (our statement_timeout, storage.urls: a lock held by a wedged session, which the server drops
# once keepalives find it dead). Everything else the server answers is permanent: data (22),
# integrity (23), a read-only transaction (25), authorization (28: a changed password),
# syntax and privilege (42), internal errors (XX). psycopg reports a connection it could not
# make or lost without any SQLSTATE (None); its class says it then. SQLite: only a lock held by
# another connection (SQLITE_BUSY, SQLITE_LOCKED) passes; a read-only file, a corrupt one, a
# missing table do not. A permanent error is one StorageError line at once: waiting 300 s for
# it hid the cause, and under a lease ended in "lost the lease" instead.
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01", "57014"})
_TRANSIENT_SQLITE = ("SQLITE_BUSY", "SQLITE_LOCKED")
_CONNECTION_ERRORS = (OperationalError, InterfaceError, DisconnectionError, sqlalchemy.exc.TimeoutError)


def _is_database_error(error: Exception) -> bool:
    """An error from the database, as opposed to Optuna's own (a KeyError, a ValueError)."""
    return isinstance(error, (StorageInternalError, SQLAlchemyError))


def _is_outage(error: Exception) -> bool:
    """A lost or refused connection, or a transaction aborted by another: worth a retry."""
    driver = driver_error(error)
    if driver is None:  # nothing from the driver: SQLAlchemy's own pool or connection failure
        return any(isinstance(e, _CONNECTION_ERRORS) for e in _chain(error))
    if isinstance(driver, sqlite3.Error):
        return str(getattr(driver, "sqlite_errorname", "")).startswith(_TRANSIENT_SQLITE)
    state = getattr(driver, "sqlstate", None)
    if state is None:
        return any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(driver).__mro__)
    return state.startswith("08") or state in _TRANSIENT_SQLSTATES


# A full disk under the database is no outage: waiting does not free space, and a driver that
# waited it out under its lease would end saying it lost the lease, hiding the cause.
# SQLite says it in words; PostgreSQL by SQLSTATE 53100 (disk_full), on the driver's error that
# Optuna wraps twice (see _chain).
_DISK_FULL_WORDS = ("database or disk is full", "disk i/o error")
_DISK_FULL_SQLSTATE = "53100"


def _is_disk_full(error: Exception) -> bool:
    return any(
        getattr(e, "sqlstate", None) == _DISK_FULL_SQLSTATE or any(w in str(e).lower() for w in _DISK_FULL_WORDS)
        for e in _chain(error)
    )


def _first_line(error: Exception) -> str:
    cause = driver_error(error) or error  # the driver's own words
    return (str(cause).strip().splitlines() or [type(error).__name__])[0][:300]


class ResilientStorage(BaseStorage):
    """`backend` (an RDBStorage) with every public BaseStorage method retried through an outage.

    Each method is written out, typed, and passes its call to `_call`: what a study can do to
    its database is all here. tests/test_storage_outage.py checks that no public method of
    Optuna's BaseStorage is left to the base class, where a new one would go unretried."""

    def __init__(self, backend: RDBStorage, patience_s: float = PATIENCE_S) -> None:
        self.backend = backend
        self.patience_s = patience_s
        self.fence: Callable[[], None] | None = None  # raises when this process may no longer write

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the searcher, and this storage with it. The fence belongs to the driver
        # that holds the lease (a thread and a lock), not to whoever unpickles a copy.
        return {**self.__dict__, "fence": None}

    def _call(self, name: str, *args: Any) -> Any:
        """The backend's method `name` on `args`, retried through an outage; a write is fenced."""
        method = getattr(self.backend, name)
        writes = name.startswith(WRITE_PREFIXES)
        deadline, pause = time.monotonic() + self.patience_s, FIRST_PAUSE_S
        while True:
            if writes and self.fence is not None:
                self.fence()
            try:
                return method(*args)
            except Exception as error:
                if not _is_database_error(error):
                    raise
                if _is_disk_full(error):
                    raise StorageError(
                        f"no space for the database's writes (during {name}): {_first_line(error)}; "
                        "free some and rerun: the study resumes"
                    ) from error
                if not _is_outage(error):
                    raise StorageError(f"the database rejected {name}: {_first_line(error)}") from error
                if time.monotonic() + pause > deadline:
                    raise StorageError(
                        f"database unreachable for {self.patience_s:.0f} s (during {name}): {_first_line(error)}"
                    ) from error
                logger.warning(
                    "database unreachable during %s (%s); retrying in %.1f s", name, type(error).__name__, pause
                )
                time.sleep(pause)
                pause = min(2 * pause, MAX_PAUSE_S)

    # --- studies

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._call("create_new_study", directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._call("delete_study", study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_user_attr", study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_system_attr", study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._call("get_study_id_from_name", study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._call("get_study_name_from_id", study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._call("get_study_directions", study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call("get_study_user_attrs", study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call("get_study_system_attrs", study_id)

    def get_all_studies(self) -> list[Any]:  # Optuna's FrozenStudy, which it does not export
        return self._call("get_all_studies")

    # --- trials

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._call("create_new_trial", study_id, template_trial)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        self._call("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self._call("set_trial_state_values", trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._call("set_trial_intermediate_value", trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_system_attr", trial_id, key, value)

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self._call("check_trial_is_updatable", trial_id, trial_state)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call("get_trial", trial_id)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._call("get_all_trials", study_id, deepcopy, states)

    def get_n_trials(self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None) -> int:
        return self._call("get_n_trials", study_id, state)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._call("get_best_trial", study_id)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call("get_trial_id_from_study_id_trial_number", study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._call("get_trial_number_from_id", trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._call("get_trial_param", trial_id, param_name)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._call("get_trial_params", trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._call("get_trial_user_attrs", trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._call("get_trial_system_attrs", trial_id)

    def remove_session(self) -> None:
        self._call("remove_session")
