"""``vpp carbon report`` from the service's database (SQLite and PostgreSQL): figures checked
by hand, missing dates named, and the stored path against the simulated one."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import insert

from tests.unit.test_sim_site import tiny_site
from vpp.cli import main
from vpp.commands.carbon import no_vpp_series, report, text
from vpp.park.model import PARK_METER, Assets, Site
from vpp.runtime.plant import SteppedPlant
from vpp.sim.simulated_park import SimOptions, SimulatedPark
from vpp.store import repo
from vpp.store import tables as t
from vpp.store.db import make_engine, migrate
from vpp.store.metered import MissingStoredDataError, read_period

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 15)
MIDNIGHT = datetime(2026, 7, 15, tzinfo=TZ)
Q = timedelta(minutes=15)
EF = 0.5  # tiny_site's grid factor, kgCO2/kWh
DEMO = Path(__file__).resolve().parents[2] / "configs" / "parks" / "demo.yaml"
EQV, EQL = 0.1229, 0.30  # kgce/kWh, equivalent value and equal value (EnergyFactors defaults)


def pv_battery_site() -> Site:
    """tiny_site with only its PV array, battery and loads: the no-VPP park = meter - battery."""
    s = tiny_site()
    a = s.assets
    return dataclasses.replace(
        s,
        assets=Assets(
            pv_arrays=a.pv_arrays,
            batteries=a.batteries,
            curtailable_loads=a.curtailable_loads,
            base_loads=a.base_loads,
        ),
        ev_fleets=(),
    )


def _engine(db_url: str):
    engine = make_engine(db_url)
    migrate(engine)
    return engine


def hand_day() -> list[dict]:
    """One day of readings whose figures are computed by hand in the test below.

    Park meter 100 kW all day, except 4 intervals exporting 40 kW (k = 48..51) and 2 intervals
    with no reading (k = 10, 11: interpolated to 100); interval 5 read twice (80 and 120 kW:
    its mean is 100). PV1 makes 20 kW over 40 intervals (k = 30..69). The battery charges
    50 kW over k = 0..7 and discharges 45 kW over k = 70..77.
    """
    rows = []
    for k in range(96):
        ts = MIDNIGHT + k * Q
        if k in (10, 11):
            continue
        p = -40.0 if 48 <= k < 52 else 100.0
        if k == 5:
            rows += [
                {"asset": PARK_METER, "ts": ts, "p_kw": 80.0},
                {"asset": PARK_METER, "ts": ts + timedelta(minutes=7.5), "p_kw": 120.0},
            ]
        else:
            rows.append({"asset": PARK_METER, "ts": ts, "p_kw": p})
        rows.append({"asset": "PV1", "ts": ts, "p_kw": -20.0 if 30 <= k < 70 else 0.0})
        bat = 50.0 if k < 8 else (-45.0 if 70 <= k < 78 else 0.0)
        rows.append({"asset": "bat", "ts": ts, "p_kw": bat, "e_kwh": 50.0})
    return rows


def test_stored_day_figures_by_hand(db_url) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        repo.ingest_telemetry(conn, hand_day())
    site = pv_battery_site()
    with engine.connect() as conn:
        m = read_period(conn, site, DAY, DAY)
    assert m.filled_intervals == 2
    assert m.pv_from_forecast == () and m.pv_unknown == ()
    doc = report(site, DAY, DAY, metered=m)
    run, base = doc["runs"]["metered"], doc["runs"]["no_vpp"]
    imp_kwh = 92 * 100 * 0.25  # 2,300 kWh
    exp_kwh = 4 * 40 * 0.25  # 40 kWh
    pv_kwh = 40 * 20 * 0.25  # 200 kWh
    assert run["import_kwh"] == pytest.approx(imp_kwh)
    assert run["export_kwh"] == pytest.approx(exp_kwh)
    assert run["pv_used_kwh"] == pytest.approx(pv_kwh)
    cons = imp_kwh - exp_kwh + pv_kwh  # 2,460 kWh
    assert run["consumption_kwh"] == pytest.approx(cons)
    assert run["co2_t"] == pytest.approx(imp_kwh * EF / 1000)  # 1.15 t
    assert run["tce_equivalent"] == pytest.approx(cons * EQV / 1000)  # 0.3023 tce
    assert run["tce_equal_value"] == pytest.approx(cons * EQL / 1000)  # 0.738 tce
    # Value added 1,000 x 10^4 CNY a year: 1000/365 for the day.
    va = 1000.0 / 365.0
    assert run["intensity_tce_per_10k_cny"] == pytest.approx(cons * EQV / 1000 / va)
    # Without the VPP the battery neither took 100 kWh (k 0..7) nor gave 90 kWh (k 70..77).
    base_imp = imp_kwh - 100.0 + 90.0
    assert base["import_kwh"] == pytest.approx(base_imp)
    assert run["vs_no_vpp_co2_t"] == pytest.approx((imp_kwh - base_imp) * EF / 1000)  # +5 kg
    assert run["vs_no_vpp_tce_equivalent"] == pytest.approx(10.0 * EQV / 1000)
    assert run["vs_no_vpp_tce_equal_value"] == pytest.approx(10.0 * EQL / 1000)
    assert doc["source"] == "stored" and doc["last_year_source"] == "simulated"
    out = text(site, doc)
    assert "metered" in out and "2 interval(s) without a reading interpolated" in out


def test_missing_and_partial_dates_are_named(db_url) -> None:
    engine = _engine(db_url)
    rows = hand_day()
    # 2026-07-16: 40 of 96 intervals only.
    rows += [
        {"asset": PARK_METER, "ts": MIDNIGHT + timedelta(days=1) + k * Q, "p_kw": 50.0}
        for k in range(40)
    ]
    with engine.begin() as conn:
        repo.ingest_telemetry(conn, rows)
    site = pv_battery_site()
    with engine.connect() as conn, pytest.raises(MissingStoredDataError) as info:
        read_period(conn, site, date(2026, 7, 12), date(2026, 7, 16))
    err = info.value
    assert err.dates == [date(2026, 7, d) for d in (12, 13, 14, 16)]
    msg = str(err)
    assert "2026-07-12..2026-07-14 (none)" in msg
    assert "2026-07-16 (40 of 96 intervals)" in msg
    assert "2026-07-15" not in msg


def test_cli_reads_the_database(db_url, tmp_path, monkeypatch, capsys) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        repo.ingest_telemetry(conn, hand_day())
    cfg = DEMO
    monkeypatch.setenv("VPP_DATABASE_URL", db_url)
    out = tmp_path / "carbon.json"
    argv = ["carbon", "report", "--config", str(cfg), "--from", "2026-07-15", "--to"]
    assert main([*argv, "2026-07-15", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["source"] == "stored"
    assert doc["runs"]["metered"]["import_kwh"] == pytest.approx(2300.0)
    # None of the demo park's dispatched assets has readings here: nothing is replaced (its
    # 3 batteries, 120 chargers and 2 shiftable loads stay in the meter as they ran).
    assert len(doc["stored"]["unmetered_dispatch"]) == 125
    assert doc["runs"]["no_vpp"]["import_kwh"] == pytest.approx(2300.0)
    assert "metered" in capsys.readouterr().out
    assert main([*argv, "2026-07-16"]) == 2
    err = capsys.readouterr().err
    assert "2026-07-16 (none)" in err and "--data DIR" in err


def test_cli_says_when_there_is_no_database(tmp_path, monkeypatch, capsys) -> None:
    cfg = DEMO
    monkeypatch.setenv("VPP_DATABASE_URL", f"sqlite:///{tmp_path / 'nothing.sqlite3'}")
    argv = ["carbon", "report", "--config", str(cfg), "--from", "2026-07-15", "--to"]
    assert main([*argv, "2026-07-15"]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "nothing.sqlite3").exists()  # a report never creates one
    assert main([*argv, "2026-07-15", "--source", "stored", "--data", str(tmp_path)]) == 2
    assert "--data is simulated data" in capsys.readouterr().err


def _run_plant(site: Site) -> tuple[SimulatedPark, list[dict], list]:
    """One day of the simulated park behind the service's plant adapter, under a simple
    dispatch that differs from the park without the VPP: the battery charges 30 kW in the
    night valley and gives 30 kW from 17:00 to 21:00, cars charge at half power, the test rig
    waits until noon. Returns the park, its telemetry as the service stores it, and the EV
    sessions the service would have stored."""
    park = SimulatedPark(site, seed=4, start=MIDNIGHT, options=SimOptions(load_noise_frac=0.0))
    plant = SteppedPlant(park, Q)
    sessions = {}
    for k in range(96):
        at = MIDNIGHT + k * Q
        state = plant.read_state(at)
        sp = {"bat": 30.0 if k < 24 else (-30.0 if 68 <= k < 84 else 0.0)}
        sp["rig"] = 0.0 if k < 48 else 20.0
        chargers = {c.name: c for c in site.assets.ev_chargers}
        for s in state.ev_sessions:
            sessions[s.session_id] = s
            if s.arrival <= at < s.departure:
                sp[s.charger] = chargers[s.charger].p_max_kw / 2
        plant.apply(at, sp)
    plant.flush(MIDNIGHT + 96 * Q)
    return park, plant.telemetry(MIDNIGHT + 96 * Q), list(sessions.values())


def _store_pv_forecast(conn, name: str, truth_kw: np.ndarray) -> None:
    """One cycle per interval whose lead-0 forecast of ``name`` is the truth (a PEDF
    building's PV is not metered apart: the report takes it from the forecasts)."""
    for k, p in enumerate(truth_kw):
        at = MIDNIGHT + k * Q
        cid = conn.execute(
            insert(t.cycle_runs).values(
                at=at, started_at=at, finished_at=at, trigger="schedule", controller="test",
                solver_status="optimal", terms_cny={}, timings_s={}, relaxed=[],
                violations=[], errors=[], clamps=[], stale_assets=[],
            )
        ).inserted_primary_key[0]  # fmt: skip
        conn.execute(
            insert(t.forecasts).values(
                cycle_id=cid, horizon_start=at, step_minutes=15.0, source="test", asset=name,
                p50_kw=[float(p), 0.0, 0.0],
            )
        )  # fmt: skip


def test_stored_path_agrees_with_the_simulated_one(db_url) -> None:
    """The same day through both paths: the stored report's metered figures are the park's
    own records, and its park without the VPP (meter - dispatched + uncontrolled) is the
    simulated one (profiles - PV + uncontrolled EVs and rig), interval by interval."""
    site = tiny_site()
    park, rows, sessions = _run_plant(site)
    engine = _engine(db_url)
    with engine.begin() as conn:
        repo.ingest_telemetry(conn, rows)
        repo.upsert_ev_sessions(conn, sessions)
        _store_pv_forecast(conn, "P1-pv", -park.asset_power("P1-pv"))
    with engine.connect() as conn:
        m = read_period(conn, site, DAY, DAY)
    rec = park.records()
    assert m.filled_intervals == 0 and m.pv_from_forecast == ("P1-pv",)
    np.testing.assert_allclose(m.import_kw, rec["import_kw"], atol=1e-9)
    np.testing.assert_allclose(m.export_kw, rec["export_kw"], atol=1e-9)
    np.testing.assert_allclose(m.pv_used_kw, rec["pv_used_kw"], atol=1e-3)
    assert len(sessions) >= 2  # cars came, and charged slower than they would alone
    sim = no_vpp_series(site, DAY, DAY, seed=4)
    np.testing.assert_allclose(m.no_vpp_import_kw, sim["import_kw"], atol=1e-6)
    np.testing.assert_allclose(m.no_vpp_export_kw, sim["export_kw"], atol=1e-6)
    assert not np.allclose(m.import_kw, m.no_vpp_import_kw, atol=1.0)  # the dispatch mattered
    doc = report(site, DAY, DAY, metered=m)
    runs = doc["runs"]
    dt = 0.25
    assert runs["metered"]["co2_t"] == pytest.approx(rec["import_kw"].sum() * dt * EF / 1000)
    assert runs["no_vpp"]["co2_t"] == pytest.approx(sim["import_kw"].sum() * dt * EF / 1000)
