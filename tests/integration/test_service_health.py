"""A service that tells the truth about itself: ``/health`` is ok, degraded or failing with
the reasons and the same as gauges; an unwritable store gets a 503 JSON the caller retries
on, never a silent loss; an asset with stale telemetry is held alike in the setpoints, the
plan and the flexibility envelope. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from api.app import create_app
from controllers.mpc import MpcController
from controllers.safety import HELD_STALE
from tests.service_kit import T0, dr_body, headers, make_keys, make_runtime, small_site
from vpp.accounting import flexibility
from vpp.runtime.planner import InlinePlanner
from vpp.store import repo


def _gauge(text: str, name: str) -> float:
    (line,) = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[-1])


def _read_only_engine(db_url: str):
    """The same database, every write refused by the database itself: SQLite opened with
    ``mode=ro``; PostgreSQL with ``default_transaction_read_only=on`` on each connection
    (the test's role is a superuser here, so REVOKE and a read-only file would not bite)."""
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[1]
        return create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            ),
            poolclass=NullPool,
        )
    return create_engine(
        db_url.replace("-csearch_path", "-cdefault_transaction_read_only%3Don%20-csearch_path"),
        poolclass=NullPool,
    )


def test_health_ok_after_a_cycle_and_the_same_as_gauges(db_url):
    rt = make_runtime(db_url)
    with TestClient(create_app(rt.settings, rt)) as client:
        before = client.get("/health")
        rt.run_cycle()
        r = client.get("/health")
        text = client.get("/metrics").text
    rt.engine.dispose()
    assert before.status_code == 503 and before.json()["status"] == "failing"
    assert before.json()["ready"] is False and before.json()["live"] is True
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok", body["reasons"]
    assert body["database"] == "ok" and body["database_writable"] is True
    assert body["problems"] == [] and body["held"] == {}
    assert body["last_cycle"]["interval_s"] == 900.0
    assert _gauge(text, "vpp_health_status") == 0.0
    assert _gauge(text, "vpp_db_writable") == 1.0
    assert 0.0 <= _gauge(text, "vpp_last_cycle_age_seconds") < 60.0


def test_an_unwritable_store_fails_health_and_write_routes_answer_503_to_retry(db_url):
    """The database refuses writes for real: /health says failing (503) with the reason and
    the gauges agree; a utility's DR call and an operator's telemetry get a 503 JSON with
    ``Retry-After`` saying nothing was stored; reads still work; nothing half-stored."""
    rt = make_runtime(db_url)
    keys = {r: headers(k) for r, k in make_keys(rt.engine).items()}
    rt.run_cycle()
    writable = rt.engine
    rt.engine = _read_only_engine(db_url)
    try:
        with TestClient(create_app(rt.settings, rt)) as client:
            r = client.get("/health")
            text = client.get("/metrics").text
            dr = client.post("/api/v1/dr-events", json=dr_body("RO-1"), headers=keys["utility"])
            tm = client.post(
                "/api/v1/telemetry",
                json={"readings": [{"asset": "B02-bess", "ts": T0.isoformat(), "p_kw": 1.0}]},
                headers=keys["operator"],
            )
            sp = client.get("/api/v1/setpoints", headers=keys["viewer"])
        with pytest.raises(Exception):  # noqa: B017 - the cycle cannot store its plan
            rt.run_cycle(at=T0 + timedelta(minutes=15))
    finally:
        rt.engine.dispose()
        rt.engine = writable
    body = r.json()
    assert r.status_code == 503 and body["status"] == "failing" and body["ready"] is False
    assert body["database_writable"] is False and body["database"].startswith("not writable")
    assert any(p.startswith("database not writable") for p in body["problems"])
    assert _gauge(text, "vpp_health_status") == 2.0 and _gauge(text, "vpp_db_writable") == 0.0
    for resp in (dr, tm):
        assert resp.status_code == 503, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert int(resp.headers["Retry-After"]) > 0
        assert resp.json()["error"] == "store_unavailable" and resp.json()["stored"] is False
    assert sp.status_code == 200  # the devices' setpoints are still served from memory
    with writable.connect() as conn:
        assert repo.get_dr(conn, "RO-1") is None
    assert rt.errors.since(0)["cycle"]["count"] == 1
    writable.dispose()


class _DeadPlanner(InlinePlanner):
    alive = False  # a worker process that died since the last cycle


class _FlakyDriver:
    """The static driver whose ``apply`` fails once."""

    def __init__(self, inner):
        self.inner, self.failed = inner, False

    def read_state(self, at):
        return self.inner.read_state(at)

    def apply(self, at, setpoints_kw):
        if not self.failed:
            self.failed = True
            raise ConnectionError("Modbus gateway 10.0.0.7:502 timed out")
        self.inner.apply(at, setpoints_kw)


def test_health_degraded_for_a_dead_planner_driver_and_settlement_errors(tmp_path):
    from vpp.drivers.static import StaticDriver
    from vpp.park.profiles import ProfileForecaster

    site = small_site()
    url = f"sqlite:///{tmp_path / 'vpp.sqlite3'}"
    planner = _DeadPlanner(site, ProfileForecaster(), MpcController())
    rt = make_runtime(url, site=site, driver=_FlakyDriver(StaticDriver(site)), planner=planner)
    with pytest.raises(ConnectionError):
        rt.run_cycle()  # stored, then the driver fails
    rt._settle_dr = lambda at: 1 / 0  # a settlement bug: the cycle still stands
    assert rt.run_cycle(at=T0 + timedelta(minutes=15)) is not None
    with TestClient(create_app(rt.settings, rt)) as client:
        r = client.get("/health")
        text = client.get("/metrics").text
    rt.engine.dispose()
    body = r.json()
    assert r.status_code == 200 and body["status"] == "degraded" and body["ready"] is True
    reasons = " | ".join(body["problems"])
    assert "planner process is not running" in reasons
    assert "1 driver error(s)" in reasons and "Modbus gateway" in reasons
    assert "1 settlement error(s)" in reasons and "ZeroDivisionError" in reasons
    assert {x["level"] for x in body["reasons"]} == {"degraded"}
    assert _gauge(text, "vpp_health_status") == 1.0 and _gauge(text, "vpp_planner_alive") == 0.0
    assert 'vpp_recent_errors{kind="driver"} 1.0' in text


def test_a_stale_battery_is_held_alike_in_setpoints_plan_and_envelope(db_url):
    """B02-bess reported once, longer ago than ``stale_after_s``: the setpoints hold it at
    0 kW, the plan's schedule is what it is sent (0 kW, energy kept) with the reason, the
    park's planned import counts that, the envelope leaves its flexibility out, and /health
    names it."""
    rt = make_runtime(db_url)
    keys = {r: headers(k) for r, k in make_keys(rt.engine).items()}
    old = T0 - timedelta(seconds=rt.settings.stale_after_s + 600)
    rt.ingest([{"asset": "B02-bess", "ts": old, "p_kw": 0.0, "e_kwh": 500.0}])
    cur = rt.run_cycle()
    with TestClient(create_app(rt.settings, rt)) as client:
        sp = client.get("/api/v1/setpoints", params={"asset": "B02-bess"}, headers=keys["viewer"])
        plan = client.get("/api/v1/plan", headers=keys["viewer"]).json()
        env = client.get("/api/v1/flexibility", headers=keys["viewer"]).json()
        health = client.get("/health").json()
    rt.engine.dispose()
    (row,) = sp.json()["setpoints"]
    assert row["p_kw"] == 0.0 and row["held"] == HELD_STALE
    bess = plan["assets"]["B02-bess"]
    assert bess["held"] == HELD_STALE and plan["held"] == {"B02-bess": HELD_STALE}
    assert bess["p_kw"] == [0.0] * len(plan["times"])
    assert len(set(bess["e_kwh"])) == 1  # held at 0 kW: its energy stays
    assert plan["assets"]["B04-ups-bess"]["held"] is None
    total = np.sum([a["p_kw"] for a in plan["assets"].values() if a["kind"] != "pedf"], axis=0)
    np.testing.assert_allclose(plan["p_net_kw"], total, atol=2e-3)
    assert env["held"] == {"B02-bess": HELD_STALE}
    # The envelope without the hold would count the battery's range; with it, not. (The
    # problem itself plans the held battery idle, controllers.safety.pinned: the free
    # envelope is taken on the problem with the battery's own limits.)
    unheld = dataclasses.replace(
        cur.plan, assets={n: dataclasses.replace(s, held="") for n, s in cur.plan.assets.items()}
    )
    spec = next(b for b in rt.site.assets.batteries if b.name == "B02-bess")
    pinned = next(b for b in cur.problem.batteries if b.spec.name == "B02-bess")
    assert pinned.spec.p_charge_max_kw == 0 and pinned.spec.p_discharge_max_kw == 0
    unpinned = dataclasses.replace(
        cur.problem,
        batteries=tuple(
            dataclasses.replace(b, spec=spec) if b.spec.name == "B02-bess" else b
            for b in cur.problem.batteries
        ),
    )
    free = flexibility.envelope(unpinned, unheld)
    width = np.subtract(env["p_import_max_kw"], env["p_import_min_kw"])
    free_width = free.p_import_max_kw - free.p_import_min_kw
    assert (free_width - width)[0] > 0.5 * min(spec.p_charge_max_kw, spec.p_discharge_max_kw)
    assert health["held"] == {"B02-bess": HELD_STALE} and health["status"] == "degraded"
    assert any("held at a safe setpoint: B02-bess" in p for p in health["problems"])
