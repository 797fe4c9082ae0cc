"""Storage on SQLite and PostgreSQL: migrations, one transaction per cycle, round trips."""

from __future__ import annotations

from datetime import UTC, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.service_kit import T0, make_runtime
from vpp.store import repo, tables
from vpp.store.db import make_engine, migrate


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_migrations_apply_twice_and_create_every_table(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # idempotent: a restart migrates again
    for table in tables.metadata.sorted_tables:
        assert _count(engine, table) == 0, table.name


def test_cycle_is_stored_whole_and_the_plan_round_trips(db_url):
    rt = make_runtime(db_url)
    cur = rt.run_cycle()
    e = rt.engine
    assert _count(e, tables.cycle_runs) == 1
    assert _count(e, tables.plans) == 1
    assert _count(e, tables.setpoints) == len(cur.setpoints_kw)
    assert _count(e, tables.forecasts) > 0
    with e.connect() as conn:
        row = repo.latest_plan(conn)
        run = repo.cycle(conn, row["cycle_id"])
    back = repo.plan_from_json(row["body"])
    np.testing.assert_allclose(back.p_net_kw, cur.plan.p_net_kw, atol=1e-5)
    assert back.horizon == cur.plan.horizon
    assert run["at"] == T0 and run["at"].tzinfo is not None
    assert set(run["timings_s"]) >= {"state_s", "forecast_s", "dispatch_s", "store_s"}
    rt.clock.set(T0 + timedelta(minutes=15))
    assert rt.run_cycle().version == 2  # plans are versioned, one per cycle


def test_a_cycle_killed_before_commit_leaves_nothing(db_url):
    rt = make_runtime(db_url)
    rt.run_cycle()
    rec_counts = {t.name: _count(rt.engine, t) for t in tables.metadata.sorted_tables}
    saved = repo.save_cycle

    def crash(conn, rec):
        saved(conn, rec)  # everything written, then the process "dies" before commit
        raise KeyboardInterrupt("killed mid-cycle")

    repo.save_cycle = crash
    try:
        rt.clock.set(T0 + timedelta(minutes=15))
        with pytest.raises(KeyboardInterrupt):
            rt.run_cycle()
    finally:
        repo.save_cycle = saved
    after = {t.name: _count(rt.engine, t) for t in tables.metadata.sorted_tables}
    for name in ("cycle_runs", "plans", "setpoints", "forecasts"):
        assert after[name] == rec_counts[name], name
    assert rt.current.version == 1  # the runtime still holds the last stored plan


def test_telemetry_ingest_and_latest_reading(db_url):
    rt = make_runtime(db_url)
    rows = [
        {"asset": "B02-bess", "ts": T0 + timedelta(minutes=m), "p_kw": float(m), "e_kwh": 900.0}
        for m in range(30)
    ]
    rt.clock.set(T0 + timedelta(minutes=30))  # readings from the service's future are refused
    assert rt.ingest(rows) == 30
    with rt.engine.connect() as conn:
        last = repo.last_readings(conn)
        got = repo.telemetry_between(conn, T0, T0 + timedelta(minutes=10), "B02-bess")
    assert last["B02-bess"]["ts"] == T0 + timedelta(minutes=29)
    assert last["B02-bess"]["ts"].utcoffset() == timedelta(0)
    assert [r["p_kw"] for r in got] == [float(m) for m in range(10)]
    assert got[0]["ts"].astimezone(UTC) == T0.astimezone(UTC)


def test_dr_lifecycle_is_logged(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        repo.insert_dr(conn, "E1", "announced", {"event_id": "E1"}, "utility-a")
        v = repo.update_dr(conn, "E1", "confirmed", {"event_id": "E1"}, "operator-b", "ok")
    with engine.connect() as conn:
        hist = repo.dr_history(conn, "E1")
        row = repo.get_dr(conn, "E1")
    assert v == 2 and row["version"] == 2 and row["status"] == "confirmed"
    assert [(h["status"], h["actor"]) for h in hist] == [
        ("announced", "utility-a"),
        ("confirmed", "operator-b"),
    ]


def test_an_ev_session_comes_back_whole(db_url):
    """Every field the plan uses survives the store: power limit, target, V2G, priority."""
    from vpp.park.model import EvSession, GiveWay

    engine = make_engine(db_url)
    migrate(engine)
    full = EvSession(
        "van-7", "B05-DC-01", T0, T0 + timedelta(hours=8), 120.0,
        p_max_kw=50.0, e_delivered_kwh=12.5, target_e_kwh=60.0,
        target_time=T0 + timedelta(hours=3), e_dischargeable_kwh=20.0, give_way=GiveWay.LAST,
    )  # fmt: skip
    plain = EvSession("car-1", "B01-EV-01", T0, T0 + timedelta(hours=9), 20.0)
    with engine.begin() as conn:
        repo.upsert_ev_sessions(conn, [full, plain])
    with engine.connect() as conn:
        back = {s.session_id: s for s in repo.open_ev_sessions(conn, T0)}
    assert back == {"van-7": full, "car-1": plain}
    assert back["van-7"].target_time.tzinfo is not None
