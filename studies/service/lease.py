"""One driver per study: a lease in the study's own database (storage.lease), with fencing.

Two drivers on one study would each mark the other's running trials as stale and rerun grid
points twice. So a driver takes the study's lease before it touches anything (one atomic
statement: of two drivers starting at the same instant exactly one wins), renews it every
`heartbeat_s`, and is fenced: the study storage asks `Lease.check` before every write.

Why fencing holds without trusting any clock but the database's and the driver's own: the
driver counts its lease valid until `stale_s * (1 - MARGIN)` after it *sent* its last successful
renewal (by `clock`, which keeps counting while the machine is suspended: time.monotonic stops
then, and a laptop woken after an hour would count a long-stale lease valid), and the database
stamps that renewal later than it was sent; another driver may take the lease only once the
database's clock says the stamp is `stale_s` old. So a driver that cannot renew (frozen with
SIGSTOP, suspended, cut off from the database, starved) stops writing before any other driver
can start, and on waking finds the lease gone and stops for good.

A lease whose process is surely gone is taken over at once: same host name, same boot, same
PID namespace as ours (a pid means nothing across machines, reboots or containers, which may
share a host name), and its pid gone, a zombie, or now a process started at another time (the
pid reused). A holder recorded without boot or namespace (a row from before they were stored,
a system without /proc) is only taken over once stale.

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
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from sidae.errors import UserError
from storage import StorageError
from storage.lease import LeaseRecord, LeaseTable, Process
from storage.resilient import ResilientStorage
from studies.processes import proc_stat, start_time

HEARTBEAT_S = 10.0
STALE_S = 120.0  # a database outage up to about 100 s is waited out; a longer one stops the driver
MARGIN = 1 / 6  # of stale_s: for writes in flight and clocks that tick at slightly different rates


class StudyBusy(UserError, RuntimeError):
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
            sent = clock()
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
        if not self.lost and clock() >= self._valid_until:
            self.renew()  # it ran out while we could not renew: nobody may have taken it yet
        if self.lost or clock() >= self._valid_until:
            self.lost = True
            raise LeaseLost(
                f"this driver lost the lease on study {self.study_name!r} (it could not renew it "
                "in time, or another driver took it over); it stopped without writing. Rerun the "
                "command to resume once no other driver runs the study"
            )


def clock() -> float:
    """Seconds, counting through a suspend (Linux's CLOCK_BOOTTIME); elsewhere time.monotonic."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _here() -> Process:
    """This process, as a lease records it."""
    try:
        pid_ns: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = None
    started = start_time(os.getpid())
    return Process(
        socket.gethostname(),
        os.getpid(),
        _read("/proc/sys/kernel/random/boot_id"),
        pid_ns,
        started,
    )


def _surely_dead(record: LeaseRecord, here: Process) -> bool:
    """Its process is gone (a driver killed with -9, its container or machine restarted), as
    far as this process can tell: only a holder in our own boot and PID namespace can be told."""
    theirs = record.process
    if None in (theirs.boot_id, theirs.pid_ns, theirs.started, here.boot_id, here.pid_ns):
        return False
    if (theirs.host, theirs.boot_id, theirs.pid_ns) != (here.host, here.boot_id, here.pid_ns):
        return False
    fields = proc_stat(theirs.pid)
    return fields is None or fields[0] in "ZX" or int(fields[19]) != theirs.started


def _refuse(study_name: str, record: LeaseRecord | None) -> StudyBusy:
    who = "?" if record is None else f"pid {record.pid} on {record.host}, renewed {record.age_s:.0f} s ago"
    return StudyBusy(
        f"study {study_name!r} is being run by another driver ({who}); wait for it to finish or "
        "stop it, or use another --name"
    )


def take(table: LeaseTable, study_name: str, stale_s: float = STALE_S) -> Lease:
    """Take the study's lease or raise StudyBusy."""
    record, here = table.current(study_name), _here()
    dead = record.lease_id if record is not None and not record.released and _surely_dead(record, here) else None
    lease_id, sent = uuid.uuid4().hex, clock()
    if not table.try_take(study_name, lease_id, here, stale_s=stale_s, dead_lease_id=dead):
        raise _refuse(study_name, table.current(study_name))
    return Lease(table, study_name, lease_id, sent, stale_s)


def current(storage: ResilientStorage, study_name: str) -> LeaseRecord | None:
    """The study's lease while a driver holds it (None if nobody does)."""
    record = LeaseTable(storage.backend.engine).current(study_name)
    return None if record is None or record.released else record


@contextmanager
def holding(
    storage: ResilientStorage, study_name: str, *, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S
) -> Iterator[Lease]:
    """Hold the study's lease for the block: renewed in a background thread, every write through
    `storage` fenced by it, released at the end."""
    try:
        table = LeaseTable(storage.backend.engine)
        lease = take(table, study_name, stale_s)
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
