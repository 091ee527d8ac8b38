"""Starting a loopback cluster's processes: PostgreSQL (scripts/pg_local.sh), a Ray head that
runs no trials, Ray worker nodes (`ray start --block`) and optuna-dashboard, each in a session of
its own (studies/cluster/sessions.py) and recorded the moment it starts.

Each start waits until the service answers (a port, an HTTP page, every Ray node joined) and
fails early, with the end of the process's log, when the process died instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from studies.cluster.sessions import Session
from studies.cluster.state import (
    REPO,
    ClusterError,
    Paths,
    private_dir,
    ray_address,
    ray_env,
    save_record,
    storage_env,
    storage_url,
)
from studies.processes import start_time

BIN = Path(sys.executable).parent  # ray and optuna-dashboard of this environment
START_TIMEOUT_S = 120  # a loaded 2-core machine takes tens of seconds to bring Ray nodes up


def free_port() -> int:
    """A port nothing listens on now; from the OS's ephemeral range, so never in Ray's worker range."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_token(paths: Paths) -> None:
    """A fresh 256-bit token, readable by this user only (created 0600, never world-readable)."""
    paths.token.unlink(missing_ok=True)
    fd = os.open(paths.token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_hex(32))


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        raise ClusterError(f"{name} not found next to {sys.executable} or on PATH; install the project (make setup)")
    return path


def start_session(paths: Paths, record: dict, name: str, command: list[str], env: dict[str, str]) -> Session:
    """Start `command` as a session leader, logging to logs/NAME.log, and record it at once."""
    with open(paths.logs / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    session = Session(process.pid, start_time(process.pid) or 0)
    record["processes"][name] = [session.pid, session.start]
    save_record(paths, record)
    return session


def ray_node_command(paths: Paths, name: str, record: dict) -> list[str]:
    # A temp dir per node, as on separate machines: nodes starting at once in one temp dir race
    # for the same socket names and one of them never registers.
    short = name.replace("ray-worker-", "w").replace("ray-", "")  # head, w1, w2: socket paths stay short
    common = [
        "--block",
        "--temp-dir",
        str(paths.ray_temp / short),
        "--disable-usage-stats",
        "--dashboard-agent-listen-port",
        "0",
    ]  # 0: a free port; the default 52365 clashes between nodes
    if name == "ray-head":
        return [
            tool("ray"),
            "start",
            "--head",
            "--port",
            str(record["ray_port"]),
            "--num-cpus",
            "0",
            "--num-gpus",
            "0",
            "--include-dashboard",
            "false",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(free_port()),
            *common,
        ]
    return [
        tool("ray"),
        "start",
        "--address",
        ray_address(record),
        "--num-cpus",
        str(record["cpus_per_worker"]),
        "--num-gpus",
        str(record["gpus_per_worker"]),
        *common,
    ]


def worker_env(paths: Paths, record: dict, index: int) -> dict[str, str]:
    """Worker node `index` sees exactly its own GPUs (none when --gpus-per-worker is 0)."""
    per = record["gpus_per_worker"]
    return {**ray_env(paths), "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(index * per, (index + 1) * per))}


def dashboard_command(paths: Paths, record: dict) -> list[str]:
    return [
        sys.executable,
        "-m",
        "studies.cli.dashboard",
        "--storage",
        storage_url(record),
        "--port",
        str(record["dashboard_port"]),
        "--artifact-dir",
        str(paths.artifacts),
        "--init-storage",  # the database is new: Optuna's tables come before the first study
    ]


def _pg_local(action: str, paths: Paths, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "pg_local.sh"), action, str(paths.postgres), str(port)],
        capture_output=True,
        text=True,
        timeout=180,
    )


def pg_local(action: str, paths: Paths, port: int) -> None:
    """pg_local.sh start|stop; ClusterError with the script's own message when it fails."""
    done = _pg_local(action, paths, port)
    if done.returncode != 0:
        raise ClusterError(f"scripts/pg_local.sh {action} failed: {done.stderr.strip()}")


def pg_running(paths: Paths, port: int) -> bool:
    return _pg_local("status", paths, port).returncode == 0


def _log_tail(paths: Paths, name: str, lines: int = 5) -> str:
    try:
        text = (paths.logs / f"{name}.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_until(ready: Callable[[], bool], what: str, paths: Paths, watched: dict[str, Session]) -> None:
    """Poll `ready()` until it holds; fail early, with the log's end, when a watched process died."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        for name, session in watched.items():
            if not session.alive():
                raise ClusterError(
                    f"{name} exited while waiting for {what}; {paths.logs / name}.log ends: {_log_tail(paths, name)}"
                )
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {START_TIMEOUT_S} s waiting for {what}; see {paths.logs}")
        time.sleep(0.5)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # an error page is still an answer
    except OSError:
        return False
    return True


_NODES_SNIPPET = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while sum(n["Alive"] for n in ray.nodes()) < want and time.monotonic() < deadline:
    time.sleep(0.5)
alive = sum(n["Alive"] for n in ray.nodes())
print(alive)
sys.exit(0 if alive >= want else 1)
"""


def wait_for_nodes(paths: Paths, record: dict, watched: dict[str, Session]) -> None:
    """Until the head and every worker node have joined (which proves the token works, too)."""
    want = 1 + record["workers"]
    with open(paths.logs / "nodes-probe.log", "w") as log:
        command = [sys.executable, "-c", _NODES_SNIPPET, ray_address(record), str(want), str(START_TIMEOUT_S)]
        probe = subprocess.Popen(command, env=ray_env(paths), stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        wait_until(lambda: probe.poll() is not None, f"{want} Ray nodes", paths, watched)
    finally:
        if probe.poll() is None:
            probe.kill()
        alive = probe.communicate()[0].strip()
    if probe.returncode != 0:
        raise ClusterError(f"the Ray cluster did not reach {want} nodes (alive: {alive or '?'}); see {paths.logs}")


def start(paths: Paths, workers: int, cpus: int, gpus: int, dashboard_port: int | None) -> dict:
    """Start every service, recording each process as it starts."""
    for folder in (paths.state, paths.artifacts, paths.tune, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    private_dir(paths.ray_temp)  # checked by `up` already; `down` may have removed it since
    paths.state.chmod(0o711)  # `postgres` must pass through; nobody else needs to list it
    record = {
        "ray_port": free_port(),
        "pg_port": free_port(),
        "dashboard_port": dashboard_port or free_port(),
        "workers": workers,
        "cpus_per_worker": cpus,
        "gpus_per_worker": gpus,
        "processes": {},
    }
    save_record(paths, record)
    write_token(paths)
    pg_local("start", paths, record["pg_port"])
    head = start_session(
        paths,
        record,
        "ray-head",
        ray_node_command(paths, "ray-head", record),
        {**ray_env(paths), "CUDA_VISIBLE_DEVICES": ""},
    )
    wait_until(lambda: port_open(record["ray_port"]), "the Ray head", paths, {"ray-head": head})
    nodes = {"ray-head": head}
    for index in range(workers):
        name = f"ray-worker-{index + 1}"
        nodes[name] = start_session(
            paths, record, name, ray_node_command(paths, name, record), worker_env(paths, record, index)
        )
    wait_for_nodes(paths, record, nodes)
    dashboard = start_session(
        paths, record, "dashboard", dashboard_command(paths, record), {**os.environ, **storage_env(paths)}
    )
    wait_until(
        lambda: http_answers(f"http://127.0.0.1:{record['dashboard_port']}/"),
        "the dashboard",
        paths,
        {"dashboard": dashboard},
    )
    return record
