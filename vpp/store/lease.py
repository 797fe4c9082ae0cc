"""The writer lease: one service per database stores cycles and sends setpoints.

The tables hold one park's cycles, so the lease is one row per database (scope
``"dispatch"``) that names its holder (host, pid, when the process first took a lease) and
the park it runs. Each function runs in the caller's transaction, as one compare-and-set
``UPDATE`` (or ``INSERT ... ON CONFLICT DO NOTHING`` for the first holder): atomic on
PostgreSQL (a concurrent ``UPDATE`` of the row waits for the first to commit, then
re-checks its condition on the row it committed) and on SQLite, whose writes are serialised
(the ``UPDATE`` takes the database's write lock for the rest of the transaction). Called
first in the transaction that stores a cycle, :func:`renew` fences it: once another holder
has the row, that transaction stores nothing.

Times are judged on one clock, the database's (PostgreSQL ``clock_timestamp()``; SQLite,
on one host by nature, the host's UTC clock), so two hosts with skewed clocks still agree
on when a lease expires. Tests pass ``now``.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from vpp.store.tables import writer_lease

SCOPE = "dispatch"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a process (``host``, ``pid``, ``started_at``: when it first asked
    for one). Every runtime of one process is the same holder: a process is one writer."""

    host: str
    pid: int
    started_at: datetime

    @property
    def holder_id(self) -> str:
        return f"{self.host}/{self.pid}/{self.started_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"

    def __str__(self) -> str:
        return self.describe()

    def describe(self, zone: ZoneInfo | None = None) -> str:
        """Who it is, its start written in ``zone`` (the park's; default UTC)."""
        started = self.started_at.astimezone(zone or UTC).isoformat(timespec="seconds")
        return f"host {self.host}, pid {self.pid}, started {started}"


@functools.cache
def this_process() -> Holder:
    """The holder that this process is (made on the first call, then the same)."""
    return Holder(socket.gethostname(), os.getpid(), datetime.now(UTC))


@dataclass(frozen=True)
class Lease:
    """The stored lease row."""

    scope: str
    park: str
    holder_id: str
    holder: Holder
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    released_at: datetime | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Lease:
        holder = Holder(row["host"], row["pid"], row["holder_started_at"])
        return cls(
            row["scope"],
            row["park"],
            row["holder_id"],
            holder,
            row["acquired_at"],
            row["heartbeat_at"],
            row["expires_at"],
            row["released_at"],
        )

    def held_by(self, holder: Holder) -> bool:
        return self.holder_id == holder.holder_id

    def describe(self, zone: ZoneInfo | None = None) -> str:
        """The holder and its times, for a message a person acts on (times in ``zone``, the
        park's; default UTC)."""

        def t(x: datetime) -> str:
            return x.astimezone(zone or UTC).isoformat(timespec="seconds")

        who = self.holder.describe(zone)
        if self.released_at is not None:
            return f"park {self.park!r} ({who}), released at {t(self.released_at)}"
        return (
            f"park {self.park!r} ({who}), holding since {t(self.acquired_at)}, last "
            f"heartbeat {t(self.heartbeat_at)}, lease expires at {t(self.expires_at)}"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 (UTC)."""
        iso = lambda x: None if x is None else x.isoformat()  # noqa: E731
        return {
            "park": self.park,
            "host": self.holder.host,
            "pid": self.holder.pid,
            "holder_started_at": iso(self.holder.started_at),
            "acquired_at": iso(self.acquired_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "expires_at": iso(self.expires_at),
            "released_at": iso(self.released_at),
        }


def db_now(conn: Connection) -> datetime:
    """The database's clock (UTC): PostgreSQL's ``clock_timestamp()``, else the host's."""
    if conn.dialect.name == "postgresql":
        return conn.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
    return datetime.now(UTC)


def current(conn: Connection, scope: str = SCOPE) -> Lease | None:
    """The stored lease, or None when no service ever took one."""
    row = conn.execute(select(writer_lease).where(writer_lease.c.scope == scope)).mappings()
    first = row.first()
    return None if first is None else Lease.of(dict(first))


def _values(holder: Holder, park: str, now: datetime, ttl_s: float) -> dict[str, Any]:
    return {
        "park": park,
        "holder_id": holder.holder_id,
        "host": holder.host,
        "pid": holder.pid,
        "holder_started_at": holder.started_at,
        "acquired_at": now,
        "heartbeat_at": now,
        "expires_at": now + timedelta(seconds=ttl_s),
        "released_at": None,
    }


def take(
    conn: Connection,
    holder: Holder,
    park: str,
    ttl_s: float,
    now: datetime | None = None,
    scope: str = SCOPE,
) -> Lease:
    """Take the lease for ``ttl_s`` seconds when it is free, expired, released, already
    ``holder``'s, or held by a process of this host that is no longer running (a restart
    after a crash need not wait for the lease to expire). Returns the stored lease: the
    caller holds it when ``lease.held_by(holder)``, else it names the holder.

    Parameters
    ----------
    conn : Connection
        In the transaction that takes it (committed by the caller).
    holder : Holder
        Who asks.
    park : str
        The holder's park (stored, for the messages).
    ttl_s : float
        Lease length, s: it expires this long after now unless renewed.
    now : datetime, optional
        Default: the database's clock (:func:`db_now`).
    scope : str
        The lease's row.
    """
    now = now or db_now(conn)
    values = _values(holder, park, now, ttl_s)
    t = writer_lease.c
    free = (t.holder_id == holder.holder_id) | (t.expires_at <= now)
    got = conn.execute(update(writer_lease).where(t.scope == scope, free).values(**values))
    if got.rowcount == 0:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        ins = dialect.insert(writer_lease).values(scope=scope, **values)
        conn.execute(ins.on_conflict_do_nothing(index_elements=["scope"]))
    lease = current(conn, scope)
    if lease is not None and not lease.held_by(holder) and holder_gone(lease.holder):
        stale = t.holder_id == lease.holder_id  # still that one's: nobody else came
        conn.execute(update(writer_lease).where(t.scope == scope, stale).values(**values))
        lease = current(conn, scope)
    assert lease is not None  # taken, or inserted by another in the meantime
    return lease


def renew(
    conn: Connection,
    holder: Holder,
    ttl_s: float,
    now: datetime | None = None,
    scope: str = SCOPE,
) -> Lease | None:
    """Extend ``holder``'s lease to ``ttl_s`` seconds from now (also when it had expired
    but nobody took it over: nobody else wrote meanwhile). None when another holder has
    taken it, or it was released: the caller no longer writes. Called first in a
    transaction, it keeps every other holder out until that transaction ends."""
    now = now or db_now(conn)
    t = writer_lease.c
    got = conn.execute(
        update(writer_lease)
        .where(t.scope == scope, t.holder_id == holder.holder_id, t.released_at.is_(None))
        .values(heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s))
    )
    return current(conn, scope) if got.rowcount == 1 else None


def release(
    conn: Connection, holder: Holder, now: datetime | None = None, scope: str = SCOPE
) -> bool:
    """End ``holder``'s lease now (a clean stop); the row stays, naming the last holder.
    False when it was not ``holder``'s."""
    now = now or db_now(conn)
    t = writer_lease.c
    got = conn.execute(
        update(writer_lease)
        .where(t.scope == scope, t.holder_id == holder.holder_id, t.released_at.is_(None))
        .values(expires_at=now, released_at=now)
    )
    return got.rowcount == 1


def holder_gone(holder: Holder) -> bool:
    """True when ``holder`` was a process of this host that no longer runs (its pid is
    free). A pid reused since reads as running: the lease then waits to expire."""
    if holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: running
        return False
    return False
