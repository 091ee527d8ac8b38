"""A lease row per study, in the study's own database: who drives it, since when.

One table of our own beside Optuna's (`sidae_study_leases`), because the Optuna storage API has
no compare-and-set: here taking a lease is ONE statement (an upsert whose update only happens
when the row is free, released, stale, or still held by the lease the taker saw dead), so of
two drivers starting at the same instant exactly one wins. Staleness is judged by the
database's own clock (`renewed_at` is stamped by the server, compared with the server's now),
never by comparing the clocks of two hosts.

The `host` column holds more than the host name: "NAME boot=ID pidns=NS start=TICKS" (the boot,
the PID namespace and the process's start time, studies.service.lease), so that a dead or reused
pid is told apart from a live one without a new column; a row written before holds only NAME,
and reads back with those three unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

_METADATA = sa.MetaData()
LEASES = sa.Table(
    "sidae_study_leases",
    _METADATA,
    sa.Column("study_name", sa.String(512), primary_key=True),
    sa.Column("lease_id", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("renewed_at", sa.Float, nullable=False),  # seconds since the epoch, the database's clock
    sa.Column("released", sa.Boolean, nullable=False),
)


@dataclass(frozen=True)
class Process:
    """Who holds a lease. A pid names a process only within one PID namespace of one boot, and
    only until it is reused: `started` (clock ticks after boot) tells a reused pid apart."""

    host: str
    pid: int
    boot_id: str | None = None
    pid_ns: str | None = None
    started: int | None = None

    def host_column(self) -> str:
        """NAME, then what is known of boot, namespace and start, within the column's 255."""
        known = {"boot": self.boot_id, "pidns": self.pid_ns, "start": self.started}
        suffix = "".join(f" {key}={value}" for key, value in known.items() if value is not None)
        return self.host[: 255 - len(suffix)] + suffix

    @classmethod
    def from_columns(cls, host_column: str, pid: int) -> Process:
        host, *rest = host_column.split(" ")
        known = dict(part.split("=", 1) for part in rest if "=" in part)
        started = known.get("start", "")
        return cls(host, pid, known.get("boot"), known.get("pidns"), int(started) if started.isdigit() else None)


@dataclass(frozen=True)
class LeaseRecord:
    """A study's lease as its row says: which lease, held by which process, how fresh."""

    lease_id: str
    process: Process
    age_s: float  # seconds since its last renewal, by the database's clock
    released: bool

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def pid(self) -> int:
        return self.process.pid


def _db_now(engine: Engine) -> sa.ColumnElement[float]:
    """The database server's clock in seconds (SQLite's is the clock of the host that opens the
    file: every SQLite driver of a study runs there)."""
    if engine.dialect.name == "postgresql":
        return sa.func.extract("epoch", sa.func.clock_timestamp())
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


class LeaseTable:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            _METADATA.create_all(engine, checkfirst=True)
        except SQLAlchemyError:
            # two drivers creating the table at once: PostgreSQL refuses the second CREATE even
            # with IF NOT EXISTS; the table is there then, which is all we need
            if not sa.inspect(engine).has_table(LEASES.name):
                raise

    def current(self, study_name: str) -> LeaseRecord | None:
        query = sa.select(
            LEASES.c.lease_id,
            LEASES.c.host,
            LEASES.c.pid,
            (_db_now(self.engine) - LEASES.c.renewed_at),
            LEASES.c.released,
        ).where(LEASES.c.study_name == study_name)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return LeaseRecord(row[0], Process.from_columns(row[1], int(row[2])), float(row[3]), bool(row[4]))

    def try_take(
        self, study_name: str, lease_id: str, process: Process, stale_s: float, dead_lease_id: str | None = None
    ) -> bool:
        """Take the lease if it is free, released, older than stale_s, or still `dead_lease_id`
        (a holder the caller saw dead); True if this call took it. Atomic."""
        now = _db_now(self.engine)
        insert = (postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert)(LEASES)
        row = {
            "study_name": study_name,
            "lease_id": lease_id,
            "host": process.host_column(),
            "pid": process.pid,
            "released": False,
        }
        free = LEASES.c.released | (LEASES.c.renewed_at < now - stale_s)
        if dead_lease_id is not None:
            free = free | (LEASES.c.lease_id == dead_lease_id)
        statement = insert.values(**row, renewed_at=now).on_conflict_do_update(
            index_elements=[LEASES.c.study_name], set_={**row, "renewed_at": now}, where=free
        )
        with self.engine.begin() as connection:
            connection.execute(statement)
        held = self.current(study_name)
        return held is not None and held.lease_id == lease_id

    def renew(self, study_name: str, lease_id: str) -> bool:
        """Stamp the lease with the database's now if `lease_id` still holds it."""
        return self._update(study_name, lease_id, renewed_at=_db_now(self.engine))

    def release(self, study_name: str, lease_id: str) -> bool:
        return self._update(study_name, lease_id, released=True)

    def _update(self, study_name: str, lease_id: str, **values: object) -> bool:
        statement = (
            LEASES.update()
            .where(LEASES.c.study_name == study_name, LEASES.c.lease_id == lease_id, ~LEASES.c.released)
            .values(**values)
        )
        with self.engine.begin() as connection:
            return connection.execute(statement).rowcount == 1
