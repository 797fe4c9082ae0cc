"""DR delivery settled by the service once an event's window is over: the park meter data it
stored, a GB/T 37016-style baseline, a row in ``dr_settlements``, the DR event API's
``delivery`` and the Prometheus DR-delivery series; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.service_kit import T0, dr_body, headers, make_keys, make_runtime
from vpp.park.calendar import is_workday
from vpp.store import repo

STEP = timedelta(minutes=15)
WINDOW = (T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))  # 08:30-09:30


def _meter(t, p_kw: float) -> dict:
    return {"asset": "park", "ts": t, "p_kw": p_kw}


def _history(days: int = 16) -> tuple[list[dict], dict]:
    """Park meter readings of the days before T0, 15-minute means (workdays busier the
    nearer they are), and each day's load in the window."""
    rows, window_kw = [], {}
    midnight = T0.replace(hour=0)
    for i in range(days, 0, -1):
        d = midnight - timedelta(days=i)
        kw = 2000.0 - 10 * i if is_workday(d.date()) else 900.0
        window_kw[d.date()] = kw
        rows += [_meter(d + k * STEP, kw) for k in range(96)]
    return rows, window_kw


def test_a_completed_event_is_settled_on_the_stored_meter_data(db_url):
    rt = make_runtime(db_url, stale_after_s=3600)
    rows, window_kw = _history()
    rt.ingest(rows, source="meter")
    body = dr_body("SG-SETTLE", cap_kw=1600.0)
    with rt.engine.begin() as conn:
        repo.insert_dr(conn, "SG-SETTLE", "confirmed", body, "utility")
    rt.run_cycle()
    # The morning before the window and three of its four intervals; the last one is late.
    today = [_meter(T0.replace(hour=0) + k * STEP, 1950.0) for k in range(34)]
    shaved = [_meter(WINDOW[0] + k * STEP, 1600.0) for k in range(3)]
    rt.clock.set(WINDOW[1])  # first: readings from the service's future are refused
    rt.ingest(today + shaved, source="meter")

    rt.run_cycle()
    with rt.engine.connect() as conn:
        assert repo.get_dr(conn, "SG-SETTLE")["status"] == "completed"
        assert repo.settlement_of(conn, "SG-SETTLE") is None  # waits for the last reading

    rt.clock.set(WINDOW[1] + timedelta(hours=1))  # stale_after_s later: settle with 3 of 4
    rt.run_cycle()
    with rt.engine.connect() as conn:
        s = repo.settlement_of(conn, "SG-SETTLE")
    workdays = sorted(d for d in window_kw if is_workday(d))[-10:]
    top5 = sorted(workdays, key=window_kw.get)[-5:]
    base_kw = np.mean([window_kw[d] for d in top5])
    assert s["baseline_method"] == "gbt37016_5of10"
    assert s["baseline_days"] == [d.isoformat() for d in sorted(top5)]
    assert s["intervals"] == 4 and s["intervals_metered"] == 3
    assert s["realised_kw"] == [1600.0, 1600.0, 1600.0, None]
    assert s["delivered_kwh"] == pytest.approx(3 * (base_kw - 1600.0) * 0.25)
    assert s["requested_kwh"] == pytest.approx(3 * (base_kw - 1600.0) * 0.25)  # down to the cap
    assert s["delivery_ratio"] == pytest.approx(1.0) and s["effective"] is True
    assert s["window_start"] == WINDOW[0]

    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        h = headers(keys["viewer"])
        one = client.get("/api/v1/dr-events/SG-SETTLE", headers=h).json()
        listed = client.get("/api/v1/dr-events", headers=h).json()
        metrics = client.get("/metrics").text
    d = one["delivery"]
    assert d["delivered_kwh"] == pytest.approx(s["delivered_kwh"], abs=1e-3)
    assert d["delivery_ratio"] == pytest.approx(1.0) and d["effective"] is True
    assert d["baseline_method"] == "gbt37016_5of10" and d["intervals_metered"] == 3
    assert listed[0]["delivery"] == d
    assert (
        f'vpp_dr_delivered_kwh{{baseline_method="gbt37016_5of10",event_id="SG-SETTLE"}} '
        f"{s['delivered_kwh']}" in metrics
    )
    assert 'vpp_dr_delivery_ratio{event_id="SG-SETTLE"} 1.0' in metrics
    # A cap-only event is settled as compliance: three metered intervals, all at the cap.
    assert s["cap_kw"] == 1600.0 and s["intervals_over_cap"] == 0
    assert s["compliant_frac"] == 1.0 and s["e_over_cap_kwh"] == 0.0
    assert d["compliance"] == {
        "cap_kw": 1600.0,
        "intervals_over_cap": 0,
        "e_over_cap_kwh": 0.0,
        "compliant_frac": 1.0,
    }
    assert s["owned"] == [True] * 4 and d["shared_with"] == []
    # The demo park's default subsidy, 0.25 CNY/kWh, on the delivered energy.
    assert s["compensation_cny"] == pytest.approx(0.25 * s["delivered_kwh"])
    assert d["compensation"]["terms_source"].startswith("shared/DOMAIN.md")
    assert 'vpp_dr_effective{event_id="SG-SETTLE"} 1.0' in metrics
    assert 'vpp_dr_cap_compliant_frac{event_id="SG-SETTLE"} 1.0' in metrics
    assert "vpp_dr_compensation_cny" in metrics
    # One baseline for both verdicts: the plan's expected delivery stood on the settlement's
    # method, computed from the same stored meter history, and there is nothing to reconcile.
    assert one["expected_delivery"]["baseline_method"] == "gbt37016_5of10"
    assert d["baseline_note"] is None

    rt.clock.set(WINDOW[1] + timedelta(hours=2))
    rt.run_cycle()  # settled once only
    with rt.engine.connect() as conn:
        assert len(repo.settlements(conn)) == 1
    again = make_runtime(db_url)  # a restart exports the settled delivery again
    assert 'vpp_dr_delivery_ratio{event_id="SG-SETTLE"} 1.0' in again.metrics.render().decode()


def test_without_a_similar_day_both_figures_carry_their_own_baseline(db_url):
    """A database with no history: the plan stands on its forecast baseline and the
    settlement falls back to the hour before the window; each figure says which, and the
    API says that they differ."""
    rt = make_runtime(db_url, stale_after_s=3600)
    body = dr_body("SG-NEW", cap_kw=1600.0)
    with rt.engine.begin() as conn:
        repo.insert_dr(conn, "SG-NEW", "confirmed", body, "utility")
    rt.run_cycle()
    hour_before = [_meter(WINDOW[0] - (k + 1) * STEP, 1900.0) for k in range(4)]
    shaved = [_meter(WINDOW[0] + k * STEP, 1600.0) for k in range(4)]
    rt.clock.set(WINDOW[1] + timedelta(minutes=15))  # first: no readings from the future
    rt.ingest(hour_before + shaved, source="meter")
    rt.run_cycle()
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        one = client.get("/api/v1/dr-events/SG-NEW", headers=headers(keys["viewer"])).json()
    d = one["delivery"]
    assert one["expected_delivery"]["baseline_method"] == "forecast_uncontrolled"
    assert d["baseline_method"] == "pre_event_mean_1h"
    assert d["baseline_kwh"] == pytest.approx(1900.0 * 1.0)
    assert "pre_event_mean_1h" in d["baseline_note"]
    assert "forecast_uncontrolled" in d["baseline_note"]


def test_the_plans_dr_baseline_reads_the_meter_history_once_a_day(db_url, monkeypatch):
    """The baseline of a day is fixed from the days before it: cycles of one day read the
    stored meter history once, and again only when readings of a past day arrive."""
    import vpp.runtime.dr_lifecycle as lifecycle

    rt = make_runtime(db_url, stale_after_s=3600)
    rows, _ = _history()
    rt.ingest(rows, source="meter")
    with rt.engine.begin() as conn:
        repo.insert_dr(conn, "SG-ONCE", "confirmed", dr_body("SG-ONCE", cap_kw=1600.0), "utility")
    reads = []
    real = lifecycle.repo.meter_readings
    monkeypatch.setattr(
        lifecycle.repo, "meter_readings", lambda *a, **k: reads.append(a[2]) or real(*a, **k)
    )
    for k in range(3):
        rt.clock.set(T0 + k * STEP)
        rt.run_cycle()
    plan_reads = [t for t in reads if t == T0.replace(hour=0) - timedelta(days=30)]
    assert len(plan_reads) == 1
    rt.ingest([_meter(T0.replace(hour=0) - timedelta(days=1), 1234.0)], source="meter")
    rt.clock.set(T0 + 3 * STEP)
    rt.run_cycle()
    assert len([t for t in reads if t == T0.replace(hour=0) - timedelta(days=30)]) == 2
