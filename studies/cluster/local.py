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

State folder (--state-dir, default docker/.cluster; studies/cluster/state.py): cluster.json
(ports, process ids), ray-token, postgres/, artifacts/, tune/, logs/. As root PostgreSQL runs
as `postgres`, which must be able to enter the folder: do not put it under a folder private to
root.

Ray token authentication stays on: `up` writes a fresh random token to <state>/ray-token (mode
0600, never printed) and every Ray process of the cluster, the driver included, reads it through
RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH. It matters: Ray cannot be bound to loopback (it
replaces 127.0.0.1 with the machine's routable address and its servers listen on every
interface), so the token is what keeps other machines out. PostgreSQL (password
authentication, scram-sha-256; the password only in <state>/postgres/pgpass, read through
PGPASSFILE) and the dashboard listen on 127.0.0.1 only.

Starting (studies/cluster/launch.py) waits for each service to answer. Stopping
(studies/cluster/sessions.py): every Ray node (`ray start --block`) and the dashboard
start in a session of their own; `down` sends SIGTERM to those sessions (a blocking `ray start`
then stops its node's processes), SIGKILL to whatever is left after a grace period, and stops
PostgreSQL with pg_local.sh. Never `ray stop`: it kills every Ray process of the user on the machine, other
people's clusters included. A failed `up` runs `down` before it reports the error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from sidae.errors import UserError, exit_on, print_warnings
from studies.cluster.launch import pg_local, pg_running, start
from studies.cluster.sessions import stop_sessions
from studies.cluster.state import (
    DEFAULT_STATE_DIR,
    REPO,
    ClusterError,
    Paths,
    load_record,
    private_dir,
    ray_address,
    ray_env,
    sessions_of,
    storage_url,
)


class UsageError(UserError, ValueError):
    """Bad command-line input, found before anything starts."""


def is_up(paths: Paths, record: dict) -> bool:
    sessions = sessions_of(record)
    expected = 2 + record["workers"]  # head, workers, dashboard
    return (
        len(sessions) == expected and all(s.alive() for s in sessions.values()) and pg_running(paths, record["pg_port"])
    )


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
    """What is up and how to use it; every command as it runs from a fresh shell in any folder
    (this interpreter and the script by path)."""
    gpus = record["gpus_per_worker"]
    auth = f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={paths.token} PGPASSFILE={paths.postgres / 'pgpass'}"
    by_hand = (
        f"{auth} {sys.executable} -m studies.cli.run --address {ray_address(record)} --storage {storage_url(record)} "
        f"--artifact-dir {paths.artifacts} --ray-dir {paths.tune} --study ..."
    )
    cluster = f"{sys.executable} {REPO / 'docker' / 'local_cluster.py'}{_state_flag(paths)}"
    return "\n".join(
        [
            f"ray head   {ray_address(record)} ({record['workers']} worker node(s), {record['cpus_per_worker']} CPU "
            f"and {gpus} GPU each; token in {paths.token})",
            f"storage    {storage_url(record)}",
            f"artifacts  {paths.artifacts}",
            f"dashboard  http://127.0.0.1:{record['dashboard_port']}/",
            f"submit     {cluster} submit --study w-sweep --budget smoke",
            f"by hand    {by_hand}",
            f"stop       {cluster} down",
        ]
    )


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
    command = [
        sys.executable,
        "-m",
        "studies.cli.run",
        "--address",
        ray_address(record),
        "--storage",
        storage_url(record),
        "--artifact-dir",
        str(paths.artifacts),
        "--ray-dir",
        str(paths.tune),
        *study_args,
    ]
    print("submit:", " ".join(command[1:]), file=sys.stderr, flush=True)
    os.execve(command[0], command, ray_env(paths))
    return 0  # not reached


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python docker/local_cluster.py",
        description=__doc__,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"the cluster's folder (default {DEFAULT_STATE_DIR.relative_to(REPO)})",
    )
    actions = p.add_subparsers(dest="action", required=True)
    start_ = actions.add_parser("up", help="start the cluster (or report the running one)", allow_abbrev=False)
    start_.add_argument("--workers", type=int, default=2, help="Ray worker nodes, >= 1 (default 2)")
    start_.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs each worker node offers, >= 1 (default 1)")
    start_.add_argument(
        "--gpus-per-worker",
        type=int,
        default=0,
        help="GPUs each worker node owns, >= 0: node i gets devices i*N..i*N+N-1 (default 0)",
    )
    start_.add_argument(
        "--dashboard-port", type=int, help="optuna-dashboard's port, 0 to 65535 (default, or 0: a free one)"
    )
    actions.add_parser("down", help="stop every process of the cluster; keeps database and artifacts")
    actions.add_parser("status", help="which processes run; exit 0 when all do")
    actions.add_parser("submit", help="run studies/run.py on the cluster; other arguments go to it")
    return p


def check_up(args: argparse.Namespace, paths: Paths) -> None:
    """UsageError for `up` options it would fail on only after PostgreSQL and Ray have started (a
    dashboard port out of range, a Ray temp folder that is not ours alone), or with a traceback
    (a state folder it cannot write to)."""
    for flag, value, least in (
        ("--workers", args.workers, 1),
        ("--cpus-per-worker", args.cpus_per_worker, 1),
        ("--gpus-per-worker", args.gpus_per_worker, 0),
    ):
        if value < least:
            raise UsageError(f"{flag} must be >= {least}, got {value}")
    if args.dashboard_port is not None and not 0 <= args.dashboard_port <= 65535:
        raise UsageError(f"--dashboard-port must be 0 to 65535, got {args.dashboard_port}")
    try:
        paths.state.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=paths.state):
            pass  # `up` writes its record, the token and PostgreSQL's files here
    except OSError as error:
        raise UsageError(
            f"--state-dir {paths.state} cannot be written to ({error.strerror or error}); choose another folder"
        ) from None
    try:
        private_dir(paths.ray_temp)  # a name anyone can predict: someone else's folder or link there is refused
    except ClusterError as error:
        raise UsageError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    print_warnings()
    args, rest = parser().parse_known_args(argv)
    if args.action != "submit" and rest:
        parser().error(f"unrecognized arguments: {' '.join(rest)}")
    paths = Paths(args.state_dir.expanduser().resolve())
    try:
        if args.action == "up":
            check_up(args, paths)
            return up(paths, args.workers, args.cpus_per_worker, args.gpus_per_worker, args.dashboard_port)
        if args.action == "down":
            return down(paths)
        if args.action == "status":
            return status(paths)
        return submit(paths, rest[1:] if rest[:1] == ["--"] else rest)
    except UserError as error:
        return exit_on(error)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
