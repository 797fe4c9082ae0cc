"""Tenant sub-meters from the service's database (SQLite and PostgreSQL): each bus's draw
summed from the stored readings of its assets, billed per meter by hand, in ``vpp carbon
report`` and in ``GET /api/v1/tenants``.

The park is the two-tenant park of ``tests/unit/test_tenant_meters.py`` (hourly intervals)
with a battery on tenant B's bus. One day of readings, 2026-07-15 (a Wednesday), by hour h:

* A-base 20 kW; A-pv -150 kW at h = 10..13, else 0: A's meter 20, or -130 at h = 10..13;
* B-base 60 kW, 90 kW at h = 18; B-bess +20 kW at h = 0, -40 kW at h = 18: B's meter 80 at
  h = 0, 60 at h = 1..17 and 19..23, 50 at h = 18 (without the VPP: 60, and 90 at h = 18);
* the park meter: the sum of the two.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.service_kit import headers, make_keys, make_runtime
from tests.unit import test_tenant_meters as two
from vpp.cli import main
from vpp.commands.carbon import report, text
from vpp.park.model import PARK_METER
from vpp.runtime.clock import ManualClock
from vpp.store import repo
from vpp.store.db import make_engine, migrate
from vpp.store.metered import read_period
from vpp.store.metered_buses import read_buses

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 15)
MIDNIGHT = datetime(2026, 7, 15, tzinfo=TZ)
H = timedelta(hours=1)

# By hand (1 h intervals: kW = kWh). Tenant A (flat 0.6, export 0.3, 10 CNY/kW-month):
#   import 20 h x 20 kWh = 400 kWh x 0.6 = 240; export 4 x 130 = 520 kWh x 0.3 = 156;
#   peak 20 kW.
A_ENERGY = 400 * 0.6 - 520 * 0.3  # 84 CNY
A_PEAK = 20.0
# Tenant B (0.4, and 1.0 at h = 1..3; 20 CNY/kW-month):
#   h 0: 80 x 0.4 = 32; h 1..3: 3 x 60 x 1.0 = 180; h 4..17: 14 x 60 x 0.4 = 336;
#   h 18: 50 x 0.4 = 20; h 19..23: 5 x 60 x 0.4 = 120: 688 CNY on a peak of 80 kW.
B_ENERGY = 80 * 0.4 + 3 * 60 * 1.0 + 14 * 60 * 0.4 + 50 * 0.4 + 5 * 60 * 0.4
B_PEAK = 80.0
# Without the VPP (no battery): h 0 60 x 0.4 = 24, h 18 90 x 0.4 = 36: 696 CNY on 90 kW.
B_ENERGY_NO_VPP = 60 * 0.4 + 3 * 60 * 1.0 + 14 * 60 * 0.4 + 90 * 0.4 + 5 * 60 * 0.4
B_PEAK_NO_VPP = 90.0


def _site():
    return two._site(two._doc("per_meter", battery=True))


def _day() -> list[dict]:
    rows = []
    for h in range(24):
        ts = MIDNIGHT + h * H
        pv = -150.0 if 10 <= h <= 13 else 0.0
        b_base = 90.0 if h == 18 else 60.0
        bat = 20.0 if h == 0 else (-40.0 if h == 18 else 0.0)
        rows += [
            {"asset": "A-base", "ts": ts, "p_kw": 20.0},
            {"asset": "A-pv", "ts": ts, "p_kw": pv},
            {"asset": "B-base", "ts": ts, "p_kw": b_base},
            {"asset": "B-bess", "ts": ts, "p_kw": bat, "e_kwh": 50.0},
            {"asset": PARK_METER, "ts": ts, "p_kw": 20.0 + pv + b_base + bat},
        ]
    return rows


def _engine(db_url: str):
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        repo.ingest_telemetry(conn, _day())
    return engine


def test_buses_from_stored_readings_and_the_carbon_report_by_hand(db_url) -> None:
    engine = _engine(db_url)
    site = _site()
    with engine.connect() as conn:
        m = read_period(conn, site, DAY, DAY)
        buses = read_buses(conn, site, m.horizon)
    assert buses.metered.all() and buses.unmetered_assets == ()
    assert buses.bus_p_kw["B-LV"][0] == pytest.approx(80.0)
    assert buses.no_vpp_bus_p_kw["B-LV"][18] == pytest.approx(90.0)
    assert buses.pv_kw["A-LV"][11] == pytest.approx(150.0)
    doc = report(site, DAY, DAY, metered=m, metered_buses=buses)
    rep = doc["tenants"]["metered"]
    by = {x["meter"]: x for x in rep["meters"]}
    month = 24 / (31 * 24)  # the day's share of July: the demand charge is pro-rated
    assert by["A"]["bill"]["total_cny"] == pytest.approx(A_ENERGY + 10 * A_PEAK * month, abs=1e-6)
    assert by["B"]["bill"]["total_cny"] == pytest.approx(B_ENERGY + 20 * B_PEAK * month, abs=1e-6)
    b_no_vpp = B_ENERGY_NO_VPP + 20 * B_PEAK_NO_VPP * month
    assert by["B"]["no_vpp_bill_cny"] == pytest.approx(b_no_vpp, abs=1e-6)
    assert by["A"]["allocated_saving_cny"] == pytest.approx(0.0, abs=1e-6)
    assert rep["unallocated_saving_cny"] == pytest.approx(0.0, abs=1e-6)  # per_meter
    # CO2 of B: its import 80 + 22 x 60 + 50 = 1,450 kWh x 0.5 kg/kWh.
    assert by["B"]["co2_t"] == pytest.approx(1450 * 0.5 / 1000, abs=1e-9)
    out = text(site, doc)
    assert "tenants, metered: billing per_meter" in out


def test_cli_prints_the_tenants_from_the_database(db_url, tmp_path, monkeypatch, capsys):
    _engine(db_url)
    cfg = tmp_path / "two_tenants.yaml"
    cfg.write_text(json.dumps(two._doc("per_meter", battery=True)), encoding="utf-8")
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    js = tmp_path / "carbon.json"
    argv = ["carbon", "report", "--config", str(cfg), "--from", "2026-07-15", "--to"]
    assert main([*argv, "2026-07-15", "--json", str(js), "--allow-unknown-calendar"]) == 0
    out = capsys.readouterr().out
    assert "tenants, metered" in out and "common" in out
    doc = json.loads(js.read_text())
    assert [x["meter"] for x in doc["tenants"]["metered"]["meters"]] == ["A", "B", "common"]


def test_api_tenants_month_to_date_by_hand(db_url) -> None:
    _engine(db_url)
    rt = make_runtime(db_url, site=_site(), start=False)
    rt.clock = ManualClock(datetime(2026, 7, 16, tzinfo=TZ))
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        r = client.get("/api/v1/tenants", headers=headers(keys["viewer"]))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["month"] == "2026-07" and doc["billing"] == "per_meter"
    assert doc["intervals"] == 15 * 24 and doc["intervals_metered"] == 24
    by = {x["meter"]: x for x in doc["meters"]}
    # Month to date bills the whole month's demand rate on the peak so far.
    assert by["A"]["bill"]["total_cny"] == pytest.approx(A_ENERGY + 10 * A_PEAK, abs=1e-6)
    assert by["B"]["bill"]["total_cny"] == pytest.approx(B_ENERGY + 20 * B_PEAK, abs=1e-6)
    saving = (B_ENERGY_NO_VPP + 20 * B_PEAK_NO_VPP) - (B_ENERGY + 20 * B_PEAK)  # 208 CNY
    assert by["B"]["allocated_saving_cny"] == pytest.approx(saving, abs=1e-6)
    assert doc["park_bill_cny"] == pytest.approx(
        A_ENERGY + 10 * A_PEAK + B_ENERGY + 20 * B_PEAK, abs=1e-6
    )


def test_the_service_plans_each_meter_on_its_stored_month_peak(db_url) -> None:
    _engine(db_url)
    at = datetime(2026, 7, 16, 8, 0, tzinfo=TZ)
    rt = make_runtime(db_url, site=_site(), at=at)
    try:
        rt.run_cycle()
        p = rt.current.problem
        assert p.per_meter_billing
        peaks = {x.name: x.month_peak_import_kw for x in p.meters}
        # July 15's readings: A's meter peaks at 20 kW, B's at 80 kW (h = 0), common at 0.
        assert peaks == pytest.approx({"A": A_PEAK, "B": B_PEAK, "common": 0.0}, abs=1e-9)
        # Read again an hour later: only the new intervals (no park-meter reading: nothing).
        assert rt.meter_peaks.at(rt.engine, at + H) == pytest.approx(peaks, abs=1e-9)
    finally:
        rt.close()
