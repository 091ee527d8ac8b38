"""One driver per study: a lease kept in the study's own storage.

Two drivers on one study would each mark the other's running trials as stale and rerun grid
points twice, so the second one refuses with a clear message. The lease is a study system
attribute {id, host, pid, heartbeat} that the running driver refreshes every HEARTBEAT_S; a
lease whose heartbeat is older than STALE_S, or whose process is gone from this host, belongs
to a dead driver and is taken over. Taking it is write-then-reread: of two drivers starting at
the same moment, the one whose write lands last keeps it and the other refuses.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna

KEY = "sidae:driver"
HEARTBEAT_S = 10.0
STALE_S = 60.0
SETTLE_S = 1.0  # time for a concurrent taker's write to land before we re-read


class StudyBusy(RuntimeError):
    """Another live driver holds the study."""


def holder(study: optuna.Study) -> dict[str, Any] | None:
    """The lease as stored {id, host, pid, heartbeat}, or None if no driver holds the study."""
    value = study._storage.get_study_system_attrs(study._study_id).get(KEY)
    return value if isinstance(value, dict) and not value.get("released") else None


def _write(study: optuna.Study, value: dict[str, Any]) -> None:
    study._storage.set_study_system_attr(study._study_id, KEY, value)


def is_alive(lease: dict[str, Any], now: float) -> bool:
    if now - float(lease.get("heartbeat", 0)) > STALE_S:
        return False
    if lease.get("host") == socket.gethostname():
        try:
            os.kill(int(lease["pid"]), 0)  # signal 0: does the process exist?
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _refuse(study: optuna.Study, lease: dict[str, Any]) -> StudyBusy:
    age = time.time() - float(lease["heartbeat"])
    return StudyBusy(f"study {study.study_name!r} is being run by another driver (pid {lease['pid']} on "
                     f"{lease['host']}, alive {age:.0f} s ago); wait for it to finish or stop it, "
                     "or use another --name")


def acquire(study: optuna.Study) -> str:
    """Take the study's lease or raise StudyBusy; returns this driver's lease id."""
    held = holder(study)
    if held is not None and is_alive(held, time.time()):
        raise _refuse(study, held)
    lease_id = uuid.uuid4().hex
    _write(study, {"id": lease_id, "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time()})
    time.sleep(SETTLE_S)
    held = holder(study)
    if held is None or held["id"] != lease_id:
        raise _refuse(study, held or {"pid": "?", "host": "?", "heartbeat": time.time()})
    return lease_id


def _heartbeat(study: optuna.Study, lease_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        held = holder(study)
        if held is None or held["id"] != lease_id:
            return  # taken over (we were presumed dead): nothing sensible to refresh
        _write(study, {**held, "heartbeat": time.time()})


@contextmanager
def held(study: optuna.Study) -> Iterator[str]:
    """Hold the lease for the block, refreshing it in a background thread; release at the end."""
    lease_id = acquire(study)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(study, lease_id, stop), name="study-lease", daemon=True)
    beat.start()
    try:
        yield lease_id
    finally:
        stop.set()
        beat.join()
        current = holder(study)
        if current is not None and current["id"] == lease_id:
            _write(study, {**current, "released": True})
