"""An Optuna RDBStorage that waits out a database restart instead of failing the study.

A study driver writes to the database after every epoch of every trial. If PostgreSQL restarts
(maintenance, a failover, a container restart) the writes in that window fail, and Ray Tune
ends the whole experiment on an exception from its searcher. Here every storage call that fails
with a database error is retried, with a growing pause, until it succeeds or `patience_s`
passes; pool_pre_ping (set in storage.urls) then replaces the connections the restart killed.

A write whose commit reached the server just before the connection dropped is retried too and
may then apply twice (Optuna has no idempotency keys); in a restart the connection almost
always drops before the commit, and the worst case is one duplicated intermediate value.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

logger = logging.getLogger(__name__)

PATIENCE_S = 300.0  # how long a study waits for its database to come back
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 10.0

F = TypeVar("F", bound=Callable[..., Any])


def _is_outage(error: Exception) -> bool:
    """A lost or refused connection, as opposed to a request the database rejects."""
    return isinstance(error, (StorageInternalError, SQLAlchemyError)) and not isinstance(error, IntegrityError)


def _retrying(method: F) -> F:
    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        deadline, pause = time.monotonic() + self.patience_s, FIRST_PAUSE_S
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as error:
                if not _is_outage(error) or time.monotonic() + pause > deadline:
                    raise
                logger.warning("database unreachable during %s (%s); retrying in %.1f s", method.__name__,
                               type(error).__name__, pause)
                time.sleep(pause)
                pause = min(2 * pause, MAX_PAUSE_S)

    return call  # type: ignore[return-value]


class ResilientRDBStorage(RDBStorage):
    """RDBStorage whose every public BaseStorage method retries through a database outage."""

    patience_s: float = PATIENCE_S


for _name, _method in inspect.getmembers(BaseStorage, inspect.isfunction):
    if not _name.startswith("_"):
        setattr(ResilientRDBStorage, _name, _retrying(getattr(RDBStorage, _name)))

