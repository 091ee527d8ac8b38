"""What a loopback cluster keeps in its state folder, and the addresses its clients derive from it.

The state folder (--state-dir, default docker/.cluster) holds cluster.json (ports, process ids:
the record), ray-token, postgres/, artifacts/, tune/ and logs/. The record is written
atomically, so `down` can read it whatever moment `up` dies at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sidae.errors import UserError
from studies.cluster.sessions import Session

REPO = Path(__file__).resolve().parents[2]  # the checkout: scripts/pg_local.sh, docker/
DEFAULT_STATE_DIR = REPO / "docker" / ".cluster"


class ClusterError(UserError, RuntimeError):
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
        # The name is predictable, so private_dir makes sure the folder is ours alone.
        digest = hashlib.sha256(str(self.state).encode()).hexdigest()[:8]
        return Path("/tmp") / f"sidae-ray-{digest}"


def private_dir(path: Path) -> None:
    """Make `path` a folder of this user's alone (0700), or accept the one there only if it is
    already ours: a real folder, not a symbolic link, owned by us and writable by no one else
    (its mode is then tightened to 0700). Whoever could write there could plant or replace Ray's
    sockets and session files, and Ray makes each node's folder in it world-writable."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "a symbolic link"
    elif not stat.S_ISDIR(info.st_mode):
        problem = "not a folder"
    elif info.st_uid != os.geteuid():
        problem = f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    elif info.st_mode & 0o022:
        problem = f"writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        raise ClusterError(
            f"Ray's temp folder {path} is {problem}; remove it, or choose another --state-dir (the name follows it)"
        )
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)  # the folder just checked, not a swapped-in link
    try:
        os.fchmod(fd, 0o700)  # also what the umask took from a fresh one, or an older `up` made 0755
    finally:
        os.close(fd)


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
    env.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(paths.token), RAY_USAGE_STATS_ENABLED="0", **storage_env(paths)
    )  # drivers write to the database
    return env
