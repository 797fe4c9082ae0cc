"""KPIs against hand-computed values on a four-interval scenario."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.accounting import kpis
from vpp.accounting.dr_baseline import Delivery
from vpp.park.model import Horizon
from vpp.sim.closed_loop import CycleRecord, SimResult
from vpp.sim.simulated_park import SessionOutcome

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 31, 23, 30, tzinfo=TZ)  # two intervals in July, two in August


def result(grid: bool = False) -> SimResult:
    site = tiny_site()
    run = Horizon(T0, timedelta(minutes=15), 4)
    imp = np.array([100.0, 200.0, 0.0, 80.0])
    exp = np.array([0.0, 0.0, 40.0, 0.0])
    price = np.array([0.3, 0.3, 0.3, 0.3])
    series = {
        "import_kw": imp,
        "export_kw": exp,
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
    deliveries = [Delivery("e1", 100.0, 90.0, 500.0, 410.0, (0.8, 1.2))]
    return SimResult(site, "mpc", "naive", 0, run, series, cycles, sessions, deliveries, (), grid)


def test_kpis_by_hand() -> None:
    k = kpis.compute(result())
    assert set(kpis.KPI_NAMES) <= set(k)
    energy = (380 * 0.3 - 40 * 0.4) * 0.25
    assert k["energy_cost_cny"] == pytest.approx(energy)
    # July's peak 200 kW and August's 80 kW, 40 CNY/kW each month.
    assert k["demand_charge_cny"] == pytest.approx(40 * (200 + 80))
    assert k["total_cost_cny"] == pytest.approx(energy + 40 * 280)
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
    assert k["dr_delivery_ratio"] == pytest.approx(0.9)
    assert (k["ev_requested_kwh"], k["ev_delivered_kwh"], k["ev_unmet_kwh"]) == (20, 16, 4)
    assert k["solver_failures"] == 1
    assert k["cycle_time_p50_ms"] == pytest.approx(250.0)
    assert k["grid_violation_steps"] is None
    assert "not validated" in k["notes"]["grid_violation_steps"]


def test_grid_violation_steps_counted_when_validated() -> None:
    assert kpis.compute(result(grid=True))["grid_violation_steps"] == 1
