"""A real PostgreSQL server for the tests, started by scripts/pg_local.sh.

One server per test session, in a fresh temporary folder on a free port, stopped at the end
of the session whatever happened. Missing server binaries FAIL the tests that need it (never
skip): CI must run the PostgreSQL tests for real. `PostgresServer.stop/start/stopped` let a
test take the same server down and bring it back (a restart in the middle of a study).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pg_local.sh"
SCRIPT_TIMEOUT_S = 120


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; tiny race until the server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    """A pg_local.sh server: data in `datadir`, listening on 127.0.0.1:`port`."""

    datadir: Path
    port: int

    @property
    def url(self) -> str:
        """No password: clients read it from the server's libpq password file (PGPASSFILE)."""
        return f"postgresql+psycopg://sidae@127.0.0.1:{self.port}/sidae"

    @property
    def password_file(self) -> Path:
        return self.datadir / "pgpass"

    def start(self) -> None:
        """Start (initdb on first use); returns once the server accepts connections."""
        self._run("start")

    def stop(self) -> None:
        """Fast shutdown: returns once no server process is left."""
        self._run("stop")

    def is_running(self) -> bool:
        return self._script("status").returncode == 0

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block and up again after it, even if the block fails."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def _run(self, action: str) -> None:
        result = self._script(action)
        if result.returncode != 0:
            pytest.fail(
                f"scripts/pg_local.sh {action} failed ({result.returncode}): {result.stderr.strip()}", pytrace=False
            )

    def _script(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), action, str(self.datadir), str(self.port)],
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh server for the session. Its folder is under the system temp dir, not pytest's
    tmp_path: as root the server runs as `postgres`, which cannot enter pytest's 0700 folders."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="sidae-pg-")), free_port())
    try:
        server.start()
        # every client of the session (this process, the study drivers it starts) finds the
        # generated password here, never in a URL or on a command line
        os.environ["PGPASSFILE"] = str(server.password_file)
        yield server
    finally:
        # Not server.stop(): its failure would hide the error of a start that failed.
        stopped = server._script("stop")
        if stopped.returncode == 0:
            shutil.rmtree(server.datadir, ignore_errors=True)
    if stopped.returncode != 0:
        pytest.fail(
            f"scripts/pg_local.sh stop failed; the server in {server.datadir} may still run: {stopped.stderr.strip()}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """`postgresql+psycopg://sidae@127.0.0.1:PORT/sidae` of the session's server."""
    return postgres_server.url
