"""storage.resilient against a real PostgreSQL outage that lands on each kind of call the study
service makes: the server is stopped, the call is made, the server comes back within the
storage's patience, and the call must have succeeded (after logging its retries)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import optuna
import pytest
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
    with pytest.raises(IntegrityError):
        ResilientStorage(backend, patience_s=60).get_all_studies()  # type: ignore[arg-type]
    assert backend.calls == 1
