"""The loopback cluster (docker/local_cluster.py): a real PostgreSQL server, a Ray head, two Ray
worker nodes and optuna-dashboard as processes on this machine, the topology of
docker/docker-compose.yml. A smoke study submitted with --address and the PostgreSQL URL runs
on both worker nodes and lands in PostgreSQL; `down`, and a failed `up`, leave no process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from studies.cluster import launch
from studies.cluster.state import Paths, ray_address, sessions_of, storage_env, storage_url
from tests.conftest import REPO
from tests.smoke_study import QUICK, run_cli

SCRIPT = REPO / "docker" / "local_cluster.py"
NUL = b"\0"  # separates the arguments in /proc/PID/cmdline


def cluster(state: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python docker/local_cluster.py --state-dir STATE ARGS` as a user runs it."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--state-dir", str(state), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A fresh state folder, and `down` afterwards whatever the test got to. Not under pytest's
    tmp_path: as root PostgreSQL runs as `postgres`, which cannot enter pytest's 0700 folders."""
    folder = Path(tempfile.mkdtemp(prefix="sidae-cluster-"))
    try:
        yield folder
    finally:
        stopped = cluster(folder, "down")
        if stopped.returncode == 0:
            shutil.rmtree(folder, ignore_errors=True)
    assert stopped.returncode == 0, f"down failed; processes may be left: {stopped.stderr}"


def cluster_processes(state: Path) -> list[str]:
    """Live processes that belong to the cluster in `state`: their command line or environment
    names the state folder (the token path every Ray process inherits, the dashboard's artifact
    folder, the PostgreSQL data folder) or the cluster's Ray temp folder."""
    markers = [str(state).encode(), str(Paths(state).ray_temp).encode()]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited; only waits for its parent to collect the status
            command = (proc / "cmdline").read_bytes()
            environment = (proc / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if any(marker in command + environment for marker in markers):
            found.append(f"{proc.name}: {command.replace(NUL, b' ')[:120]!r}")
    return found


def pg_running(state: Path, port: int) -> bool:
    return launch.pg_running(Paths(state), port)


@pytest.mark.slow
def test_smoke_study_runs_on_both_worker_nodes_and_down_leaves_nothing(
    state_dir: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = cluster(state_dir, "up", "--workers", "2")
    assert started.returncode == 0, started.stderr
    record = json.loads((state_dir / "cluster.json").read_text())
    token = (state_dir / "ray-token").read_text()
    assert (state_dir / "ray-token").stat().st_mode & 0o777 == 0o600
    assert len(token) == 64 and token not in started.stdout + started.stderr
    # Ray makes each node's folder world-writable; the folder above them stays ours alone.
    assert Paths(state_dir).ray_temp.stat().st_mode & 0o777 == 0o700
    with urllib.request.urlopen(f"http://127.0.0.1:{record['dashboard_port']}/dashboard", timeout=10) as page:
        assert page.status == 200
    # Token authentication is on: refused without the token, accepted with it (in the form compose passes it).
    health = [launch.tool("ray"), "health-check", "--address", ray_address(record)]
    bare = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    refused = subprocess.run(health, env=bare, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "InvalidAuthToken" in refused.stderr
    accepted = subprocess.run(
        health,
        env={**bare, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert accepted.returncode == 0, accepted.stderr

    # What a runner on a real cluster does: --address and the PostgreSQL URL, the token from the environment.
    url = storage_url(record)
    # Two trials, one CPU each, at once: one per worker node. The seed's controls would take a
    # node's CPU first (studies.service.baseline) and leave both trials to the other node, so a
    # first run of one point stores them: the second run's two trials then have the cluster to
    # themselves. Both runs name their points (a descriptive sweep), so the second one extends the first.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(state_dir / "ray-token"))
    for name, value in storage_env(Paths(state_dir)).items():  # PGPASSFILE
        monkeypatch.setenv(name, value)
    where = ["--name", "w-sweep-cluster", "--address", ray_address(record), "--storage", url]
    where += ["--artifact-dir", str(state_dir / "artifacts"), "--ray-dir", str(state_dir / "tune")]
    first = run_cli("--study", "w-sweep", *QUICK, "--w-grid", "0.5", *where, cwd=state_dir, data_dir=mnist_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    grid = ["--w-grid", "0,1"]
    done = run_cli("--study", "w-sweep", *QUICK, *grid, *where, cwd=state_dir, data_dir=mnist_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scheduled beside the trials" not in done.stderr  # the seed's controls were stored by the first run
    trials = optuna.load_study(study_name="w-sweep-cluster", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    pair = [t for t in trials if t.params["w"] in (0.0, 1.0)]
    nodes = {t.user_attrs["ray_node_id"] for t in pair}
    assert len(nodes) == 2, f"both trials ran on one Ray node: {nodes}"
    assert all(Path(t.user_attrs["run_dir"]).is_relative_to(state_dir / "artifacts") for t in trials)

    # `submit` points at the same database: the finished study has nothing left to run.
    again = cluster(
        state_dir,
        "submit",
        "--study",
        "w-sweep",
        *QUICK,
        *grid,
        "--name",
        "w-sweep-cluster",
        "--data-dir",
        str(mnist_dir),
    )
    assert again.returncode == 0 and "nothing left to run" in again.stderr, again.stderr[-3000:]
    assert token not in again.stdout + again.stderr

    sessions = sessions_of(record).values()
    assert cluster_processes(state_dir), "the marker finds no process of a running cluster"
    stopped = cluster(state_dir, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert not [pid for s in sessions for pid in s.members()]
    assert cluster_processes(state_dir) == []
    assert not pg_running(state_dir, record["pg_port"])
    assert not (state_dir / "ray-token").exists()


@pytest.mark.slow
def test_failed_up_stops_what_it_started(state_dir: Path) -> None:
    with socket.socket() as taken:  # the dashboard's port: everything before the dashboard starts, then it fails
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = cluster(state_dir, "up", "--workers", "1", "--dashboard-port", str(port))
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: dashboard exited") and len(failed.stderr.strip().splitlines()) == 1
    assert "Address already in use" in failed.stderr
    assert cluster_processes(state_dir) == []
    assert not (state_dir / "cluster.json").exists()


def test_commands_without_a_cluster(state_dir: Path) -> None:
    assert cluster(state_dir, "down").returncode == 0
    assert cluster(state_dir, "status").returncode == 3
    submitted = cluster(state_dir, "submit", "--study", "w-sweep")
    assert submitted.returncode == 2 and "no cluster" in submitted.stderr
    wrong = cluster(state_dir, "up", "--workers", "0")
    assert wrong.returncode == 2 and "--workers" in wrong.stderr
