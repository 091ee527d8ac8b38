"""The processes of a loopback cluster, as sessions: started as session leaders, stopped as a
whole, and nothing else on the machine touched.

A session outlives the process that started it and contains everything its leader starts
(Ray's workers change their process group, not their session), so signalling a session's
members reaches exactly one service's processes. PIDs are matched with their start time, so a
PID the kernel has handed to someone else since is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studies.processes import proc_stat, start_time

STOP_GRACE_S = 20  # SIGTERM to SIGKILL


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
                members.append(int(entry.name))
    return members


@dataclass(frozen=True)
class Session:
    """A process started as a session leader, and everything it started."""

    pid: int
    start: int

    def members(self) -> list[int]:
        # While any member lives the kernel does not hand the leader's PID out again, so a dead
        # leader's session is still ours; a live process with that PID but another start time
        # is someone else's.
        leader_start = start_time(self.pid)
        if leader_start is not None and leader_start != self.start:
            return []
        return session_members(self.pid)

    def alive(self) -> bool:
        """The leader runs (a zombie, exited but not yet collected, does not)."""
        fields = proc_stat(self.pid)
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.start

    def terminate(self) -> None:
        """SIGTERM the leader (it stops its own children); the members if the leader is gone."""
        targets = [self.pid] if self.alive() else self.members()
        _signal(targets, signal.SIGTERM)

    def kill(self) -> None:
        _signal(self.members(), signal.SIGKILL)


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(sessions: Iterable[Session]) -> None:
    """Collect exit statuses of leaders this process started (a failed `up`), so no zombie stays."""
    for session in sessions:
        with contextlib.suppress(ChildProcessError):  # started by an earlier command: init reaps it
            os.waitpid(session.pid, os.WNOHANG)


def _wait_gone(sessions: list[Session], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(s.members() for s in sessions) and time.monotonic() < deadline:
        _reap(sessions)
        time.sleep(0.2)
    _reap(sessions)


def stop_sessions(sessions: list[Session]) -> list[int]:
    """Stop every process of `sessions`; returns the PIDs that survived even SIGKILL."""
    for session in sessions:
        session.terminate()
    _wait_gone(sessions, STOP_GRACE_S)
    for session in sessions:
        session.kill()
    _wait_gone(sessions, 5.0)
    return [pid for s in sessions for pid in s.members()]
