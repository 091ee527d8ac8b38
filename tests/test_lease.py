"""One driver per study: the lease in the study's database (storage.lease, studies.service.lease),
against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from sqlalchemy.exc import OperationalError

from storage import make_storage
from storage.lease import LeaseTable, Process
from storage.resilient import ResilientStorage
from studies.service import lease


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'x.db'}"
    return request.getfixturevalue("postgres_url")


BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def table(url: str) -> LeaseTable:
    return LeaseTable(make_storage(url).backend.engine)


def fresh_name() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def test_second_driver_is_refused_while_the_first_holds_the_study(url: str) -> None:
    name = fresh_name()
    with (
        lease.holding(make_storage(url), name),
        pytest.raises(lease.StudyBusy, match=r"being run by another driver \(pid \d+ on .*use another --name"),
    ):
        lease.take(table(url), name)
    lease.take(table(url), name)  # released at the end of the block


def race(tables: list[LeaseTable], name: str) -> int:
    """Drivers released by one barrier, each on its own connection; how many took the lease."""
    start, winners = threading.Barrier(len(tables)), []

    def drive(t: LeaseTable) -> None:
        start.wait()
        with contextlib.suppress(lease.StudyBusy):
            winners.append(lease.take(t, name))

    threads = [threading.Thread(target=drive, args=(t,)) for t in tables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(winners)


def test_two_drivers_starting_at_the_same_instant_never_both_win(url: str) -> None:
    tables = [table(url), table(url)]
    assert [race(tables, fresh_name()) for _ in range(50)] == [1] * 50


def test_a_lease_is_taken_over_only_once_stale_and_its_old_holder_is_fenced(url: str) -> None:
    name = fresh_name()
    first = lease.take(table(url), name, stale_s=1.0)  # no heartbeat: it goes stale
    with pytest.raises(lease.StudyBusy):
        lease.take(table(url), name, stale_s=1.0)
    time.sleep(1.2)
    lease.take(table(url), name, stale_s=1.0)
    with pytest.raises(lease.LeaseLost, match="stopped without writing"):
        first.check()


def test_host_clocks_play_no_part(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drivers on hosts whose clocks are a day apart: a live lease is still live, a stale one
    still stale (the database's clock decides)."""
    name, stale_s = fresh_name(), 4.0  # seconds enough for two refused takes on a loaded machine
    first = lease.take(table(url), name, stale_s=stale_s)
    real_time = time.time
    for skew in (86400.0, -86400.0):
        monkeypatch.setattr(time, "time", lambda skew=skew: real_time() + skew)
        with pytest.raises(lease.StudyBusy):
            lease.take(table(url), name, stale_s=stale_s)
    first.check()  # the holder itself is unaffected
    time.sleep(stale_s + 0.2)
    lease.take(table(url), name, stale_s=stale_s)


def test_renewals_from_a_skewed_host_are_stamped_by_the_database(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder's own clock a day ahead or behind: its renewals keep the lease fresh by the
    database's clock (not a day old, not a day in the future, which would never go stale)."""
    name = fresh_name()
    first = lease.take(table(url), name, stale_s=2.0)
    real_time = time.time
    for skew in (86400.0, -86400.0):
        monkeypatch.setattr(time, "time", lambda skew=skew: real_time() + skew)
        first.renew()
        monkeypatch.setattr(time, "time", real_time)  # read by a driver on a host with the right time
        held = table(url).current(name)
        assert held is not None and held.lease_id == first.lease_id and 0 <= held.age_s < 1.0
    time.sleep(2.2)  # no renewal since: stale for everyone, however far its host's clock is off
    lease.take(table(url), name, stale_s=2.0)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def held_by(url: str, process: Process) -> str:
    """A fresh study whose lease `process` holds, as its driver would have taken it."""
    name = fresh_name()
    assert table(url).try_take(name, "theirs", process, stale_s=lease.STALE_S)
    return name


def test_lease_of_a_dead_local_process_is_taken_over_at_once(url: str) -> None:
    """Same host, boot and PID namespace: the pid is gone (a driver killed with -9)."""
    here = lease._here()
    assert None not in (here.boot_id, here.pid_ns, here.started)  # Linux: all known
    lease.take(table(url), held_by(url, replace(here, pid=dead_pid())))


def test_lease_of_a_reused_pid_is_taken_over_at_once(url: str) -> None:
    """Our own pid, alive, but started at another time: the holder died and its pid was reused
    (after a container restart pids start again from 1)."""
    here = lease._here()
    assert here.started is not None
    lease.take(table(url), held_by(url, replace(here, started=here.started + 1)))


@pytest.mark.parametrize(
    "change",
    [
        {"boot_id": "another-boot"},  # the machine rebooted, or another machine of the same name
        {"pid_ns": "pid:[1]"},  # another container on this host, with its own pids
        {"host": "another-machine"},
        {"boot_id": None, "pid_ns": None, "started": None},  # a row from before these were stored
    ],
)
def test_a_lease_we_cannot_tell_dead_counts_until_stale(url: str, change: dict[str, object]) -> None:
    """Its pid is gone here, but it is not ours to judge: it waits for staleness."""
    holder = replace(lease._here(), pid=dead_pid(), **change)
    with pytest.raises(lease.StudyBusy, match=rf"pid {holder.pid} on {holder.host}, renewed"):
        lease.take(table(url), held_by(url, holder))


def test_a_live_local_driver_keeps_its_lease(url: str) -> None:
    """Same host, boot, namespace, pid alive with the start time it recorded: a live driver."""
    with pytest.raises(lease.StudyBusy, match=rf"pid {lease.os.getpid()} on {lease.socket.gethostname()}, renewed"):
        lease.take(table(url), held_by(url, lease._here()))


def test_the_identity_round_trips_through_the_host_column() -> None:
    here = lease._here()
    assert Process.from_columns(here.host_column(), here.pid) == here
    assert Process.from_columns("old-host", 7) == Process("old-host", 7)
    long = replace(here, host="h" * 300)
    assert len(long.host_column()) == 255 and Process.from_columns(long.host_column(), 1).boot_id == here.boot_id


def test_a_suspend_counts_against_the_lease(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine suspended for an hour: time.monotonic stood still, CLOCK_BOOTTIME did not. On
    waking the lease has run out, and a renewal that fails (the network not back yet) must not
    let the driver write as if it still held it."""
    held = lease.take(table(url), fresh_name(), stale_s=60.0)
    held.check()
    real = time.clock_gettime
    monkeypatch.setattr(time, "clock_gettime", lambda which: real(which) + (3600.0 if which == BOOTTIME else 0.0))

    def unreachable(*args: object) -> bool:
        raise OperationalError("UPDATE ...", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(held.table, "renew", unreachable)
    with pytest.raises(lease.LeaseLost, match="stopped without writing"):
        held.check()


FROZEN_DRIVER = textwrap.dedent("""
    import os, signal, sys, time
    import optuna
    from storage import make_storage
    from studies.service import lease

    url, name = sys.argv[1], sys.argv[2]
    storage = make_storage(url)
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
    with lease.holding(storage, name, stale_s=2.0, heartbeat_s=0.2):
        for tick in range(1, 1000):
            study.set_user_attr("tick", tick)
            if tick == 3:
                os.kill(os.getpid(), signal.SIGSTOP)  # frozen here, between two writes
            time.sleep(0.1)
""")


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "T"


def test_a_frozen_driver_that_lost_its_lease_stops_without_writing(url: str) -> None:
    name = fresh_name()
    storage = make_storage(url)
    study = optuna.create_study(study_name=name, storage=storage)
    driver = subprocess.Popen([sys.executable, "-c", FROZEN_DRIVER, url, name], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while study.user_attrs.get("tick") != 3 or not stopped(driver.pid):
            assert time.monotonic() < deadline and driver.poll() is None, "the driver never froze"
            time.sleep(0.1)
        time.sleep(2.5)  # past the stale time, by the database's clock
        lease.take(table(url), name, stale_s=2.0)  # a second driver takes over
        driver.send_signal(signal.SIGCONT)
        _, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode != 0
    assert "LeaseLost" in stderr and "stopped without writing" in stderr
    assert study.user_attrs["tick"] == 3  # not one write after the takeover


def test_holder_reads_who_drives_the_study(url: str) -> None:
    storage, name = make_storage(url), fresh_name()
    assert lease.current(storage, name) is None
    with lease.holding(storage, name):
        held = lease.current(storage, name)
        assert held is not None and held.pid == lease.os.getpid()
    assert lease.current(storage, name) is None


def test_writes_are_fenced_by_the_lease(url: str) -> None:
    storage: ResilientStorage = make_storage(url)
    name = fresh_name()
    study = optuna.create_study(study_name=name, storage=storage)
    with lease.holding(storage, name, stale_s=1.0, heartbeat_s=60.0) as held:  # no renewal in time
        study.set_user_attr("before", 1)
        time.sleep(1.2)
        lease.take(table(url), name, stale_s=1.0)  # another driver
        with pytest.raises(lease.LeaseLost):
            study.set_user_attr("after", 1)
        assert held.lost
    assert "after" not in optuna.load_study(study_name=name, storage=url).user_attrs


def test_a_fenced_storage_still_pickles_without_its_fence(url: str) -> None:
    """Ray pickles the searcher and the storage with it (the fence holds a lock and a thread)."""
    storage, name = make_storage(url), fresh_name()
    with lease.holding(storage, name):
        copy = pickle.loads(pickle.dumps(storage))
    assert copy.fence is None
    optuna.create_study(study_name=name, storage=copy).set_user_attr("a", 1)
