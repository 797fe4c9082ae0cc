"""Closed-loop simulation of a tiny park on the measured profiles: energy balance, EV and DR
accounting, determinism, outputs, and the no-leakage property."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.accounting.kpis import KPI_NAMES
from vpp.park.model import DemandResponseEvent, DrDirection, DrWindow
from vpp.plan.history_forecasters import HistoryForecaster, LeakError, NaiveModel
from vpp.sim import closed_loop as sim
from vpp.sim.report import write_run

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, tzinfo=TZ)


@pytest.fixture(scope="module")
def dr_event() -> DemandResponseEvent:
    w = DrWindow(START + timedelta(hours=14), START + timedelta(hours=15))
    return DemandResponseEvent(
        "t1",
        DrDirection.PEAK_SHAVING,
        (w,),
        requested_kw=20.0,
        announce_time=START - timedelta(hours=7),
    )


@pytest.fixture(scope="module")
def mpc_run(dr_event):
    return sim.simulate(tiny_site(), START, 1.0, "mpc", "naive", seed=3, dr_events=[dr_event])


def test_energy_balance_over_the_run(mpc_run) -> None:
    s = mpc_run.series
    parts = s["base_kw"] + s["flex_kw"] + s["shiftable_kw"] + s["ev_kw"] + s["battery_kw"]
    np.testing.assert_allclose(s["net_kw"], parts - s["pv_used_kw"], atol=1e-6)
    np.testing.assert_allclose(s["import_kw"] - s["export_kw"], s["net_kw"], atol=1e-9)
    assert np.all(s["pv_used_kw"] <= s["pv_available_kw"] + 1e-9)
    assert np.all(s["flex_kw"] <= s["flex_baseline_kw"] + 1e-9)
    e = s["battery_e_kwh"]
    assert e.min() >= 0.1 * 140 - 1e-6 and e.max() <= 0.95 * 140 + 1e-6
    k = mpc_run.kpis
    assert k["ev_delivered_kwh"] <= k["ev_requested_kwh"] + 1e-9
    assert k["solver_failures"] == 0
    assert mpc_run.horizon.n == 96 and len(mpc_run.cycles) == 96


def test_dr_event_is_confirmed_honoured_and_measured(mpc_run) -> None:
    s = mpc_run.series
    k0, k1 = 56, 60  # 14:00-15:00
    assert np.all(np.isfinite(s["dr_cap_kw"][k0:k1]))
    assert np.all(np.isinf(s["dr_cap_kw"][:k0]))
    assert np.all(np.isfinite(s["dr_baseline_kw"][k0:k1]))
    k = mpc_run.kpis
    assert k["dr_events"] == 1
    assert k["dr_requested_kwh"] == pytest.approx(20.0)
    assert k["dr_per_event"][0]["event_id"] == "t1"
    # One event, one verdict: the headline counts events, not a sum of ratios.
    assert k["dr_per_event"][0]["ratio"] is not None
    assert k["dr_events_effective"] in (0, 1)
    # The plan's side, apart from the park's: every cycle that saw the call decided it.
    row = k["dr_per_event"][0]
    seen = sum(1 for c in mpc_run.cycles if "t1" in c.dr_decisions)
    assert row["plan_cycles"] == seen > 0
    assert 0 <= row["plan_cycles_followed"] <= seen
    assert (row["plan_given_up_at"] is None) == (row["plan_given_up_why"] is None)


def test_the_bill_adds_up_and_says_what_it_billed(mpc_run) -> None:
    k = mpc_run.kpis
    dr = k["dr_compensation_cny"] or 0.0
    parts = k["energy_cost_cny"] + k["demand_charge_cny"] + k["stored_energy_cost_cny"] - dr
    assert k["total_cost_cny"] == pytest.approx(parts)
    # One day of July: 1/31 of the month's charge on the month's peak: the higher of the
    # run's own and the one metered in July before the run (the 14 days of meter history
    # from 1 July, the park without the VPP), which the simulated park starts from.
    (month,) = k["demand_by_month"]
    assert month["covered_frac"] == pytest.approx(1 / 31)
    assert k["demand_charge_cny"] == pytest.approx(month["full_month_cny"] / 31)
    assert month["run_peak_import_kw"] == pytest.approx(k["peak_import_kw"])
    before = mpc_run.month_peak_before_kw["2026-07"]
    assert before > 0 and month["peak_before_run_kw"] == pytest.approx(before)
    assert month["peak_import_kw"] == pytest.approx(max(before, k["peak_import_kw"]))
    e = mpc_run.series["battery_e_kwh"]
    assert k["stored_energy"]["end_kwh"] == pytest.approx(e[-1])


def test_deterministic_for_a_seed() -> None:
    site = tiny_site()
    a = sim.simulate(site, START, 0.5, "rule", "naive", seed=7)
    b = sim.simulate(site, START, 0.5, "rule", "naive", seed=7)
    c = sim.simulate(site, START, 0.5, "rule", "naive", seed=8)
    for key in ("import_kw", "ev_kw", "battery_e_kwh"):
        np.testing.assert_array_equal(a.series[key], b.series[key])
    assert not np.array_equal(a.series["base_kw"], c.series["base_kw"])


class _Cheat(NaiveModel):
    """Reads the measurements of the horizon it is asked to forecast."""

    def predict(self, site, horizon, history):
        out = super().predict(site, horizon, history)
        for name in out.p50:
            out.p50[name] = history.window(name, horizon.start, horizon.n)
        return out


def test_a_forecaster_that_reads_the_future_fails(monkeypatch) -> None:
    site = tiny_site()

    def cheat(kind, site, park, history, seed=0):
        return HistoryForecaster(_Cheat(site), history)

    monkeypatch.setattr(sim, "make_forecaster", cheat)
    with pytest.raises(LeakError, match="after the decision time"):
        sim.simulate(site, START, 0.1, "rule", "naive")


def test_outputs_are_complete_and_offline(mpc_run, tmp_path) -> None:
    base = sim.simulate(
        tiny_site(), START, 1.0, "uncontrolled", "naive", seed=3, dr_events=mpc_run.events
    )
    write_run(mpc_run, tmp_path, base)
    doc = json.loads((tmp_path / "kpis.json").read_text())
    assert set(KPI_NAMES) <= set(doc)
    assert doc["baseline"]["controller"] == "uncontrolled"
    lines = (tmp_path / "timeseries.csv").read_text().splitlines()
    assert len(lines) == 97 and "import_kw" in lines[0] and "dr_cap_kw" in lines[0]
    # Each EV session's realised power: its energy into the car is what the session got.
    import pandas as pd

    per = pd.read_csv(tmp_path / "sessions.csv")
    assert list(per.columns) == ["time", "session_id", "charger", "p_kw", "to_car_kw"]
    into = per.groupby("session_id")["to_car_kw"].sum() * mpc_run.horizon.dt_h
    # (a car plugged in before the run started was charged before it, too)
    done = {s.session_id: s.delivered_kwh for s in mpc_run.sessions if s.arrival >= START}
    assert done and set(done) <= set(into.index)
    for sid, kwh in done.items():
        assert into[sid] == pytest.approx(kwh, abs=1e-3), sid
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page


def test_carbon_report_reads_a_simulation(mpc_run, tmp_path) -> None:
    from vpp.commands.carbon import report, text

    write_run(mpc_run, tmp_path)
    doc = report(mpc_run.site, START.date(), START.date(), tmp_path)
    assert set(doc["runs"]) == {"no_vpp", "mpc"}
    run = doc["runs"]["mpc"]
    assert run["co2_t"] == pytest.approx(mpc_run.kpis["co2_t"], rel=1e-6)
    assert run["tce_equivalent"] == pytest.approx(mpc_run.kpis["energy_tce_equivalent"], rel=1e-6)
    assert "co2_intensity_yoy_change_frac" in run
    assert "0.4 tce" in text(mpc_run.site, doc)
