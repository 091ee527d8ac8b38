"""An Optuna storage that waits out a database restart instead of failing the study.

A study driver writes to the database after every epoch of every trial. If PostgreSQL restarts
(maintenance, a failover, a container restart) the writes in that window fail, and Ray Tune
ends the whole experiment on an exception from its searcher. Here every storage call that fails
with a database error is retried, with a growing pause, until it succeeds or `patience_s`
passes (then one-line StorageError); pool_pre_ping (set in storage.urls) replaces the
connections the restart killed.

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

import abc
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from storage.errors import StorageError

logger = logging.getLogger(__name__)

PATIENCE_S = 300.0  # how long a study waits for its database to come back
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 10.0
WRITE_PREFIXES = ("create_", "set_", "delete_")  # the BaseStorage methods that change the database


def _is_outage(error: Exception) -> bool:
    """A lost or refused connection, as opposed to a request the database rejects."""
    return isinstance(error, (StorageInternalError, SQLAlchemyError)) and not isinstance(error, IntegrityError)


# A full disk under the database is no outage: waiting does not free space, and a driver that
# waited it out under its lease would end saying it lost the lease, hiding the cause.
# SQLite says it in words; PostgreSQL by SQLSTATE 53100 (disk_full).
_DISK_FULL_WORDS = ("database or disk is full", "disk i/o error")
_DISK_FULL_SQLSTATE = "53100"


def _is_disk_full(error: Exception) -> bool:
    cause = getattr(error, "orig", None) or error.__cause__ or error
    return getattr(cause, "sqlstate", None) == _DISK_FULL_SQLSTATE or any(
        words in str(cause).lower() for words in _DISK_FULL_WORDS
    )


def _retrying(name: str) -> Callable[..., Any]:
    """BaseStorage method `name`, called on the backend until it gets through an outage."""

    writes = name.startswith(WRITE_PREFIXES)

    def call(self: ResilientStorage, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.backend, name)
        deadline, pause = time.monotonic() + self.patience_s, FIRST_PAUSE_S
        while True:
            if writes and self.fence is not None:
                self.fence()
            try:
                return method(*args, **kwargs)
            except Exception as error:
                if _is_outage(error) and _is_disk_full(error):
                    raise StorageError(
                        f"no space for the database's writes (during {name}): {_first_line(error)}; "
                        "free some and rerun: the study resumes"
                    ) from error
                if not _is_outage(error):
                    raise
                if time.monotonic() + pause > deadline:
                    raise StorageError(
                        f"database unreachable for {self.patience_s:.0f} s (during {name}): {_first_line(error)}"
                    ) from error
                logger.warning(
                    "database unreachable during %s (%s); retrying in %.1f s", name, type(error).__name__, pause
                )
                time.sleep(pause)
                pause = min(2 * pause, MAX_PAUSE_S)

    call.__name__ = name
    return call


def _first_line(error: Exception) -> str:
    cause = getattr(error, "orig", None) or error.__cause__ or error  # the driver's own words
    return (str(cause).strip().splitlines() or [type(error).__name__])[0][:300]


class ResilientStorage(BaseStorage):
    """`backend` (an RDBStorage) with every public BaseStorage method retried through an outage."""

    def __init__(self, backend: RDBStorage, patience_s: float = PATIENCE_S) -> None:
        self.backend = backend
        self.patience_s = patience_s
        self.fence: Callable[[], None] | None = None  # raises when this process may no longer write

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the searcher, and this storage with it. The fence belongs to the driver
        # that holds the lease (a thread and a lock), not to whoever unpickles a copy.
        return {**self.__dict__, "fence": None}


for _name, _ in inspect.getmembers(BaseStorage, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(ResilientStorage, _name, _retrying(_name))
abc.update_abstractmethods(ResilientStorage)
