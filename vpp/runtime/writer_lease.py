"""One writer per park: the runtime's side of :mod:`vpp.store.lease`.

A second service on the same database refuses to start (:class:`LeaseHeldError`, naming the
holder and when its lease expires) rather than standing by: a standby would serve the API
a plan it did not make and keep a second driver on the same devices, and a supervisor that
restarts the refused service gives the take-over anyway (it starts once the holder has
stopped, crashed on this host, or let its lease expire). A runtime whose lease was taken
over stops storing cycles and sending setpoints for good, logs why once and shows it in
:meth:`WriterLease.status`; it is restarted to write again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine

from vpp.errors import UserError
from vpp.park.model import DEFAULT_TZ
from vpp.store import lease as store
from vpp.store.lease import Holder, Lease

log = logging.getLogger(__name__)

# States of a runtime's lease, as :meth:`WriterLease.status` reports them.
NOT_TAKEN, HELD, LOST, RELEASED = "not_taken", "held", "lost", "released"


class LeaseHeldError(UserError):
    """Another service holds the database's writer lease; the message names it."""


class LeaseLostError(RuntimeError):
    """This runtime's lease was taken over: the transaction that met it stores nothing."""


class WriterLease:
    """The writer lease of one runtime: taken at start, renewed by the heartbeat and by
    every transaction that stores a cycle, released at a clean stop.

    Parameters
    ----------
    engine : Engine
        The runtime's database.
    park : str
        The runtime's park (stored with the lease, named in the messages).
    ttl_s : float
        Lease length, s (wall clock, judged on the database's clock).
    holder : Holder, optional
        Who this runtime is; default: this process (:func:`vpp.store.lease.this_process`).
    """

    def __init__(
        self,
        engine: Engine,
        park: str,
        ttl_s: float,
        holder: Holder | None = None,
        tz: str = DEFAULT_TZ,
    ):
        self.engine, self.park, self.ttl_s = engine, park, ttl_s
        self.zone = ZoneInfo(tz)  # messages write times in the park's zone
        self.holder = holder or store.this_process()
        self.state = NOT_TAKEN
        self.lease: Lease | None = None  # the stored row as last seen
        self.detail = "not taken yet (the runtime has not started)"
        self._mutex = threading.Lock()

    def _iso(self, t) -> str:
        return t.astimezone(self.zone).isoformat(timespec="seconds")

    @property
    def held(self) -> bool:
        return self.state == HELD

    def take(self) -> None:
        """Take the lease (at start); :class:`LeaseHeldError` naming the holder when another
        service has it."""
        with self.engine.begin() as conn:
            lease = store.take(conn, self.holder, self.park, self.ttl_s)
        with self._mutex:
            self.lease = lease
            if lease.held_by(self.holder):
                self.state, self.detail = HELD, f"held until {self._iso(lease.expires_at)}"
                log.info(
                    "writer lease taken (%s), %s", self.holder.describe(self.zone), self.detail
                )
                return
        url = self.engine.url.render_as_string(hide_password=True)
        raise LeaseHeldError(
            f"another service stores cycles and sends setpoints for the database {url}: "
            f"{lease.describe(self.zone)}. One service writes per database: stop that one "
            f"(its lease is released at once), or start this one after its lease expires (it "
            f"renews it "
            f"while it runs; VPP_LEASE_TTL_S sets the length)"
        )

    def renew(self, conn: Connection | None = None) -> bool:
        """Extend the lease (the heartbeat); False once it is lost, released or never
        taken. ``conn``: in that transaction (which it then fences), else one of its own."""
        if self.state != HELD:
            return False
        if conn is None:
            with self.engine.begin() as own:
                lease = store.renew(own, self.holder, self.ttl_s)
        else:
            lease = store.renew(conn, self.holder, self.ttl_s)
        if lease is not None:
            with self._mutex:
                self.lease, self.detail = lease, f"held until {self._iso(lease.expires_at)}"
            return True
        self._lost()
        return False

    def fence(self, conn: Connection) -> None:
        """Renew in ``conn``'s transaction, first thing in it; :class:`LeaseLostError` (which
        rolls it back) when the lease is no longer this runtime's."""
        if not self.renew(conn):
            raise LeaseLostError(self.detail)

    def release(self) -> None:
        """End the lease now (a clean stop), so the next service need not wait."""
        if self.state != HELD:
            return
        try:
            with self.engine.begin() as conn:
                store.release(conn, self.holder)
        except Exception as exc:  # a stop must not fail on it: the lease then expires
            log.warning(
                "writer lease not released (%s: %s): %s", type(exc).__name__, exc, self.detail
            )
            return
        with self._mutex:
            self.state, self.detail = RELEASED, "released at stop"
        log.info("writer lease released")

    def _lost(self) -> None:
        with self.engine.connect() as conn:
            now = store.current(conn)
        with self._mutex:
            if self.state != HELD:
                return
            if now is not None and now.held_by(self.holder) and now.released_at is not None:
                # Released by a stop of this process racing this heartbeat: not a loss.
                self.lease, self.state, self.detail = now, RELEASED, "released at stop"
                return
            self.lease, self.state = now, LOST
            by = "nobody (its row is gone)" if now is None else now.describe(self.zone)
            self.detail = (
                f"lost (not renewed in time, then taken over or released): the lease is "
                f"now {by}. This service no longer stores cycles or sends setpoints; "
                f"restart it to write again once that one stops"
            )
        log.error("writer lease of park %r %s", self.park, self.detail)

    def status(self) -> dict[str, Any]:
        """For ``/health``: ``state`` (``held``, ``lost``, ``released``, ``not_taken``),
        whether this runtime ``writes``, this runtime's ``holder``, the stored lease
        (``lease``: park, host, pid, times; None when no row) and a ``detail`` sentence."""
        with self._mutex:
            return {
                "state": self.state,
                "writes": self.state == HELD,
                "holder": {
                    "host": self.holder.host,
                    "pid": self.holder.pid,
                    "started_at": self.holder.started_at.isoformat(),
                },
                "lease": None if self.lease is None else self.lease.as_dict(),
                "ttl_s": self.ttl_s,
                "detail": self.detail,
            }
