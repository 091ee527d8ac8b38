"""What /proc says about a process (Linux): its state and the kernel's start time, which tells a
PID reused by another process apart. Used by the lease (is its holder alive?), the loopback
cluster's sessions (whom to signal) and the trainable (how long its worker took to start)."""

from __future__ import annotations

from pathlib import Path


def proc_stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on: [state, ppid, pgrp, session, ...]; None if gone
    (or no /proc). The command name before may hold spaces and parentheses, so the fields are
    counted after its last ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int | str) -> int | None:
    """The kernel's start time of PID, in clock ticks since boot (field 22 of proc(5))."""
    fields = proc_stat(pid)
    return None if fields is None else int(fields[19])
