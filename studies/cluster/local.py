"""The docker-compose cluster as real processes on this machine: `python docker/local_cluster.py up`.

The topology of docker/docker-compose.yml without Docker: a PostgreSQL server
(scripts/pg_local.sh), a Ray head that runs no trials (`--num-cpus 0`), N Ray worker nodes
(`ray start`) and optuna-dashboard on the same database and artifact folder. The tests run the
cluster path through it; on a bare multi-GPU machine --gpus-per-worker gives every worker node
GPUs of its own.

    python docker/local_cluster.py up --workers 2           # start; prints the addresses
    python docker/local_cluster.py submit --study w-sweep   # studies/run.py against it
    python docker/local_cluster.py status
    python docker/local_cluster.py down                     # stop; keeps database and artifacts

State folder (--state-dir, default docker/.cluster): cluster.json (ports, process ids),
ray-token, postgres/, artifacts/, tune/, logs/. As root PostgreSQL runs as `postgres`, which
must be able to enter the folder: do not put it under a folder private to root.

Ray token authentication stays on: `up` writes a fresh random token to <state>/ray-token (mode
0600, never printed) and every Ray process of the cluster, the driver included, reads it through
RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH. It matters: Ray cannot be bound to loopback (it
replaces 127.0.0.1 with the machine's routable address and its servers listen on every
interface), so the token is what keeps other machines out. PostgreSQL (password
authentication, scram-sha-256; the password only in <state>/postgres/pgpass, read through
PGPASSFILE) and the dashboard listen on 127.0.0.1 only.

Stopping (studies/cluster/sessions.py): every Ray node (`ray start --block`) and the dashboard
start in a session of their own; `down` sends SIGTERM to those sessions (a blocking `ray start`
then stops its node's processes), SIGKILL to whatever is left after a grace period, and stops
PostgreSQL with pg_local.sh. Never `ray stop`: it kills every Ray process of the user on the machine, other
people's clusters included. A failed `up` runs `down` before it reports the error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
from dataclasses import dataclass
from pathlib import Path

from studies.cluster.sessions import Session, start_time, stop_sessions  # beside this script

REPO = Path(__file__).resolve().parents[2]  # the checkout: scripts/pg_local.sh, docker/
DEFAULT_STATE_DIR = REPO / "docker" / ".cluster"
BIN = Path(sys.executable).parent  # ray and optuna-dashboard of this environment
START_TIMEOUT_S = 120  # a loaded 2-core machine takes tens of seconds to bring Ray nodes up


class ClusterError(RuntimeError):
    """Something the user must fix or look at; one line."""


@dataclass(frozen=True)
class Paths:
    """Everything a cluster keeps, under its state folder."""

    state: Path

    @property
    def record(self) -> Path:
        return self.state / "cluster.json"

    @property
    def token(self) -> Path:
        return self.state / "ray-token"

    @property
    def postgres(self) -> Path:
        return self.state / "postgres"

    @property
    def artifacts(self) -> Path:
        return self.state / "artifacts"

    @property
    def tune(self) -> Path:
        return self.state / "tune"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def ray_temp(self) -> Path:
        # Ray's unix sockets live under its temp dir and must fit in 107 bytes, which a deep
        # state folder would break; a short /tmp folder named after the state folder does not.
        digest = hashlib.sha256(str(self.state).encode()).hexdigest()[:8]
        return Path("/tmp") / f"sidae-ray-{digest}"


# --- the record of a cluster -------------------------------------------------------------------


def load_record(paths: Paths) -> dict | None:
    try:
        return json.loads(paths.record.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ClusterError(f"cannot read {paths.record}: {error}") from None


def save_record(paths: Paths, record: dict) -> None:
    """Atomically: `down` must be able to read it whatever moment `up` dies at."""
    partial = paths.record.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(paths.record)


def sessions_of(record: dict) -> dict[str, Session]:
    return {name: Session(pid, start) for name, (pid, start) in record.get("processes", {}).items()}


def storage_url(record: dict) -> str:
    # No password: pg_local.sh keeps it in a libpq password file that clients find through
    # PGPASSFILE (storage_env), so no URL, command line or log carries it.
    return f"postgresql+psycopg://sidae@127.0.0.1:{record['pg_port']}/sidae"


def storage_env(paths: Paths) -> dict[str, str]:
    """What a client of the cluster's PostgreSQL needs: the password file's path."""
    return {"PGPASSFILE": str(paths.postgres / "pgpass")}


def ray_address(record: dict) -> str:
    return f"127.0.0.1:{record['ray_port']}"


def ray_env(paths: Paths) -> dict[str, str]:
    """The environment of every Ray process of the cluster, drivers included."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(paths.token), RAY_USAGE_STATS_ENABLED="0",
               **storage_env(paths))  # drivers write to the database
    return env


# --- starting ----------------------------------------------------------------------------------


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
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=REPO)
    session = Session(process.pid, start_time(process.pid) or 0)
    record["processes"][name] = [session.pid, session.start]
    save_record(paths, record)
    return session


def ray_node_command(paths: Paths, name: str, record: dict) -> list[str]:
    # A temp dir per node, as on separate machines: nodes starting at once in one temp dir race
    # for the same socket names and one of them never registers.
    short = name.replace("ray-worker-", "w").replace("ray-", "")  # head, w1, w2: socket paths stay short
    common = ["--block", "--temp-dir", str(paths.ray_temp / short), "--disable-usage-stats",
              "--dashboard-agent-listen-port", "0"]  # 0: a free port; the default 52365 clashes between nodes
    if name == "ray-head":
        return [tool("ray"), "start", "--head", "--port", str(record["ray_port"]), "--num-cpus", "0", "--num-gpus", "0",
                "--include-dashboard", "false", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(free_port()),
                *common]
    return [tool("ray"), "start", "--address", ray_address(record), "--num-cpus", str(record["cpus_per_worker"]),
            "--num-gpus", str(record["gpus_per_worker"]), *common]


def worker_env(paths: Paths, record: dict, index: int) -> dict[str, str]:
    """Worker node `index` sees exactly its own GPUs (none when --gpus-per-worker is 0)."""
    per = record["gpus_per_worker"]
    return {**ray_env(paths), "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(index * per, (index + 1) * per))}


def dashboard_command(paths: Paths, record: dict) -> list[str]:
    return [sys.executable, "-m", "studies.cli.dashboard", "--storage", storage_url(record), "--port",
            str(record["dashboard_port"]), "--artifact-dir", str(paths.artifacts)]


def _pg_local(action: str, paths: Paths, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "scripts" / "pg_local.sh"), action, str(paths.postgres), str(port)],
                          capture_output=True, text=True, timeout=180)


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
                raise ClusterError(f"{name} exited while waiting for {what}; {paths.logs / name}.log ends: "
                                   f"{_log_tail(paths, name)}")
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
    for folder in (paths.state, paths.artifacts, paths.tune, paths.logs, paths.ray_temp):
        folder.mkdir(parents=True, exist_ok=True)
    paths.state.chmod(0o711)  # `postgres` must pass through; nobody else needs to list it
    record = {"ray_port": free_port(), "pg_port": free_port(), "dashboard_port": dashboard_port or free_port(),
              "workers": workers, "cpus_per_worker": cpus, "gpus_per_worker": gpus, "processes": {}}
    save_record(paths, record)
    write_token(paths)
    pg_local("start", paths, record["pg_port"])
    head = start_session(paths, record, "ray-head", ray_node_command(paths, "ray-head", record),
                         {**ray_env(paths), "CUDA_VISIBLE_DEVICES": ""})
    wait_until(lambda: port_open(record["ray_port"]), "the Ray head", paths, {"ray-head": head})
    nodes = {"ray-head": head}
    for index in range(workers):
        name = f"ray-worker-{index + 1}"
        nodes[name] = start_session(paths, record, name, ray_node_command(paths, name, record),
                                    worker_env(paths, record, index))
    wait_for_nodes(paths, record, nodes)
    dashboard = start_session(paths, record, "dashboard", dashboard_command(paths, record),
                              {**os.environ, **storage_env(paths)})
    wait_until(lambda: http_answers(f"http://127.0.0.1:{record['dashboard_port']}/"), "the dashboard", paths,
               {"dashboard": dashboard})
    return record


# --- commands ----------------------------------------------------------------------------------


def is_up(paths: Paths, record: dict) -> bool:
    sessions = sessions_of(record)
    expected = 2 + record["workers"]  # head, workers, dashboard
    return (len(sessions) == expected and all(s.alive() for s in sessions.values())
            and pg_running(paths, record["pg_port"]))


def up(paths: Paths, workers: int, cpus: int, gpus: int, dashboard_port: int | None) -> int:
    record = load_record(paths)
    if record is not None and is_up(paths, record):
        print(f"already up, with {record['workers']} worker node(s); run `down` first to change it")
        print(describe(paths, record))
        return 0
    down(paths)  # what a crashed or half-stopped earlier cluster left
    try:
        record = start(paths, workers, cpus, gpus, dashboard_port)
    except BaseException as error:  # KeyboardInterrupt too: a half-started cluster must not outlive `up`
        try:
            down(paths)
        except ClusterError as cleanup:
            raise ClusterError(f"{error}; cleaning up then failed too: {cleanup}") from error
        raise
    print(describe(paths, record))
    return 0


def down(paths: Paths) -> int:
    record = load_record(paths)
    if record is None:
        return 0
    survivors = stop_sessions(list(sessions_of(record).values()))
    if survivors:
        raise ClusterError(f"processes {survivors} survived SIGKILL; the record stays in {paths.record}")
    if (paths.postgres / "data" / "PG_VERSION").is_file():
        pg_local("stop", paths, record["pg_port"])
    shutil.rmtree(paths.ray_temp, ignore_errors=True)
    paths.token.unlink(missing_ok=True)
    paths.record.unlink()
    return 0


def describe(paths: Paths, record: dict) -> str:
    gpus = record["gpus_per_worker"]
    auth = f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={paths.token} PGPASSFILE={paths.postgres / 'pgpass'}"
    by_hand = (f"{auth} python studies/run.py --address {ray_address(record)} --storage {storage_url(record)} "
               f"--artifact-dir {paths.artifacts} --ray-dir {paths.tune} --study ...")
    return "\n".join([
        f"ray head   {ray_address(record)} ({record['workers']} worker node(s), {record['cpus_per_worker']} CPU "
        f"and {gpus} GPU each; token in {paths.token})",
        f"storage    {storage_url(record)}",
        f"artifacts  {paths.artifacts}",
        f"dashboard  http://127.0.0.1:{record['dashboard_port']}/",
        f"submit     python docker/local_cluster.py{_state_flag(paths)} submit --study w-sweep --budget smoke",
        f"by hand    {by_hand}",
        f"stop       python docker/local_cluster.py{_state_flag(paths)} down",
    ])


def _state_flag(paths: Paths) -> str:
    return "" if paths.state == DEFAULT_STATE_DIR else f" --state-dir {paths.state}"


def status(paths: Paths) -> int:
    record = load_record(paths)
    if record is None:
        print("not up")
        return 3
    for name, session in sessions_of(record).items():
        print(f"{name:<14} pid {session.pid}: {'running' if session.alive() else 'gone'}")
    print(f"{'postgres':<14} {'running' if pg_running(paths, record['pg_port']) else 'gone'}")
    print(describe(paths, record))
    return 0 if is_up(paths, record) else 1


def submit(paths: Paths, study_args: list[str]) -> int:
    """Replace this process with studies/run.py, pointed at the cluster; the arguments follow ours,
    so an explicit --storage or --address given here wins."""
    record = load_record(paths)
    if record is None:
        raise ClusterError(f"no cluster in {paths.state}; run `python docker/local_cluster.py up` first")
    command = [sys.executable, "-m", "studies.cli.run", "--address", ray_address(record),
               "--storage", storage_url(record), "--artifact-dir", str(paths.artifacts), "--ray-dir", str(paths.tune),
               *study_args]
    print("submit:", " ".join(command[1:]), file=sys.stderr, flush=True)
    os.execve(command[0], command, ray_env(paths))
    return 0  # not reached


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python docker/local_cluster.py", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help=f"the cluster's folder (default {DEFAULT_STATE_DIR.relative_to(REPO)})")
    actions = p.add_subparsers(dest="action", required=True)
    start_ = actions.add_parser("up", help="start the cluster (or report the running one)", allow_abbrev=False)
    start_.add_argument("--workers", type=int, default=2, help="Ray worker nodes (default 2)")
    start_.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs each worker node offers (default 1)")
    start_.add_argument("--gpus-per-worker", type=int, default=0,
                        help="GPUs each worker node owns: node i gets devices i*N..i*N+N-1 (default 0)")
    start_.add_argument("--dashboard-port", type=int, help="optuna-dashboard's port (default: a free one)")
    actions.add_parser("down", help="stop every process of the cluster; keeps database and artifacts")
    actions.add_parser("status", help="which processes run; exit 0 when all do")
    actions.add_parser("submit", help="run studies/run.py on the cluster; other arguments go to it")
    return p


def main(argv: list[str] | None = None) -> int:
    args, rest = parser().parse_known_args(argv)
    if args.action != "submit" and rest:
        parser().error(f"unrecognized arguments: {' '.join(rest)}")
    paths = Paths(args.state_dir.expanduser().resolve())
    try:
        if args.action == "up":
            if args.workers < 1 or args.cpus_per_worker < 1 or args.gpus_per_worker < 0:
                raise ClusterError("--workers and --cpus-per-worker must be >= 1, --gpus-per-worker >= 0")
            return up(paths, args.workers, args.cpus_per_worker, args.gpus_per_worker, args.dashboard_port)
        if args.action == "down":
            return down(paths)
        if args.action == "status":
            return status(paths)
        return submit(paths, rest[1:] if rest[:1] == ["--"] else rest)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
