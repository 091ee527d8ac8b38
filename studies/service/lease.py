"""One driver per study: a lease in the study's own database (storage.lease), with fencing.

Two drivers on one study would each mark the other's running trials as stale and rerun grid
points twice. So a driver takes the study's lease before it touches anything (one atomic
statement: of two drivers starting at the same instant exactly one wins), renews it every
`heartbeat_s`, and is fenced: the study storage asks `Lease.check` before every write.

Why fencing holds without trusting any clock but the database's and the driver's own: the
driver counts its lease valid until `stale_s * (1 - MARGIN)` after it *sent* its last successful
renewal (time.monotonic), and the database stamps that renewal later than it was sent; another
driver may take the lease only once the database's clock says the stamp is `stale_s` old. So a
driver that cannot renew (frozen with SIGSTOP, cut off from the database, starved) stops writing
before any other driver can start, and on waking finds the lease gone and stops for good.
A lease whose process is gone from this host is taken over at once.

The limit: Optuna's storage API has no conditional write, so the fence is checked just before a
write is sent, not inside its transaction; a process frozen between the two for longer than the
margin could still land that one write late.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy.exc import SQLAlchemyError

from storage import StorageError
from storage.lease import Holder, LeaseTable
from storage.resilient import ResilientStorage

HEARTBEAT_S = 10.0
STALE_S = 120.0  # a database outage up to about 100 s is waited out; a longer one stops the driver
MARGIN = 1 / 6  # of stale_s: for writes in flight and clocks that tick at slightly different rates


class StudyBusy(RuntimeError):
    """Another live driver holds the study."""


class LeaseLost(StudyBusy):
    """This driver's lease ran out or was taken over: it stops without writing."""


class Lease:
    def __init__(self, table: LeaseTable, study_name: str, lease_id: str, sent: float, stale_s: float) -> None:
        self.table, self.study_name, self.lease_id, self.stale_s = table, study_name, lease_id, stale_s
        self.lost = False
        self._valid_until = sent + stale_s * (1 - MARGIN)
        self._lock = threading.Lock()

    def renew(self) -> None:
        """One renewal; a database error leaves the lease to run out, a lease taken over is lost."""
        with self._lock:
            if self.lost:
                return
            sent = time.monotonic()
            try:
                still_ours = self.table.renew(self.study_name, self.lease_id)
            except SQLAlchemyError:
                return
            if still_ours:
                self._valid_until = sent + self.stale_s * (1 - MARGIN)
            else:
                self.lost = True

    def check(self) -> None:
        """The fence: raise LeaseLost unless this driver surely still holds the study."""
        if not self.lost and time.monotonic() >= self._valid_until:
            self.renew()  # it ran out while we could not renew: nobody may have taken it yet
        if self.lost or time.monotonic() >= self._valid_until:
            self.lost = True
            raise LeaseLost(
                f"this driver lost the lease on study {self.study_name!r} (it could not renew it "
                "in time, or another driver took it over); it stopped without writing. Rerun the "
                "command to resume once no other driver runs the study"
            )


def _here() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def _dead_here(holder: Holder) -> bool:
    """Its process is gone from this host (a driver killed with -9, or the machine rebooted)."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)  # signal 0: does the process exist?
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _refuse(study_name: str, holder: Holder | None) -> StudyBusy:
    who = "?" if holder is None else f"pid {holder.pid} on {holder.host}, renewed {holder.age_s:.0f} s ago"
    return StudyBusy(
        f"study {study_name!r} is being run by another driver ({who}); wait for it to finish or "
        "stop it, or use another --name"
    )


def acquire(table: LeaseTable, study_name: str, stale_s: float = STALE_S) -> Lease:
    """Take the study's lease or raise StudyBusy."""
    held = table.current(study_name)
    dead = held.lease_id if held is not None and not held.released and _dead_here(held) else None
    lease_id, sent = uuid.uuid4().hex, time.monotonic()
    if not table.try_acquire(study_name, lease_id, *_here(), stale_s=stale_s, dead_lease_id=dead):
        raise _refuse(study_name, table.current(study_name))
    return Lease(table, study_name, lease_id, sent, stale_s)


def holder(storage: ResilientStorage, study_name: str) -> Holder | None:
    """Who drives the study now (None if nobody)."""
    held = LeaseTable(storage.backend.engine).current(study_name)
    return None if held is None or held.released else held


@contextmanager
def held(
    storage: ResilientStorage, study_name: str, *, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S
) -> Iterator[Lease]:
    """Hold the study's lease for the block: renewed in a background thread, every write through
    `storage` fenced by it, released at the end."""
    try:
        table = LeaseTable(storage.backend.engine)
        lease = acquire(table, study_name, stale_s)
    except SQLAlchemyError as error:
        where = storage.backend.engine.url.render_as_string(hide_password=True)
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise StorageError(f"cannot take the study's lease in {where}: {reason}") from None
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_s) and not lease.lost:
            lease.renew()

    thread = threading.Thread(target=beat, name="study-lease", daemon=True)
    storage.fence = lease.check
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        storage.fence = None
        if not lease.lost:
            with suppress(SQLAlchemyError):  # an unreachable database: the lease goes stale on its own
                table.release(study_name, lease.lease_id)
