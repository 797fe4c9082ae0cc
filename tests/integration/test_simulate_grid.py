"""``vpp simulate --grid``: the closed loop with the AC network check, on a park whose building
transformer the unconstrained dispatch would overload."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

import vpp.grid.loop
from tests.unit.test_sim_site import tiny_site
from vpp.grid.network import GridModel
from vpp.park.model import Assets, Battery, Network, Profile, Site, Transformer
from vpp.sim import closed_loop as sim
from vpp.sim.simulated_park import SimOptions

warnings.filterwarnings("ignore", message=".*numba.*")

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 4, 0, tzinfo=TZ)  # night valley until 08:00, then peak
TRAFO_KVA = 100.0
E_KWH = 600.0
DAYS = 5 / 24  # 20 cycles: 04:00 - 09:00


def overloaded_site() -> Site:
    """A 0.4 kV building behind a 100 kVA transformer: an office load of at most 45 kW in
    the morning and a 600 kWh battery that may charge at 200 kW, at 20 % at 04:00. Filling it
    before the 08:00 peak (0.3 -> 1.0 CNY/kWh) takes 474 kWh in 4 h, 118 kW on average: more
    than the transformer carries, so the unconstrained dispatch must overload it, and the
    checked one must leave the battery short. The grid connection itself never binds."""
    s = tiny_site(horizon_steps=32)
    office = dataclasses.replace(s.assets.base_loads[0], profile=Profile("simbench:G1-B", 60.0))
    return dataclasses.replace(
        s,
        assets=Assets(
            batteries=(Battery("bat", "LV", E_KWH, 200.0, 200.0, soc_init_frac=0.2),),
            base_loads=(office,),
        ),
        ev_fleets=(),
        # No demand charge: nothing but the network holds the charging back.
        tariff=dataclasses.replace(s.tariff, demand_charge_cny_per_kw_month=0.0),
        network=Network(transformers=(Transformer("T-LV", "PCC", "LV", TRAFO_KVA),)),
    )


def _trafo_loading_percent(site: Site, series: dict[str, np.ndarray]) -> np.ndarray:
    """AC loading of T-LV under what the park realised (everything sits on LV; the office
    load at the grid check's power factor, the battery at unity, as the loop models them)."""
    grid = GridModel.from_site(site)
    pf = grid.options.load_power_factor
    q_kvar = series["base_kw"] * np.tan(np.arccos(pf))
    rep = grid.validate({"LV": series["net_kw"]}, {"LV": q_kvar})
    i = grid.element_names("trafo").index("T-LV")
    return rep.flow.trafo_loading_percent[:, i]


@pytest.fixture(scope="module")
def runs():
    site = overloaded_site()
    opts = SimOptions(load_noise_frac=0.0)
    free = sim.simulate(site, START, DAYS, "mpc", "perfect", seed=1, options=opts)
    loops: list = []
    real = vpp.grid.loop.dispatch_ac_feasible

    def spy(*args, **kw):
        out = real(*args, **kw)
        loops.append(out[1])
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vpp.grid.loop, "dispatch_ac_feasible", spy)
        checked = sim.simulate(site, START, DAYS, "mpc", "perfect", seed=1, options=opts, grid=True)
    return site, free, checked, loops


def test_without_the_check_the_transformer_is_overloaded(runs) -> None:
    site, free, _, _ = runs
    k = free.kpis
    assert k["plan_grid_violation_steps"] is None  # the planner ran without the AC check
    assert free.series["battery_kw"].max() > 100.0  # charges as fast as it likes
    loading = _trafo_loading_percent(site, free.series)
    assert loading.max() > 110.0
    # The realised check ran regardless and agrees with the independent one above.
    assert k["grid_violation_steps"] == int((loading > 100.0 + 1e-9).sum()) > 0
    assert k["trafo_loading_max_percent"] == pytest.approx(loading.max(), rel=1e-6)
    assert [v["element"] for v in k["grid_violations"]] == ["T-LV"]
    assert k["grid_violations"][0]["intervals"] == k["grid_violation_steps"]


def test_the_check_adds_rows_and_holds_the_transformer(runs) -> None:
    site, free, checked, loops = runs
    k = checked.kpis
    assert len(loops) == len(checked.cycles) == checked.horizon.n == 20
    assert checked.grid
    # The loop bound: it added rows for T-LV and re-solved, in the cycles that needed it.
    fixed = [lp for lp in loops if lp.tightened]
    assert fixed and all(t.element == "T-LV" for lp in fixed for t in lp.tightened)
    assert all(lp.rounds >= 1 and lp.feasible for lp in fixed)
    assert all(lp.cost_of_fix_cny >= -1e-6 for lp in fixed)
    assert max(lp.cost_of_fix_cny for lp in fixed) > 0
    # Every applied interval held in the plan's AC check, and in an independent one of what
    # the park realised (perfect forecasts, no noise: realised = planned).
    assert k["grid_violation_steps"] == 0
    assert k["plan_grid_violation_steps"] == 0
    assert all(c.grid_violation is False for c in checked.cycles)
    loading = _trafo_loading_percent(site, checked.series)
    assert loading.max() <= 100.0 + 1e-6
    # The battery still charged in the valley, only slower, and holds less at 08:00.
    k8 = 16
    assert 0 < checked.series["battery_kw"][:k8].max() < free.series["battery_kw"][:k8].max()
    e8_free, e8_checked = (
        free.series["battery_e_kwh"][k8 - 1],
        checked.series["battery_e_kwh"][k8 - 1],
    )
    assert 0.2 * E_KWH < e8_checked < e8_free
    assert k["solver_failures"] == 0


class _LowForecast:
    """The truth with one load's forecast 20 % low: what a forecaster that misses a building's
    new process line would say."""

    source = "perfect, office load 20 % low"

    def __init__(self, inner, name: str):
        self.inner, self.name = inner, name

    def forecast(self, site, horizon, state):
        fc = self.inner.forecast(site, horizon, state)
        p50 = {**fc.p50, self.name: 0.8 * fc.p50[self.name]}  # the truth itself untouched
        return dataclasses.replace(fc, p50=p50, source=self.source)


def test_a_plan_without_violations_can_still_overload_the_park(monkeypatch) -> None:
    """The plan's AC check sees no violation; the park, whose office draws 25 % more than the
    forecast said, overloads its transformer, and the realised KPI says so."""
    site = overloaded_site()
    office = site.assets.base_loads[0].name
    real = sim.make_forecaster
    monkeypatch.setattr(
        sim, "make_forecaster", lambda *a, **kw: _LowForecast(real(*a, **kw), office)
    )
    opts = SimOptions(load_noise_frac=0.0)
    r = sim.simulate(site, START, DAYS, "mpc", "perfect", seed=1, options=opts, grid=True)
    k = r.kpis
    assert k["plan_grid_violation_steps"] == 0
    loading = _trafo_loading_percent(site, r.series)
    assert loading.max() > 100.5
    assert k["grid_violation_steps"] == int((loading > 100.0 + 1e-9).sum()) > 0
    assert k["grid_violations"][0]["element"] == "T-LV"
    assert k["grid_violations"][0]["worst"] == pytest.approx(loading.max(), rel=1e-6)
