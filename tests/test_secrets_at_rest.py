"""No trust authentication in the repository, no password on a command line when
scripts/pg_local.sh makes the study role, and no password at rest after a PostgreSQL study even
when a user puts it in the storage URL (the docs say not to; PGPASSFILE is the way)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.postgres import PostgresServer, free_port
from tests.smoke_study import QUICK, REPO, run_cli
from tests.test_compose import server_binaries

# spelled in pieces so that this file does not match itself
TRUST_OVER_TCP = re.compile("--auth" + r"(?:-host)?=" + "trust")


def test_no_trust_authentication_in_the_repository() -> None:
    """grep for initdb's trust option (all, or TCP) finds nothing, nor a pg_hba line trusting
    a TCP login. (The compose
    image's entrypoint trusts only the container's own unix socket, `--auth-local`, as the
    official postgres image does; docs/cluster.md says so.)"""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    found = [
        name
        for name in files
        if name and (REPO / name).is_file() and TRUST_OVER_TCP.search((REPO / name).read_text(errors="replace"))
    ]
    assert found == []
    hba = re.compile(r"^\s*host\S*\s.*\btrust\s*$", re.MULTILINE)  # a pg_hba.conf line trusting TCP
    assert not [
        name
        for name in files
        if name and (REPO / name).is_file() and hba.search((REPO / name).read_text(errors="replace"))
    ]


def test_pg_local_gives_the_password_to_psql_on_no_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ps` shows every process's command line to every user. pg_local.sh start, on a fresh
    folder, sets the role's password through psql's standard input: a psql in front of the real
    one (PG_BINDIR) records its arguments, and the password is in none of them, nor in the
    server's log; the role logs in with it."""
    real = server_binaries()
    bindir = Path(tempfile.mkdtemp(prefix="sidae-pgbin-"))  # /tmp, not tmp_path: `postgres` runs psql
    argv_log = bindir / "psql.argv"
    for tool in real.iterdir():
        if tool.name != "psql":
            (bindir / tool.name).symlink_to(tool)
    (bindir / "psql").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>{argv_log}\nexec {real / "psql"} "$@"\n')
    (bindir / "psql").chmod(0o755)
    argv_log.touch(mode=0o666)
    argv_log.chmod(0o666)
    bindir.chmod(0o755)
    monkeypatch.setenv("PG_BINDIR", str(bindir))
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="sidae-pg-")), free_port())
    try:
        server.start()
        password = server.password_file.read_text().strip().rsplit(":", 1)[1]
        calls = argv_log.read_text()
        assert "CREATE DATABASE sidae" in calls  # pg_local.sh ran the recording psql
        assert password not in calls
        assert "-f -" in calls  # the role's password went in there
        assert password not in (server.datadir / "postgres.log").read_text()
        with psycopg.connect(host="127.0.0.1", port=server.port, dbname="sidae", user="sidae", password=password):
            pass
    finally:
        stopped = server._script("stop")
        if stopped.returncode == 0:
            shutil.rmtree(server.datadir, ignore_errors=True)
        shutil.rmtree(bindir, ignore_errors=True)
    assert stopped.returncode == 0, f"pg_local.sh stop failed; the server in {server.datadir} may run on"


@pytest.mark.slow
def test_a_password_in_the_storage_url_is_nowhere_at_rest(
    tmp_path: Path, mnist_dir: Path, postgres_server: PostgresServer
) -> None:
    """The whole tree the study writes (run, artifact and Ray experiment folders, and Ray's
    session folder with its logs), what it prints, and what it stores in the database."""
    password = postgres_server.password_file.read_text().strip().rsplit(":", 1)[1]
    url = postgres_server.url.replace("sidae@", f"sidae:{password}@")
    env = {k: v for k, v in os.environ.items() if k not in ("PGPASSFILE", "PGPASSWORD")}  # only the URL has it
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths must fit
    try:
        done = run_cli(
            "--study",
            "w-sweep",
            *QUICK,
            "--w-grid",
            "0.5",
            "--seeds",
            "0",
            "--storage",
            url,
            "--name",
            "w-sweep-url-password",
            "--artifact-dir",
            str(tmp_path / "artifacts"),
            cwd=tmp_path,
            data_dir=mnist_dir,
            env={**env, "RAY_TMPDIR": str(ray_tmp)},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert password not in done.stdout + done.stderr
        written = [p for folder in (tmp_path, ray_tmp) for p in folder.rglob("*") if p.is_file()]
        assert any(p.suffix == ".pkl" for p in written)  # Ray's pickled experiment state is among them
        assert any("session_" in str(p) for p in written)  # and Ray's session logs
        assert [p for p in written if password.encode() in p.read_bytes()] == []
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    # and not in the database: every row of every table (attributes, notes, the stored command, leases)
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        rows = [row for table in tables.sorted_tables for row in connection.execute(sa.select(table))]
    engine.dispose()
    assert any("w-sweep-url-password" in repr(row) for row in rows)
    assert not [row for row in rows if password in repr(row)]
