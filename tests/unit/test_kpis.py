"""KPIs against hand-computed values on a four-interval scenario, and the bill's rules
(demand pro-rating, stored energy, realised limit breaches) on their own."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.accounting import bill, kpis, limits
from vpp.accounting.dr_baseline import Delivery, Settlement, compensation
from vpp.park.model import Battery, DrTerms, Horizon
from vpp.sim.closed_loop import CycleRecord, SimResult
from vpp.sim.realised import RealisedGrid
from vpp.sim.simulated_park import SessionOutcome

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 31, 23, 30, tzinfo=TZ)  # two intervals in July, two in August


def result(grid: bool = False, prorate: bool = True, realised: RealisedGrid | None = None):
    site = tiny_site()
    run = Horizon(T0, timedelta(minutes=15), 4)
    imp = np.array([100.0, 200.0, 0.0, 80.0])
    exp = np.array([0.0, 0.0, 40.0, 0.0])
    price = np.array([0.3, 0.3, 0.3, 0.3])
    series = {
        "import_kw": imp,
        "export_kw": exp,
        "net_kw": imp - exp,
        "price_cny_per_kwh": price,
        "ev_to_car_kw": np.array([40.0, 24.0, 0.0, 0.0]),
        "dr_cap_kw": np.array([np.inf, 150.0, 150.0, np.inf]),
        "dr_floor_kw": np.array([-np.inf, -np.inf, 10.0, 10.0]),
        "pv_available_kw": np.array([0.0, 0.0, 100.0, 50.0]),
        "pv_used_kw": np.array([0.0, 0.0, 80.0, 50.0]),
        "pv_curtailed_kw": np.array([0.0, 0.0, 20.0, 0.0]),
        "ef_kg_per_kwh": np.full(4, 0.5),
        "energy_cost_cny": (imp * price - exp * 0.4) * 0.25,
    }
    cycles = [
        CycleRecord(T0 + i * run.step, "mpc", fb, 0, s, np.inf, -np.inf, np.nan, g)
        for i, (fb, s, g) in enumerate(
            [(None, 0.1, False), ("rule", 0.2, True), (None, 0.3, False), (None, 0.4, None)]
        )
    ]
    sessions = [
        SessionOutcome("a", "EV1", T0, T0 + run.step, 10.0, 10.0),
        SessionOutcome("b", "EV2", T0, T0 + run.step, 10.0, 6.0),
    ]
    delivered = Delivery("e1", 100.0, 90.0, 500.0, 410.0, (0.8, 1.2), hours=0.5)
    # Paid 0.5 CNY/kWh of the 90 kWh delivered (effective: 0.9 of the request, in its band).
    terms = DrTerms(subsidy_cny_per_kwh=0.5)
    settled = [
        Settlement("e1", "gbt37016_5of10", (), run.step, (T0,), np.zeros(1), np.zeros(1),
                   delivered, terms=terms, compensation=compensation(delivered, terms))
    ]  # fmt: skip
    # tiny_site: "bat" 100 kWh and the PEDF building's "P1-bat" 40 kWh, both at 50 % at the
    # start; the run ends with "bat" at 30 kWh and "P1-bat" at 24 kWh.
    start = {"bat": 50.0, "P1-bat": 20.0}
    end = {"bat": 30.0, "P1-bat": 24.0}
    realised = realised or RealisedGrid(checked=False, note="no network configured")
    return SimResult(
        site, "mpc", "naive", 0, run, series, cycles, sessions, settled, (), grid,
        realised, start, end, prorate,
    )  # fmt: skip


def test_kpis_by_hand() -> None:
    k = kpis.compute(result())
    assert set(kpis.KPI_NAMES) <= set(k)
    energy = (380 * 0.3 - 40 * 0.4) * 0.25
    assert k["energy_cost_cny"] == pytest.approx(energy)
    # July's peak 200 kW and August's 80 kW, 40 CNY/kW each month, each month covered for
    # 0.5 h of its 744 h.
    demand = 40 * (200 + 80) * 0.5 / 744
    assert k["demand_charge_cny"] == pytest.approx(demand)
    assert [m["month"] for m in k["demand_by_month"]] == ["2026-07", "2026-08"]
    assert k["demand_by_month"][0]["full_month_cny"] == pytest.approx(40 * 200)
    # Stored energy: -20 kWh in "bat", +4 kWh in "P1-bat", valued at the run's mean import
    # price 0.3 x eta_discharge 0.95 (neither battery has a configured terminal value).
    stored = -(0.3 * 0.95) * (-20 + 4)
    assert k["stored_energy_cost_cny"] == pytest.approx(stored)
    assert k["stored_energy"]["change_kwh"] == pytest.approx(-16.0)
    assert k["dr_compensation_cny"] == pytest.approx(45.0)
    assert k["total_cost_cny"] == pytest.approx(energy + demand + stored - 45.0)
    assert k["peak_import_kw"] == 200.0
    assert k["import_kwh"] == pytest.approx(95.0)
    assert k["export_kwh"] == pytest.approx(10.0)
    assert k["pv_available_kwh"] == pytest.approx(37.5)
    assert k["pv_curtailed_kwh"] == pytest.approx(5.0)
    assert k["self_consumption_ratio"] == pytest.approx((32.5 - 10.0) / 32.5)
    assert k["co2_t"] == pytest.approx(95 * 0.5 / 1000)
    consumed = 95 - 10 + 32.5
    assert k["energy_tce_equivalent"] == pytest.approx(consumed * 0.1229 / 1000)
    assert k["energy_tce_equal_value"] == pytest.approx(consumed * 0.30 / 1000)
    va = 1000.0 * (1 / 24) / 365  # an hour of the year's value added
    assert k["intensity_tce_per_10k_cny"] == pytest.approx(consumed * 0.1229 / 1000 / va)
    assert (k["dr_events"], k["dr_requested_kwh"], k["dr_delivered_kwh"]) == (1, 100.0, 90.0)
    assert (k["dr_events_effective"], k["dr_per_event"][0]["ratio"]) == (1, pytest.approx(0.9))
    # The DR cap (150 kW) held in steps 1-2: 200 kW in step 1 is 50 kW over for 0.25 h. The
    # floor (10 kW) in steps 2-3: step 2 exports 40 kW, 50 kW under it.
    assert (k["dr_cap_breach_steps"], k["dr_cap_breach_kwh"]) == (1, pytest.approx(12.5))
    assert (k["dr_floor_breach_steps"], k["dr_floor_breach_kwh"]) == (1, pytest.approx(12.5))
    assert (k["ev_requested_kwh"], k["ev_delivered_kwh"], k["ev_unmet_kwh"]) == (20, 16, 4)
    assert k["solver_failures"] == 1
    assert k["cycle_time_p50_ms"] == pytest.approx(250.0)
    assert k["ev_to_car_kwh"] == pytest.approx(16.0)
    # No network configured: the realised check says so; the planner ran without --grid.
    assert k["grid_violation_steps"] is None
    assert k["plan_grid_violation_steps"] is None
    assert "no network configured" in k["notes"]["grid_violation_steps"]
    assert "without the AC check" in k["notes"]["plan_grid_violation_steps"]


def test_a_whole_month_billed_without_pro_rating() -> None:
    k = kpis.compute(result(prorate=False))
    # July's peak 200 kW and August's 80 kW, 40 CNY/kW each month: the months' bills.
    assert k["demand_charge_cny"] == pytest.approx(40 * (200 + 80))
    assert "not pro-rated" in k["notes"]["demand_charge"]


def test_plan_and_realised_grid_violations_are_apart() -> None:
    realised = RealisedGrid(
        checked=True,
        violation_steps=3,
        by_element=[{"element": "T1", "kind": "trafo_loading", "intervals": 3}],
        trafo_loading_max_percent=np.array([80.0, 115.0, 104.0, 101.0]),
        line_loading_max_percent=np.array([10.0, 20.0, 30.0, 40.0]),
        v_min_pu=np.array([1.0, 0.97, 0.98, 0.99]),
        v_max_pu=np.array([1.0, 1.0, 1.01, 1.0]),
    )
    k = kpis.compute(result(grid=True, realised=realised))
    # The plan broke a limit in one applied interval (cycle 1); the park in three.
    assert (k["plan_grid_violation_steps"], k["grid_violation_steps"]) == (1, 3)
    assert k["trafo_loading_max_percent"] == 115.0
    assert (k["v_min_pu"], k["v_max_pu"]) == (0.97, 1.01)
    assert k["grid_violations"][0]["element"] == "T1"


def test_demand_charge_pro_rated_by_the_share_of_each_month() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    step = timedelta(hours=12)
    # 30 Jan 00:00 to 2 Feb 00:00 in 12 h steps: two days of January (of 31), one of
    # February (of 28).
    times = [datetime(2026, 1, 30, tzinfo=tz) + i * step for i in range(6)]
    imp = np.array([100.0, 300.0, 200.0, 250.0, 400.0, 50.0])
    months = bill.demand_charges(imp, times, step, 30.0, "Asia/Shanghai")
    assert [(m.month, m.peak_import_kw) for m in months] == [("2026-01", 300), ("2026-02", 400)]
    assert months[0].covered_frac == pytest.approx(2 / 31)
    assert months[0].charge_cny == pytest.approx(30 * 300 * 2 / 31)
    assert months[1].charge_cny == pytest.approx(30 * 400 / 28)
    whole = bill.demand_charges(imp, times, step, 30.0, "Asia/Shanghai", prorate=False)
    assert sum(m.charge_cny for m in whole) == pytest.approx(30 * 700)


def test_the_months_peak_before_the_run_sets_the_bill_when_higher() -> None:
    """A run that starts on the 30th is billed on the higher of the month's metered peak so
    far and its own (January had 350 kW before the run: 350 > 300); a month the history does
    not reach (February) on the run's own."""
    tz = ZoneInfo("Asia/Shanghai")
    step = timedelta(hours=12)
    times = [datetime(2026, 1, 30, tzinfo=tz) + i * step for i in range(6)]
    imp = np.array([100.0, 300.0, 200.0, 250.0, 400.0, 50.0])
    months = bill.demand_charges(
        imp, times, step, 30.0, "Asia/Shanghai", peak_before_kw={"2026-01": 350.0}
    )
    jan, feb = months
    assert (jan.peak_import_kw, jan.peak_before_run_kw, jan.run_peak_import_kw) == (350, 350, 300)
    assert jan.charge_cny == pytest.approx(30 * 350 * 2 / 31)
    assert (feb.peak_import_kw, feb.peak_before_run_kw) == (400, 0)
    low = bill.demand_charges(
        imp, times, step, 30.0, "Asia/Shanghai", peak_before_kw={"2026-01": 10}
    )
    assert low[0].peak_import_kw == 300


def test_stored_energy_uses_a_configured_terminal_value() -> None:
    a = Battery("a", "b", 100.0, 50.0, 50.0, terminal_value_cny_per_kwh=0.6)
    b = Battery("b", "b", 100.0, 50.0, 50.0, eta_discharge=0.9)
    s = bill.stored_energy([a, b], {"a": 50, "b": 50}, {"a": 40, "b": 70}, 0.5)
    # a: -10 kWh x 0.6 = -6 CNY; b: +20 kWh x 0.5 x 0.9 = +9 CNY; net +3 CNY stored.
    assert s.value_cny == pytest.approx(3.0)
    assert s.cost_cny == pytest.approx(-3.0)
    assert s.value_cny_per_kwh == {"a": 0.6, "b": pytest.approx(0.45)}


def test_breaches_count_only_the_intervals_past_the_limit() -> None:
    out = limits.breaches(
        net_kw=np.array([90.0, 110.0, 130.0, -60.0]),
        dr_cap_kw=np.array([np.inf, 100.0, 140.0, np.inf]),
        dr_floor_kw=np.full(4, -np.inf),
        import_max_kw=120.0,
        export_max_kw=50.0,
        dt_h=0.5,
    )
    assert out["connection_import"].as_dict() == {
        "limit": "connection_import", "steps": 1, "energy_kwh": 5.0, "worst_kw": 10.0,
    }  # fmt: skip
    assert (out["connection_export"].steps, out["connection_export"].energy_kwh) == (1, 5.0)
    assert (out["dr_cap"].steps, out["dr_cap"].energy_kwh) == (1, 5.0)
    assert out["dr_floor"].steps == 0


def test_the_plans_penalties_are_counted_apart_from_money() -> None:
    import dataclasses

    r = result()
    r.cycles[1] = dataclasses.replace(r.cycles[1], plan_penalty=1500.0, plan_relaxations=2)
    k = kpis.compute(r)
    assert (k["plan_relaxation_cycles"], k["plan_penalty"]) == (1, 1500.0)
    assert k["total_cost_cny"] == pytest.approx(kpis.compute(result())["total_cost_cny"])


def test_the_plans_choice_names_when_and_why_an_event_was_given_up() -> None:
    """kpis._plan_choice reads the cycles' DR decisions: followed in 2 of 4 plans, given up
    from the third on, with the third's reason (the plan's, not the park's)."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from vpp.accounting.kpis import _plan_choice

    t0 = datetime(2026, 7, 20, 17, 30)
    says = ["ok", "ok", "costs 2,170 CNY in demand charge", "still costs"]
    followed = [True, True, False, False]
    cycles = [
        SimpleNamespace(at=t0 + timedelta(minutes=15 * i), dr_decisions={"E": (f, w)})
        for i, (f, w) in enumerate(zip(followed, says, strict=True))
    ]
    cycles.append(SimpleNamespace(at=t0 + timedelta(hours=2), dr_decisions={}))
    row = _plan_choice(SimpleNamespace(cycles=cycles), "E")
    assert row == {
        "plan_cycles": 4,
        "plan_cycles_followed": 2,
        "plan_given_up_at": (t0 + timedelta(minutes=30)).isoformat(),
        "plan_given_up_why": "costs 2,170 CNY in demand charge",
    }
    cycles[3].dr_decisions["E"] = (True, "followed again")
    back = _plan_choice(SimpleNamespace(cycles=cycles), "E")
    assert back["plan_given_up_at"] is None and back["plan_cycles_followed"] == 3
