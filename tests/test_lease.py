"""One driver per study: the lease in the study's storage."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from storage import make_storage
from studies import lease


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(study_name="s", storage=make_storage(f"sqlite:///{tmp_path / 'x.db'}"))


def test_second_driver_is_refused_while_the_first_holds_the_study(study: optuna.Study) -> None:
    with lease.held(study), pytest.raises(lease.StudyBusy, match="being run by another driver .* use another --name"):
        lease.acquire(study)
    lease.acquire(study)  # released at the end of the block


def test_a_remote_lease_counts_until_its_heartbeat_is_stale(study: optuna.Study) -> None:
    remote = {"id": "x", "host": "another-machine", "pid": 1}
    lease._write(study, {**remote, "heartbeat": time.time()})
    with pytest.raises(lease.StudyBusy, match="pid 1 on another-machine"):
        lease.acquire(study)
    lease._write(study, {**remote, "heartbeat": time.time() - 2 * lease.STALE_S})
    lease.acquire(study)


def test_lease_of_a_dead_local_process_is_taken_over_at_once(study: optuna.Study) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lease._write(study, {"id": "x", "host": lease.socket.gethostname(), "pid": pid, "heartbeat": time.time()})
    lease.acquire(study)
