"""What ``/health`` and the health gauges say about one service: ``ok``, ``degraded`` or
``failing``, with every reason.

``failing`` (HTTP 503): the service cannot do its job and a supervisor should act: the
database unreachable or not writable (a write probe), shutting down, no cycle yet, or the
last completed cycle more than two intervals old. ``degraded`` (200): it runs, with
something to look at: a late cycle, a fallback, the last cycle failed, the planner process
down, settlement or driver errors in the last intervals, assets held for stale telemetry,
DR events skipped, days of the horizon outside the tariff or the calendar. ``ok``: none.

The write probe is an insert into the audit log rolled back, done at most every
``every_s`` seconds (the answer is cached), so ``/health`` and ``/metrics`` stay fast.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from vpp.park.coverage import calendar_problem, tariff_problem
from vpp.store import repo, tables
from vpp.store.db import ping

OK, DEGRADED, FAILING = "ok", "degraded", "failing"
LEVEL = {OK: 0, DEGRADED: 1, FAILING: 2}  # the value of the ``vpp_health_status`` gauge
RECENT_INTERVALS = 4  # settlement and driver errors count for this many intervals
LATE_GRACE_S = 60.0  # a cycle later than one interval and this: degraded
STALE_GRACE_S = 120.0  # older than two intervals and this: failing
PROBE_TIMEOUT_MS = 2000  # the write probe waits this long for a lock held by a cycle


def probe_write(engine: Engine) -> str | None:
    """Write to the store and roll back: None when it could, else why not. A lock held by
    another writer (SQLite ``database is locked``, a lock time-out) is ``"busy"``: the
    store is writable, someone else is writing."""
    try:
        with engine.connect() as conn:  # autobegin: everything below is rolled back
            sqlite = conn.dialect.name == "sqlite"
            before = None
            if sqlite:  # do not wait the engine's 30 s behind a cycle's transaction
                before = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {PROBE_TIMEOUT_MS}")
            else:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {PROBE_TIMEOUT_MS}")
            try:
                conn.execute(
                    tables.audit_log.insert().values(
                        key_name="health-probe",
                        role="none",
                        method="PROBE",
                        path="/health",
                        status_code=0,
                        at=datetime.now(UTC),
                    )
                )
            finally:
                conn.rollback()
                if before is not None:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(before)}")
                    conn.rollback()
        return None
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if "database is locked" in text or "LockNotAvailable" in text:
            return "busy"
        return text


class WriteProbe:
    """:func:`probe_write`, at most every ``every_s`` seconds (thread-safe, cached).

    Parameters
    ----------
    engine : Engine
        The store.
    every_s : float
        Seconds an answer is reused.
    """

    def __init__(self, engine: Engine, every_s: float = 10.0):
        self.engine, self.every_s = engine, every_s
        self._lock = threading.Lock()
        self._at: float | None = None
        self._error: str | None = None

    def check(self) -> str | None:
        """None when the store took the last probe's write, else why not."""
        with self._lock:
            now = time.monotonic()
            if self._at is not None and now - self._at < self.every_s:
                return self._error
            error = probe_write(self.engine)
            if error != "busy":  # busy: writable; keep what the last probe found
                self._error = error
            self._at = now
            return self._error


class RecentErrors:
    """The service's latest errors by kind (``cycle``, ``driver``, ``settlement``), with
    their wall-clock time; thread-safe, the last ``keep`` only."""

    def __init__(self, keep: int = 100):
        self._items: deque[tuple[float, str, str]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def note(self, kind: str, text: str) -> None:
        with self._lock:
            self._items.append((time.time(), kind, text))

    def since(self, t0_s: float) -> dict[str, dict[str, Any]]:
        """Per kind: how many since ``t0_s`` (Unix seconds) and the latest text."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            items = [x for x in self._items if x[0] >= t0_s]
        for at, kind, text in items:
            d = out.setdefault(kind, {"count": 0})
            d.update(count=d["count"] + 1, last=text, last_at=at)
        return out


@dataclass
class Health:
    """The verdict and the body of ``/health``."""

    status: str = OK
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    body: dict[str, Any] = field(default_factory=dict)

    def add(self, level: str, text: str) -> None:
        self.reasons.append((level, text))
        if LEVEL[level] > LEVEL[self.status]:
            self.status = level


def assess(rt, probe: WriteProbe) -> Health:
    """Every check on the runtime ``rt`` (:class:`vpp.runtime.service.Runtime`); sets the
    health gauges of ``rt.metrics``. ``body`` keeps the keys of the first ``/health``
    (``live``, ``ready``, ``status``, ``problems``, ``database``, ``last_cycle``,
    ``dr_events_skipped``, ``days_uncovered``) and adds ``reasons`` (level and text),
    ``database_writable``, ``planner``, ``errors_recent``, ``held``, ``stale_assets`` and
    ``lease`` (the writer lease: a lost one is failing) and ``prices`` (the plan's series cover)."""
    h = Health()
    interval_s = rt.clock.real_seconds(timedelta(minutes=rt.site.dispatch.step_minutes))
    db_error = ping(rt.engine)
    write_error = probe.check() if db_error is None else db_error
    if db_error is not None:
        h.add(FAILING, "database unreachable")
    elif write_error is not None:
        h.add(FAILING, f"database not writable: {write_error}")
    if rt.closing:
        h.add(FAILING, "shutting down")
    b = h.body
    b.update(live=True, closing=rt.closing, last_error=rt.last_error, last_cycle=None)
    b["database"] = (
        f"unreachable: {db_error}"
        if db_error is not None
        else ("ok" if write_error is None else f"not writable: {write_error}")
    )
    b["database_writable"] = write_error is None
    age_s = _last_cycle(rt, h, interval_s) if db_error is None else None
    if db_error is not None:
        h.add(FAILING, "no cycle known: the database is unreachable")
    _lease(rt, h)
    _planner(rt, h)
    _errors(rt, h, interval_s)
    _held(rt, h)
    devices = _devices(rt, h)
    skipped = dict(getattr(rt, "skipped_dr_events", {}))
    b["dr_events_skipped"] = skipped
    for k, v in skipped.items():
        h.add(DEGRADED, f"DR event {k} is skipped (not planned, not settled): {v}")
    # Where the plan in force took its prices and factors (series cover, TOU fallbacks): shown,
    # not a degradation: a day-ahead series is short of a day's horizon until it clears.
    cur = rt.current
    b["prices"] = list(cur.problem.notes) if cur is not None and cur.problem is not None else []
    b["days_uncovered"] = days_uncovered(rt)
    for line in b["days_uncovered"]:
        h.add(DEGRADED, line)
    b["ready"] = h.status != FAILING
    b["status"] = h.status
    b["problems"] = [text for _, text in h.reasons]
    b["reasons"] = [{"level": lv, "text": text} for lv, text in h.reasons]
    b["checked_at"] = time.time()
    _gauges(rt, h, age_s, devices)
    return h


def _last_cycle(rt, h: Health, interval_s: float) -> float | None:
    """The stored last cycle against the interval; its age (s) or None without one."""
    with rt.engine.connect() as conn:
        last = repo.last_cycle(conn)
    if last is None:
        h.add(FAILING, "no cycle has run yet")
        return None
    age_s = (datetime.now(UTC) - last["finished_at"]).total_seconds()
    h.body["last_cycle"] = {
        "id": last["id"],
        "at": last["at"].isoformat(),
        "age_s": round(age_s, 1),
        "interval_s": round(interval_s, 1),
        "controller": last["controller"],
        "status": last["solver_status"],
        "fallback": last["fallback"],
    }
    if age_s > 2 * interval_s + STALE_GRACE_S:
        h.add(FAILING, f"last cycle is {age_s:.0f} s old (interval {interval_s:.0f} s)")
    elif age_s > interval_s + LATE_GRACE_S:
        h.add(DEGRADED, f"last cycle is late: {age_s:.0f} s old (interval {interval_s:.0f} s)")
    if last["fallback"]:
        h.add(DEGRADED, f"last cycle used the {last['fallback']} fallback")
    if rt.last_error:
        h.add(DEGRADED, f"the last cycle failed: {rt.last_error}")
    return age_s


def _lease(rt, h: Health) -> None:
    """One writer per database: a service that lost its lease stores and sends nothing."""
    lease = getattr(rt, "lease", None)
    if lease is None:
        return
    st = lease.status()
    h.body["lease"] = st
    if st["state"] == "lost" or (st["state"] == "not_taken" and not rt.closing):
        h.add(FAILING, f"writer lease {st['detail']}")


def _planner(rt, h: Health) -> None:
    alive = getattr(rt.planner, "alive", None)  # None: the planner runs in this process
    h.body["planner"] = {"process": alive is not None, "alive": alive}
    if alive is False:
        h.add(DEGRADED, "planner process is not running (the next cycle starts one)")


def _errors(rt, h: Health, interval_s: float) -> None:
    errors = getattr(rt, "errors", None)
    recent = errors.since(time.time() - RECENT_INTERVALS * interval_s) if errors else {}
    h.body["errors_recent"] = recent
    for kind in ("driver", "settlement"):
        if kind in recent:
            n, last = recent[kind]["count"], recent[kind]["last"]
            h.add(DEGRADED, f"{n} {kind} error(s) in the last {RECENT_INTERVALS} intervals: {last}")


def _held(rt, h: Health) -> None:
    """Assets held at their safe setpoint by the plan in force, and those whose telemetry
    is stale now (held from the next cycle)."""
    cur = rt.current
    held = {n: s.held for n, s in cur.plan.assets.items() if s.held} if cur else {}
    stale = sorted(rt.stale_assets(rt.clock.now()))
    h.body["held"], h.body["stale_assets"] = held, stale
    if held:
        h.add(DEGRADED, f"{len(held)} asset(s) held at a safe setpoint: {', '.join(held)}")
    newly = [a for a in stale if a not in held]
    if newly:
        h.add(DEGRADED, f"telemetry stale, held from the next cycle: {', '.join(newly)}")


def _devices(rt, h: Health) -> dict | None:
    """Field devices (a driver with ``health()``, :class:`vpp.drivers.field.FieldDriver`):
    each device in fault (not answering, offline, a command refused) is held safe and
    named; each charger whose station exceeds its charging profile too. ``devices`` in the
    body is the summary (every device: ``GET /api/v1/devices``); returns the full report."""
    report = getattr(rt.driver, "health", None)
    if not callable(report):
        return None
    d = report()
    h.body["devices"] = {k: v for k, v in d.items() if k != "devices"} | {
        "count": len(d["devices"])
    }
    faults = d.get("faults", {})
    if faults:
        lines = [f"{a} ({d['devices'][a]['where']}): {why}" for a, why in faults.items()]
        h.add(DEGRADED, f"{len(faults)} field device(s) held safe: " + "; ".join(lines[:20]))
    for a, x in d.get("noncompliant", {}).items():
        h.add(
            DEGRADED,
            f"charger {a} (station {x['station']}) exceeds its charging profile (metered "
            f"{x['metered_kw']:.1f} kW, limit {x['limit_kw']:.1f} kW): planned at its real draw",
        )
    mqtt = d.get("mqtt")
    if mqtt is not None and not mqtt["connected"]:
        h.add(DEGRADED, f"MQTT broker {mqtt['broker']} not connected: {mqtt['last_error']}")
    return d


def days_uncovered(rt) -> list[str]:
    """The tariff's validity or the holiday calendar ends inside the horizon the service
    plans now: it goes on planning (a service runs for months), and says so here."""
    zone = ZoneInfo(rt.site.location.tz)
    now = rt.clock.now().astimezone(zone)
    d = rt.site.dispatch
    last = now + timedelta(minutes=d.step_minutes * d.horizon_steps)
    found = (
        tariff_problem(rt.site, now.date(), last.date()),
        calendar_problem(rt.site, now.date(), last.date()),
    )
    return [x for x in found if x is not None]


def _gauges(rt, h: Health, age_s: float | None, devices: dict | None = None) -> None:
    m = rt.metrics
    m.health_status.set(LEVEL[h.status])
    m.db_writable.set(1.0 if h.body["database_writable"] else 0.0)
    m.last_cycle_age_s.set(age_s if age_s is not None else float("nan"))
    alive = h.body["planner"]["alive"]
    m.planner_alive.set(float("nan") if alive is None else float(alive))
    for level in (DEGRADED, FAILING):
        m.health_reasons.labels(level).set(sum(1 for lv, _ in h.reasons if lv == level))
    for kind in ("cycle", "driver", "settlement"):
        m.recent_errors.labels(kind).set(h.body["errors_recent"].get(kind, {}).get("count", 0))
    dev = devices
    if dev is not None:
        for asset, x in dev["devices"].items():
            m.device_fault.labels(asset, x["protocol"]).set(0.0 if x["state"] == "ok" else 1.0)
        for asset, x in dev["devices"].items():
            if x["protocol"] == "ocpp":
                bad = 1.0 if asset in dev["noncompliant"] else 0.0
                m.ocpp_noncompliant.labels(asset, x["where"].split("/")[0]).set(bad)
        if dev.get("fanout_s") is not None:
            m.field_fanout_s.set(dev["fanout_s"])
