"""Repository functions: what the runtime and the API read and write, table by table.

Each function takes a SQLAlchemy ``Connection`` so the caller decides the transaction (a
cycle writes everything in one). Rows come back as plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update

from controllers.problem import AssetSchedule, DispatchResult, Relaxation
from vpp.accounting.dr_baseline import Settlement
from vpp.park.model import EvSession, GiveWay, Horizon
from vpp.store import tables as t
from vpp.store.codec import EncodedJson


def _rows(result) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


# ------------------------------------------------------------------------------------------
# Telemetry
# ------------------------------------------------------------------------------------------
def ingest_telemetry(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert readings ``{asset, ts, p_kw, e_kwh, source}`` in one batch; returns the count."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy_telemetry(conn, rows)
    if conn.dialect.name == "sqlite":
        return _executemany_sqlite(conn, rows)
    conn.execute(insert(t.telemetry), list(rows))
    return len(rows)


def _executemany_sqlite(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """The DB-API's executemany on one prepared statement: about twice as fast as the ORM
    path for a big batch. Times are stored as UtcDateTime stores them (naive UTC text)."""
    cur = conn.connection.driver_connection.cursor()
    cur.executemany(
        "INSERT INTO telemetry (asset, ts, p_kw, e_kwh, source) VALUES (?, ?, ?, ?, ?)",
        [
            (
                r["asset"],
                _utc_text(r["ts"]),
                r.get("p_kw"),
                r.get("e_kwh"),
                r.get("source", "api"),
            )
            for r in rows
        ],
    )
    cur.close()
    return len(rows)


def _utc_text(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: every stored time must carry a zone")
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy writes it


def _copy_telemetry(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """PostgreSQL COPY: an order of magnitude faster than INSERT for a big batch."""
    raw = conn.connection.driver_connection
    cols = ("asset", "ts", "p_kw", "e_kwh", "source")
    with raw.cursor() as cur, cur.copy(f"COPY telemetry ({', '.join(cols)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(
                (r["asset"], r["ts"], r.get("p_kw"), r.get("e_kwh"), r.get("source", "api"))
            )
    return len(rows)


def telemetry_between(
    conn: Connection, start: datetime, end: datetime, asset: str | None = None, limit: int = 10_000
) -> list[dict[str, Any]]:
    q = select(t.telemetry).where(t.telemetry.c.ts >= start, t.telemetry.c.ts < end)
    if asset is not None:
        q = q.where(t.telemetry.c.asset == asset)
    return _rows(conn.execute(q.order_by(t.telemetry.c.ts).limit(limit)))


def telemetry_after(
    conn: Connection,
    after_id: int,
    since: datetime | None = None,
    assets: Sequence[str] | None = None,
) -> tuple[int, list[str], np.ndarray, np.ndarray]:
    """Readings with a row id above ``after_id`` (and ``ts >= since``, of ``assets``, when
    given): the highest id read, asset names, Unix seconds, kW (NaN when empty)."""
    c = t.telemetry.c
    q = select(c.id, c.asset, c.ts, c.p_kw).where(c.id > after_id)
    if since is not None:
        q = q.where(c.ts >= since)
    if assets is not None:
        q = q.where(c.asset.in_(list(assets)))
    rows = conn.execute(q.order_by(c.id)).all()
    last = rows[-1][0] if rows else after_id
    ts_s = np.array([r[2].timestamp() for r in rows], dtype=float)
    p_kw = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=float)
    return last, [r[1] for r in rows], ts_s, p_kw


def last_readings(conn: Connection) -> dict[str, dict[str, Any]]:
    """The newest reading of every asset (used once at start-up; the runtime caches it)."""
    newest = (
        select(t.telemetry.c.asset, func.max(t.telemetry.c.ts).label("ts"))
        .group_by(t.telemetry.c.asset)
        .subquery()
    )
    q = select(t.telemetry).join(
        newest, (t.telemetry.c.asset == newest.c.asset) & (t.telemetry.c.ts == newest.c.ts)
    )
    return {r["asset"]: r for r in _rows(conn.execute(q))}


# ------------------------------------------------------------------------------------------
# Cycles, plans, forecasts, setpoints
# ------------------------------------------------------------------------------------------
@dataclass
class CycleRecord:
    """Everything one cycle stores, in one transaction."""

    at: datetime
    started_at: datetime
    finished_at: datetime
    trigger: str
    controller: str
    fallback: str | None
    solver: str
    solver_status: str
    objective_cny: float | None
    terms_cny: dict[str, float]
    timings_s: dict[str, float]
    relaxed: list[dict[str, Any]]
    violations: list[str]
    errors: list[str]
    clamps: list[dict[str, Any]]
    stale_assets: list[str]
    plan: dict[str, Any] | EncodedJson  # DispatchResult.to_json_dict(), maybe encoded
    plan_horizon: Horizon
    plan_status: str
    forecasts: dict[str, dict[str, list[float] | EncodedJson | None]]
    forecast_source: str
    setpoints_kw: dict[str, float]
    clamp_reasons: dict[str, str]
    ev_sessions: tuple[EvSession, ...] = ()
    dr_expected: dict[str, dict[str, Any]] | None = None


def save_cycle(conn: Connection, rec: CycleRecord) -> int:
    """Store one cycle (run, plan, forecasts, setpoints, EV sessions, DR expectations)."""
    cycle_id = conn.execute(
        insert(t.cycle_runs).values(
            at=rec.at,
            started_at=rec.started_at,
            finished_at=rec.finished_at,
            trigger=rec.trigger,
            controller=rec.controller,
            fallback=rec.fallback,
            solver=rec.solver,
            solver_status=rec.solver_status,
            objective_cny=rec.objective_cny,
            terms_cny=rec.terms_cny,
            timings_s=rec.timings_s,
            relaxed=rec.relaxed,
            violations=rec.violations,
            errors=rec.errors,
            clamps=rec.clamps,
            stale_assets=rec.stale_assets,
        )
    ).inserted_primary_key[0]
    version = (conn.execute(select(func.max(t.plans.c.version))).scalar() or 0) + 1
    h = rec.plan_horizon
    step_minutes = h.step.total_seconds() / 60
    conn.execute(
        insert(t.plans).values(
            cycle_id=cycle_id,
            version=version,
            horizon_start=h.start,
            step_minutes=step_minutes,
            n=h.n,
            controller=rec.controller,
            status=rec.plan_status,
            body=rec.plan,
        )
    )
    if rec.forecasts:
        conn.execute(
            insert(t.forecasts),
            [
                {
                    "cycle_id": cycle_id,
                    "horizon_start": h.start,
                    "step_minutes": step_minutes,
                    "source": rec.forecast_source,
                    "asset": asset,
                    "p50_kw": q["p50"],
                    "p10_kw": q.get("p10"),
                    "p90_kw": q.get("p90"),
                }
                for asset, q in rec.forecasts.items()
            ],
        )
    if rec.setpoints_kw:
        conn.execute(
            insert(t.setpoints),
            [
                {
                    "cycle_id": cycle_id,
                    "at": rec.at,
                    "asset": a,
                    "p_kw": p,
                    "clamp_reason": rec.clamp_reasons.get(a),
                }
                for a, p in rec.setpoints_kw.items()
            ],
        )
    upsert_ev_sessions(conn, rec.ev_sessions)
    for event_id, expected in (rec.dr_expected or {}).items():
        conn.execute(
            update(t.dr_events).where(t.dr_events.c.event_id == event_id).values(expected=expected)
        )
    return int(cycle_id)


def set_timings(conn: Connection, cycle_id: int, timings_s: dict[str, float]) -> None:
    conn.execute(
        update(t.cycle_runs).where(t.cycle_runs.c.id == cycle_id).values(timings_s=timings_s)
    )


def latest_plan(conn: Connection) -> dict[str, Any] | None:
    """The newest plan row (with ``cycle_id``, ``version``, ``body``) or None."""
    row = conn.execute(select(t.plans).order_by(t.plans.c.version.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def plan_version(conn: Connection, cycle_id: int) -> int | None:
    """The version of the plan a cycle stored (without reading the plan's body)."""
    q = select(t.plans.c.version).where(t.plans.c.cycle_id == cycle_id)
    return conn.execute(q).scalar()


def setpoints_of(conn: Connection, cycle_id: int) -> list[dict[str, Any]]:
    q = select(t.setpoints).where(t.setpoints.c.cycle_id == cycle_id).order_by(t.setpoints.c.asset)
    return _rows(conn.execute(q))


def forecasts_of(conn: Connection, cycle_id: int) -> list[dict[str, Any]]:
    q = select(t.forecasts).where(t.forecasts.c.cycle_id == cycle_id).order_by(t.forecasts.c.asset)
    return _rows(conn.execute(q))


def cycles(conn: Connection, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    q = select(t.cycle_runs).order_by(t.cycle_runs.c.id.desc()).limit(limit).offset(offset)
    return _rows(conn.execute(q))


def cycle(conn: Connection, cycle_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(t.cycle_runs).where(t.cycle_runs.c.id == cycle_id)).first()
    return dict(row._mapping) if row else None


def last_cycle(conn: Connection) -> dict[str, Any] | None:
    rows = cycles(conn, 1)
    return rows[0] if rows else None


def plan_from_json(doc: dict[str, Any]) -> DispatchResult:
    """Inverse of :meth:`DispatchResult.to_json_dict` (restart recovery)."""

    def arr(v) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=float)

    h = doc["horizon"]
    horizon = Horizon(
        datetime.fromisoformat(h["start"]), timedelta(minutes=h["step_minutes"]), int(h["n"])
    )
    assets = {
        name: AssetSchedule(
            name,
            a["kind"],
            a["bus"],
            arr(a["p_kw"]),
            arr(a["e_kwh"]),
            {k: arr(v) for k, v in a["detail"].items()},
            a.get("held", ""),  # plans stored before holds were recorded have none
        )
        for name, a in doc["assets"].items()
    }
    return DispatchResult(
        controller=doc["controller"],
        status=doc["status"],
        solver=doc["solver"],
        horizon=horizon,
        p_net_kw=arr(doc["p_net_kw"]),
        assets=assets,
        bus_p_kw={b: arr(v) for b, v in doc["bus_p_kw"].items()},
        objective_cny=doc["objective_cny"],
        terms_cny=dict(doc["terms_cny"]),
        relaxed=[
            Relaxation(
                r["constraint"],
                r["asset"],
                tuple(r["steps"]),
                r["amount"],
                r["unit"],
                r.get("reason", ""),  # plans stored before reasons were recorded have none
                r.get("avoidable", True),
            )
            for r in doc["relaxed"]
        ],
        timings_s=dict(doc["timings_s"]),
        messages=list(doc["messages"]),
    )


# ------------------------------------------------------------------------------------------
# EV sessions
# ------------------------------------------------------------------------------------------
def upsert_ev_sessions(conn: Connection, sessions: Iterable[EvSession]) -> None:
    sessions = list(sessions)
    if not sessions:
        return
    ids = [s.session_id for s in sessions]
    conn.execute(delete(t.ev_sessions).where(t.ev_sessions.c.session_id.in_(ids)))
    now = datetime.now(UTC)
    conn.execute(
        insert(t.ev_sessions),
        [
            {
                "session_id": s.session_id,
                "charger": s.charger,
                "arrival": s.arrival,
                "departure": s.departure,
                "e_needed_kwh": s.e_needed_kwh,
                "e_delivered_kwh": s.e_delivered_kwh,
                "updated_at": now,
                "p_max_kw": s.p_max_kw,
                "target_e_kwh": s.target_e_kwh,
                "target_time": s.target_time,
                "e_dischargeable_kwh": s.e_dischargeable_kwh,
                "give_way": None if s.give_way is None else str(s.give_way),
            }
            for s in sessions
        ],
    )


def open_ev_sessions(conn: Connection, at: datetime) -> list[EvSession]:
    q = select(t.ev_sessions).where(t.ev_sessions.c.departure > at)
    return [
        EvSession(
            session_id=r["session_id"],
            charger=r["charger"],
            arrival=r["arrival"],
            departure=r["departure"],
            e_needed_kwh=r["e_needed_kwh"],
            e_delivered_kwh=r["e_delivered_kwh"],
            p_max_kw=r["p_max_kw"],
            target_e_kwh=r["target_e_kwh"],
            target_time=r["target_time"],
            e_dischargeable_kwh=r["e_dischargeable_kwh"] or 0.0,
            give_way=GiveWay(r["give_way"]) if r["give_way"] else None,
        )
        for r in _rows(conn.execute(q.order_by(t.ev_sessions.c.arrival)))
    ]


# ------------------------------------------------------------------------------------------
# Demand response
# ------------------------------------------------------------------------------------------
def insert_dr(conn: Connection, event_id: str, status: str, body: dict, actor: str) -> None:
    now = datetime.now(UTC)
    conn.execute(
        insert(t.dr_events).values(
            event_id=event_id, status=status, body=body, version=1, created_at=now, updated_at=now
        )
    )
    log_dr(conn, event_id, status, actor, "created")


def update_dr(
    conn: Connection, event_id: str, status: str, body: dict, actor: str, note: str
) -> int:
    """Store a new version of the event; returns the new version number."""
    row = get_dr(conn, event_id)
    version = (row["version"] if row else 0) + 1
    conn.execute(
        update(t.dr_events)
        .where(t.dr_events.c.event_id == event_id)
        .values(status=status, body=body, version=version, updated_at=datetime.now(UTC))
    )
    log_dr(conn, event_id, status, actor, note)
    return version


def log_dr(conn: Connection, event_id: str, status: str, actor: str, note: str = "") -> None:
    conn.execute(
        insert(t.dr_event_log).values(
            event_id=event_id, status=status, actor=actor, note=note, at=datetime.now(UTC)
        )
    )


def get_dr(conn: Connection, event_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(t.dr_events).where(t.dr_events.c.event_id == event_id)).first()
    return dict(row._mapping) if row else None


def list_dr(conn: Connection, status: str | None = None) -> list[dict[str, Any]]:
    q = select(t.dr_events).order_by(t.dr_events.c.created_at)
    if status:
        q = q.where(t.dr_events.c.status == status)
    return _rows(conn.execute(q))


def dr_history(conn: Connection, event_id: str) -> list[dict[str, Any]]:
    q = select(t.dr_event_log).where(t.dr_event_log.c.event_id == event_id)
    return _rows(conn.execute(q.order_by(t.dr_event_log.c.id)))


def meter_readings(
    conn: Connection, asset: str, start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Readings of ``asset`` in ``[start, end)``: Unix seconds and kW (NaN when empty)."""
    q = (
        select(t.telemetry.c.ts, t.telemetry.c.p_kw)
        .where(t.telemetry.c.asset == asset, t.telemetry.c.ts >= start, t.telemetry.c.ts < end)
        .order_by(t.telemetry.c.ts)
    )
    rows = conn.execute(q).all()
    ts_s = np.array([r[0].timestamp() for r in rows], dtype=float)
    p_kw = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
    return ts_s, p_kw


def unsettled_dr(conn: Connection) -> list[dict[str, Any]]:
    """Completed DR events without a settlement, oldest first."""
    settled = select(t.dr_settlements.c.event_id)
    q = (
        select(t.dr_events)
        .where(t.dr_events.c.status == "completed", t.dr_events.c.event_id.not_in(settled))
        .order_by(t.dr_events.c.created_at)
    )
    return _rows(conn.execute(q))


def save_settlement(conn: Connection, s: Settlement) -> None:
    """Store an event's settlement (once: a second one for the same event is refused)."""

    def arr(a) -> list[float | None]:
        return [round(float(x), 3) if np.isfinite(x) else None for x in a]

    d, c = s.delivery, s.delivery.compliance
    conn.execute(
        insert(t.dr_settlements).values(
            event_id=s.event_id,
            settled_at=datetime.now(UTC),
            baseline_method=s.method,
            baseline_days=[x.isoformat() for x in s.days_used],
            window_start=s.times[0],
            step_minutes=s.step.total_seconds() / 60,
            baseline_kw=arr(s.baseline_kw),
            realised_kw=arr(s.realised_kw),
            intervals=len(s.times),
            intervals_metered=s.intervals_metered,
            requested_kwh=d.requested_kwh,
            delivered_kwh=d.delivered_kwh,
            baseline_kwh=d.baseline_kwh,
            realised_kwh=d.realised_kwh,
            delivery_ratio=d.ratio,
            effective=d.effective,
            owned=None if s.owned is None else [bool(x) for x in s.owned],
            shared_with=list(s.shared_with),
            cap_kw=None if c is None else c.cap_kw,
            intervals_over_cap=None if c is None else c.intervals_over,
            e_over_cap_kwh=None if c is None else c.e_over_kwh,
            compliant_frac=None if c is None else c.compliant_frac,
            compensation_cny=None if s.compensation is None else s.compensation.total_cny,
            compensation=_compensation_doc(s),
        )
    )


def _compensation_doc(s: Settlement) -> dict[str, Any] | None:
    if s.compensation is None:
        return None
    c, terms = s.compensation, s.terms
    return {
        "subsidy_cny_per_kwh": terms.subsidy_cny_per_kwh,
        "subsidy_cny_per_kw": terms.subsidy_cny_per_kw,
        "nonperformance_cny_per_kwh": terms.nonperformance_cny_per_kwh,
        "terms_source": terms.source,
        "paid_kwh": c.paid_kwh,
        "paid_kw": c.paid_kw,
        "shortfall_kwh": c.shortfall_kwh,
        "subsidy_energy_cny": c.subsidy_energy_cny,
        "subsidy_capacity_cny": c.subsidy_capacity_cny,
        "penalty_cny": c.penalty_cny,
        "total_cny": c.total_cny,
    }


def settlement_of(conn: Connection, event_id: str) -> dict[str, Any] | None:
    q = select(t.dr_settlements).where(t.dr_settlements.c.event_id == event_id)
    row = conn.execute(q).first()
    return dict(row._mapping) if row else None


def settlements(
    conn: Connection, event_ids: Sequence[str] | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Settlements of ``event_ids`` (default: any), the newest first."""
    q = select(t.dr_settlements).order_by(t.dr_settlements.c.settled_at.desc()).limit(limit)
    if event_ids is not None:
        q = q.where(t.dr_settlements.c.event_id.in_(list(event_ids)))
    return _rows(conn.execute(q))


# ------------------------------------------------------------------------------------------
# API keys and the audit log
# ------------------------------------------------------------------------------------------
def insert_key(conn: Connection, name: str, role: str, key_id: str, salt: str, digest: str) -> None:
    conn.execute(
        insert(t.api_keys).values(
            name=name,
            role=role,
            key_id=key_id,
            salt=salt,
            hash=digest,
            created_at=datetime.now(UTC),
            revoked=False,
        )
    )


def key_by_id(conn: Connection, key_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_id == key_id)).first()
    return dict(row._mapping) if row else None


def key_by_name(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(t.api_keys).where(t.api_keys.c.name == name)).first()
    return dict(row._mapping) if row else None


def list_keys(conn: Connection) -> list[dict[str, Any]]:
    q = select(
        t.api_keys.c.name, t.api_keys.c.role, t.api_keys.c.created_at, t.api_keys.c.revoked
    ).order_by(t.api_keys.c.id)
    return _rows(conn.execute(q))


def revoke_key(conn: Connection, name: str) -> bool:
    res = conn.execute(update(t.api_keys).where(t.api_keys.c.name == name).values(revoked=True))
    return res.rowcount > 0


def audit(
    conn: Connection,
    key_name: str,
    role: str,
    method: str,
    path: str,
    status_code: int,
    detail: dict | None = None,
) -> None:
    conn.execute(
        insert(t.audit_log).values(
            at=datetime.now(UTC),
            key_name=key_name,
            role=role,
            method=method,
            path=path,
            status_code=status_code,
            detail=detail,
        )
    )


def audit_entries(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    q = select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
    return _rows(conn.execute(q))
