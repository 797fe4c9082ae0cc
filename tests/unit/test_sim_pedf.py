"""A PEDF building's converter in the simulated park: it clips at its rating, what does not fit
is unserved load or spilled PV, and the park's energy balance stays exact, bus by bus."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_sim_site import LEVELS, ConstantPark, tiny_site
from vpp.park.model import Bus, CurtailableLoad, Profile, Site
from vpp.sim.pedf import pedf_balance
from vpp.sim.simulated_park import SimOptions, SimulatedPark

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 7, 15, tzinfo=TZ)
STEP = timedelta(minutes=15)
TOL = 1e-9


# --------------------------------------------------------------------------------------------
# The pure balance
# --------------------------------------------------------------------------------------------
def test_the_issue_case_197_kw_through_a_150_kw_converter() -> None:
    """An empty battery, 197 kW of demand and no PV: 150 kW through, 47 kW unserved."""
    out = pedf_balance(150.0, 0.0, 0.0, 197.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0)
    assert out.exchange_kw == pytest.approx(150.0)
    assert out.base_kw == pytest.approx(150.0)
    assert out.base_unserved_kw == pytest.approx(47.0)
    assert out.unserved_kw == pytest.approx(47.0)


def test_short_gives_way_pv_limit_then_battery_then_flex_then_base() -> None:
    # Demand 120 base + 40 flex (floor 24), PV limited to 10 of 30, battery asked to charge
    # 20 and able to give 15: 120 + 40 - 10 + 20 = 170 against a 100 kW converter.
    out = pedf_balance(100.0, 30.0, -10.0, 120.0, 40.0, 24.0, 40.0, 20.0, -15.0, 50.0)
    # 70 short: PV limit lifted (-20), battery 20 -> -15 (-35), flex 40 -> 24 (-16) = 71.
    assert out.pv_kw == pytest.approx(-30.0)
    assert out.battery_kw == pytest.approx(-15.0)
    assert out.flex_kw == pytest.approx(25.0)
    assert out.unserved_kw == 0.0
    assert out.exchange_kw == pytest.approx(100.0)
    # Twice the base load: everything gives way, then 80 kW of base load is not served.
    out = pedf_balance(100.0, 30.0, -10.0, 240.0, 40.0, 24.0, 40.0, 20.0, -15.0, 50.0)
    assert out.flex_kw == pytest.approx(24.0)
    assert out.base_unserved_kw == pytest.approx(240.0 + 24.0 - 30.0 - 15.0 - 100.0)
    assert out.flex_unserved_kw == 0.0
    assert out.exchange_kw == pytest.approx(100.0)


def test_long_gives_way_battery_then_flex_then_pv_spills() -> None:
    # 200 kW of PV over 10 base + 12 flex (curtailed from 20) and a battery giving 5:
    # -183 kW against a 50 kW converter: 133 too long.
    out = pedf_balance(50.0, 200.0, -200.0, 10.0, 12.0, 12.0, 20.0, -5.0, -5.0, 40.0)
    assert out.battery_kw == pytest.approx(40.0)  # -5 -> 40 (45)
    assert out.flex_kw == pytest.approx(20.0)  # back to its baseline (8)
    assert out.pv_spilled_kw == pytest.approx(133.0 - 45.0 - 8.0)
    assert out.pv_kw == pytest.approx(-200.0 + 80.0)
    assert out.exchange_kw == pytest.approx(-50.0)


def test_within_the_rating_nothing_moves() -> None:
    out = pedf_balance(100.0, 30.0, -30.0, 60.0, 10.0, 5.0, 10.0, -20.0, -50.0, 50.0)
    assert (out.pv_kw, out.battery_kw, out.base_kw, out.flex_kw) == (-30.0, -20.0, 60.0, 10.0)
    assert out.unserved_kw == out.pv_spilled_kw == 0.0
    assert out.exchange_kw == pytest.approx(20.0)


@settings(max_examples=300, deadline=None)
@given(
    conv=st.floats(1.0, 500.0),
    avail=st.floats(0.0, 600.0),
    pv_frac=st.floats(0.0, 1.0),
    base=st.floats(0.0, 600.0),
    flex_base=st.floats(0.0, 200.0),
    shed=st.floats(0.0, 1.0),
    cut=st.floats(0.0, 1.0),
    lo=st.floats(-300.0, 0.0),
    hi=st.floats(0.0, 300.0),
    ask=st.floats(0.0, 1.0),
)
def test_balance_properties(conv, avail, pv_frac, base, flex_base, shed, cut, lo, hi, ask):
    """For any input: the converter holds, the DC bus balances, every device stays within
    its limits, and unserved load and spilled PV appear only when the converter is at its
    rating."""
    floor = flex_base * (1.0 - shed)
    flex = floor + cut * (flex_base - floor)
    pv = -pv_frac * avail
    bat = lo + ask * (hi - lo)
    o = pedf_balance(conv, avail, pv, base, flex, floor, flex_base, bat, lo, hi)
    tol = 1e-9 * max(1.0, conv, avail, base)
    assert abs(o.exchange_kw) <= conv + tol
    assert o.exchange_kw == pytest.approx(o.base_kw + o.flex_kw + o.pv_kw + o.battery_kw, abs=tol)
    assert lo - tol <= o.battery_kw <= hi + tol
    assert -avail - tol <= o.pv_kw <= tol
    assert o.base_kw + o.base_unserved_kw == pytest.approx(base, abs=tol)
    assert -tol <= o.flex_kw <= flex_base + tol
    assert o.flex_kw + o.flex_unserved_kw >= min(floor, flex) - tol
    assert min(o.base_unserved_kw, o.flex_unserved_kw, o.pv_spilled_kw) >= 0.0
    assert o.pv_kw + o.pv_spilled_kw >= -avail - tol
    if o.unserved_kw > tol:
        assert o.exchange_kw == pytest.approx(conv, abs=tol)
    if o.pv_spilled_kw > tol:
        assert o.exchange_kw == pytest.approx(-conv, abs=tol)


# --------------------------------------------------------------------------------------------
# The simulated park: a day with a converter too small
# --------------------------------------------------------------------------------------------
class DayPark(SimulatedPark):
    """A simulated park whose truth is the same given day, every day (kW per interval)."""

    def __init__(self, site: Site, day: dict[str, np.ndarray], **kw):
        super().__init__(site, options=SimOptions(load_noise_frac=0.0), **kw)
        self.day = day

    def _day_truth(self, d):
        return {n: v.copy() for n, v in self.day.items()}


def tight_site() -> Site:
    """The tiny park with its PEDF building on a bus of its own (LV2), a flexible load, and a
    15 kW converter against up to 80 kW of base load and 60 kW of PV."""
    s = tiny_site()
    pe = s.assets.pedf_buildings[0]
    flex = CurtailableLoad("P1-hvac", "LV2", Profile("simbench:G1-C", 20.0), 0.3)
    pe = dataclasses.replace(
        pe,
        bus="LV2",
        converter_kw=15.0,
        pv=dataclasses.replace(pe.pv, bus="LV2", kwp=70.0, inverter_kw=60.0),
        battery=dataclasses.replace(pe.battery, bus="LV2"),
        base_load=dataclasses.replace(pe.base_load, bus="LV2"),
        flexible_load=flex,
    )
    assets = dataclasses.replace(s.assets, pedf_buildings=(pe,))
    return dataclasses.replace(s, buses=(*s.buses, Bus("LV2", 0.4)), assets=assets)


def _day() -> dict[str, np.ndarray]:
    h = np.arange(96) / 4.0
    sun = np.clip(np.sin((h - 6.0) / 12.0 * np.pi), 0.0, None)
    day = {name: np.full(96, v) for name, v in LEVELS.items()}
    day["P1-pv"] = 70.0 * sun  # 60 kW inverter: clipped at noon
    day["P1-base"] = 10.0 + 70.0 * np.exp(-(((h - 19.0) / 2.5) ** 2))  # evening peak 80 kW
    day["P1-hvac"] = 20.0 * (1.0 + 0.5 * np.sin(h / 24.0 * 2 * np.pi))
    return day


def test_a_converter_too_small_every_interval_of_a_day() -> None:
    site = tight_site()
    pe = site.assets.pedf_buildings[0]
    p = DayPark(site, _day(), start=DAY)
    rng = np.random.default_rng(5)
    for i in range(96):
        at = DAY + i * STEP
        st_ = p.read_state(at)
        sp = {"bat": float(rng.uniform(-60, 60)), "rig": float(rng.uniform(0, 12))}
        sp["P1"] = float(rng.uniform(-40, 40))  # asks beyond the converter too
        sp["P1-hvac"] = float(rng.uniform(0, 25))
        for s in st_.ev_sessions:
            sp[s.charger] = float(rng.uniform(-12, 12))
        p.apply(at, sp)
    r = p.records()
    exch = p.asset_power("P1")
    assert np.all(np.abs(exch) <= pe.converter_kw + TOL)
    # Both ways: the evening peak is short (unserved), the noon PV is long (spilled).
    assert r["unserved_kw"].max() > 1.0 and r["pv_spilled_kw"].max() > 1.0
    assert np.all(np.isclose(exch[r["unserved_kw"] > TOL], pe.converter_kw))
    assert np.all(np.isclose(exch[r["pv_spilled_kw"] > TOL], -pe.converter_kw))
    # Park energy balance, every interval: import - export = what every bus drew.
    bus = p.bus_p_kw()
    assert set(bus) == {"PCC", "LV", "LV2"}
    bus_sum = sum(bus.values())
    np.testing.assert_allclose(r["import_kw"] - r["export_kw"], bus_sum, atol=TOL)
    parts = r["base_kw"] + r["flex_kw"] + r["shiftable_kw"] + r["ev_kw"] + r["battery_kw"]
    np.testing.assert_allclose(r["net_kw"], parts - r["pv_used_kw"], atol=TOL)
    np.testing.assert_allclose(bus["LV2"], exch, atol=TOL)
    np.testing.assert_array_equal(bus["PCC"], np.zeros(96))
    # Served + unserved = demand; used + spilled <= available; per asset as in total.
    day = _day()
    served = p.asset_power("P1-base") + p.asset_unserved_kw("P1-base")
    np.testing.assert_allclose(served, day["P1-base"], atol=TOL)
    unserved = p.asset_unserved_kw("P1-base") + p.asset_unserved_kw("P1-hvac")
    np.testing.assert_allclose(unserved, r["unserved_kw"], atol=TOL)
    np.testing.assert_allclose(p.asset_pv_spilled_kw("P1-pv"), r["pv_spilled_kw"], atol=TOL)
    pv_avail = np.minimum(day["P1-pv"], 60.0)
    assert np.all(-p.asset_power("P1-pv") + p.asset_pv_spilled_kw("P1-pv") <= pv_avail + TOL)
    # The batteries never leave their power or SOC limits.
    for b in (site.assets.batteries[0], pe.battery):
        pb = p.asset_power(b.name)
        assert pb.max() <= b.p_charge_max_kw + TOL and pb.min() >= -b.p_discharge_max_kw - TOL
    assert p.battery_e_kwh["P1-bat"] >= pe.battery.e_min_kwh - TOL


def test_bus_sums_equal_the_net_import_on_the_tiny_park() -> None:
    """The stock tiny park (the PEDF building on the shared LV bus), random commands."""
    p = ConstantPark(tiny_site(), dict(LEVELS), start=DAY)
    rng = np.random.default_rng(2)
    for i in range(24):
        at = DAY + 36 * STEP + i * STEP
        p.read_state(at)
        p.apply(at, {"bat": float(rng.uniform(-60, 60)), "P1": float(rng.uniform(-60, 60))})
    r = p.records()
    np.testing.assert_allclose(sum(p.bus_p_kw().values()), r["net_kw"], atol=TOL)
    assert len(p.bus_p_kw()["LV"]) == len(p.times()) == 24
