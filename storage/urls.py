"""Storage URLs -> Optuna storages: the one module that parses URLs and sets engine options.

Two back ends: a SQLite file (the default, one driver on one machine) and PostgreSQL through
psycopg 3 (anything parallel: several processes, a Ray cluster, the dashboard beside a study).
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from storage.errors import StorageError
from storage.resilient import ResilientStorage, driver_error

DEFAULT_SQLITE_NAME = "studies.db"  # in the folder the command runs in, as optuna's examples do

# A writer waits this long for another writer's lock instead of failing at once with
# "database is locked"; Optuna's transactions are milliseconds long, so 30 s only runs out when
# something is wedged.
SQLITE_BUSY_TIMEOUT_S = 30.0
# libpq's connect_timeout: an unreachable server fails in seconds, not after the OS's minutes.
POSTGRES_CONNECT_TIMEOUT_S = 5
# A server that vanished without closing the connection (a host powered off, a NAT or firewall
# that forgot the flow) leaves a study blocked on a socket for the OS's two hours of TCP
# keepalive, or the minutes of retransmission while a write is in flight. libpq's keepalives
# find it dead in about idle + interval * count = 60 s, tcp_user_timeout likewise for
# unacknowledged data; the connection then fails and storage.resilient retries on a new one.
# statement_timeout bounds a statement the server itself holds up (a lock kept by a wedged
# session): Optuna's statements take milliseconds. A value in the URL's query wins.
POSTGRES_CONNECTION_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms
}
POSTGRES_STATEMENT_TIMEOUT_MS = 60_000

_EXPECTED = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_POSTGRES_DRIVERS = ("postgresql", "postgresql+psycopg")


def default_url() -> str:
    """`sqlite:///<current folder>/studies.db`, made absolute now: Ray workers and the dashboard
    may run elsewhere. Not the package's folder: an installed package lives in site-packages."""
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_NAME}"


def redact(url: str) -> str:
    """`url` with its password (in the user part or a `password=` query) replaced by ***.

    Works on the string itself, not on a parse of it: strings that do not parse are exactly
    the ones that end up in error messages, and a password holding '@', ':' or '/' fools a
    parser (SQLAlchemy reads `u:p@ss@h` as password `p`, host `ss@h`). The user part runs to
    the LAST '@' after `scheme://`: anything up to it may be password, and masking a host
    too is better than showing a password's tail. No user part after `scheme:///` (SQLite).
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if sep and at and colon and not rest.startswith("/"):
        url = f"{scheme}://{user}:***@{after}"
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def is_sqlite(url: str) -> bool:
    """True for a SQLite file URL; StorageError for a URL this project cannot use."""
    return parse(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path:
    """The absolute path of a SQLite URL's database file (relative paths are from the cwd)."""
    parsed = parse(url)
    if parsed.get_backend_name() != "sqlite":
        raise StorageError(f"not a SQLite URL: {redact(url)}")
    return Path(parsed.database or "").expanduser().resolve()


def parse(url: str) -> URL:
    """The URL with the driver this project uses (plain `postgresql://` becomes psycopg 3).

    Everything else raises StorageError before anything touches the disk or the network:
    other schemes, strings that are not URLs, and in-memory SQLite, whose studies would vanish
    with the process and which no second process or dashboard could read.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"not a storage URL: {redact(url)!r}; {_EXPECTED}") from None
    if parsed.drivername in _SQLITE_DRIVERS:
        if parsed.database in (None, "", ":memory:"):
            raise StorageError(f"in-memory SQLite is not supported: {redact(url)}; give a file path")
        return parsed
    if parsed.drivername in _POSTGRES_DRIVERS:
        if "@" in (parsed.host or ""):  # u:p@ss@h: the password's tail would reach messages as the host
            raise StorageError(f"a password in a storage URL must write '@' as %40: {redact(url)}")
        return parsed.set(drivername="postgresql+psycopg")
    raise StorageError(f"unsupported storage URL {redact(url)}: scheme {parsed.drivername!r}; {_EXPECTED}")


def make_storage(url: str, *, read_only: bool = False) -> ResilientStorage:
    """An Optuna storage for `url` (an RDBStorage, tables created, connection proven), which
    once open waits out a database restart (storage.resilient).

    RDBStorage's constructor connects at once (it creates the tables and stamps the schema
    version), so a wrong password or a stopped server surfaces here, as a one-line
    StorageError, instead of as a SQLAlchemy traceback in the middle of a study.

    `read_only` (the dashboard, the report) writes nothing, ever: a SQLite file must exist and
    hold Optuna's tables already, and is opened read-only (mode=ro: not switched to WAL, no
    table created, a write refused by SQLite itself); a PostgreSQL session is read-only
    (default_transaction_read_only). Optuna's tables are not created in either.
    """
    parsed = parse(url)
    engine_kwargs: dict[str, Any]
    schema_lock: AbstractContextManager[object] = nullcontext()
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if read_only:
            _check_sqlite_study_file(path, url)
            # a SQLite URI (uri=true): the file opened read-only, never created
            parsed = parsed.set(database=path.as_uri(), query={"mode": "ro", "uri": "true"})
        else:
            _prepare_sqlite_file(path, url)
            # Optuna and sqlite3 must open the same file whatever the cwd or `~` means later.
            parsed = parsed.set(database=str(path))
            schema_lock = _folder_lock(path.parent)
        # pysqlite's `timeout` is sqlite3_busy_timeout: set on every connection the pool opens.
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        failure = "cannot open SQLite database"
    else:
        # pool_pre_ping: a pooled connection that died with a server restart is replaced on
        # checkout, so a long study survives a PostgreSQL restart without user intervention.
        engine_kwargs = {"pool_pre_ping": True, "connect_args": _postgres_connect_args(parsed, read_only)}
        failure = "cannot read the studies in PostgreSQL" if read_only else "cannot reach PostgreSQL"
    # RDBStorage runs str.format on the URL (its {SCHEMA_VERSION} template), so literal braces
    # in a path must be doubled.
    full = parsed.render_as_string(hide_password=False).replace("{", "{{").replace("}", "}}")
    try:
        with schema_lock:
            backend = optuna.storages.RDBStorage(full, engine_kwargs=engine_kwargs, skip_table_creation=read_only)
            return ResilientStorage(backend)
    except ImportError as error:  # psycopg is in the `cluster` extra, not in the base install
        raise StorageError(
            f"PostgreSQL storage needs psycopg, which is not installed ({error.name or error}); "
            "install it with: pip install 'sidae-studies[cluster]'"
        ) from None
    except (SQLAlchemyError, StorageInternalError) as error:  # Optuna wraps some as StorageInternalError
        raise StorageError(f"{failure} at {redact(url)}: {_reason(error, parsed.password)}") from error


# What RDBStorage's constructor reads and, when missing, writes: a reader refuses a file without.
_OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")


def _check_sqlite_study_file(path: Path, url: str) -> None:
    """A read-only opening's file: it exists, is SQLite, and holds a stamped Optuna schema.

    Read through SQLite's own read-only mode (nothing created, the journal mode left alone);
    RDBStorage's constructor then only reads: its table creation is skipped, and its version
    rows, when present, are only read."""
    if not path.is_file():
        raise StorageError(f"no SQLite database at {path}; run a study first or give its --storage")
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            stamped = set(_OPTUNA_TABLES) <= tables and all(
                db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() for table in ("version_info", "alembic_version")
            )
    except sqlite3.Error as error:
        raise StorageError(f"cannot open SQLite database at {redact(url)}: {error}") from error
    if not stamped:
        raise StorageError(f"not a study database (no Optuna tables in it): {path}")


def _postgres_connect_args(parsed: URL, read_only: bool = False) -> dict[str, Any]:
    """libpq parameters for every connection: timeouts and keepalives, unless the URL sets them.

    SQLAlchemy lets connect_args override the URL's query, so a parameter the URL names is left
    out here, and the server settings go after the URL's own `options` (a later -c wins in
    PostgreSQL, so a statement_timeout of the user's is kept by leaving ours out)."""
    defaults = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, **POSTGRES_CONNECTION_OPTIONS}
    args: dict[str, Any] = {key: value for key, value in defaults.items() if key not in parsed.query}
    options = str(parsed.query.get("options", ""))
    if "statement_timeout" not in options:
        options += f" -c statement_timeout={POSTGRES_STATEMENT_TIMEOUT_MS}"
    if read_only:
        options += " -c default_transaction_read_only=on"
    if options != parsed.query.get("options", ""):
        args["options"] = options.strip()
    return args


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Make processes that open the same new SQLite file at once create its tables in turn.

    RDBStorage creates Optuna's tables one by one, each "create if missing", so two processes
    starting on a fresh file race and one fails with "table ... already exists". The lock is
    an flock on the folder, not on the database file: closing any descriptor of that file
    would drop the POSIX locks SQLite holds on it in this process.
    """
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _prepare_sqlite_file(path: Path, url: str) -> None:
    """Create the parent folder and switch the database file to WAL journal mode.

    WAL lets readers (the dashboard, a second study process) run while one process writes;
    the default rollback journal blocks every reader during a write and every writer during a
    read, which is where "database is locked" comes from. WAL is a property of the file and
    persists, so setting it once here, before Optuna's engine touches the file, covers every
    later connection from every process (no per-connection PRAGMA needed).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as connection:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except (OSError, sqlite3.Error) as error:
        raise StorageError(f"cannot open SQLite database at {redact(url)}: {error}") from error
    if mode != "wal":
        raise StorageError(
            f"cannot use SQLite database at {redact(url)}: WAL journal mode refused "
            f"(got {mode!r}); put the file on a local disk"
        )


def _reason(error: Exception, password: str | None) -> str:
    """The driver's own explanation, in one line and without the password.

    psycopg's messages run over several lines and repeat the host and port
    ('connection failed: connection to server at "h", port 1 failed: Connection refused\\n\\tIs
    the server running...'); the part after the last "failed: " is the cause.
    """
    cause = driver_error(error) or error
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else type(cause).__name__
    text = text.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return text.replace(password, "***") if password else text
