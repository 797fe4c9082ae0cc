"""Physics of the simulated park, checked by hand on a park with constant truth."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import LEVELS, ConstantPark, tiny_site
from vpp.sim.simulated_park import SimOptions

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 15, 9, 0, tzinfo=TZ)
STEP = timedelta(minutes=15)


def park(**kw) -> ConstantPark:
    return ConstantPark(tiny_site(), dict(LEVELS), start=T0, **kw)


def test_battery_efficiency_and_soc_bounds() -> None:
    p = park()
    p.read_state(T0)
    e0 = p.battery_e_kwh["bat"]  # 50 kWh (soc_init 0.5 of 100)
    p.apply(T0, {"bat": 40.0})
    assert p.battery_e_kwh["bat"] == pytest.approx(e0 + 0.95 * 40.0 * 0.25)
    # Asking far beyond the power and the SOC ceiling: clamped to both.
    for i in range(1, 12):
        p.apply(T0 + i * STEP, {"bat": 500.0})
    assert p.battery_e_kwh["bat"] == pytest.approx(95.0)  # soc_max 0.95
    assert p.asset_power("bat").max() <= 50.0 + 1e-9
    p.apply(T0 + 12 * STEP, {"bat": -30.0})
    assert p.battery_e_kwh["bat"] == pytest.approx(95.0 - 30.0 * 0.25 / 0.95)


def test_pv_limit_and_curtailable_bounds() -> None:
    p = park()
    p.read_state(T0)
    p.apply(T0, {"PV1": -25.0, "hvac": 0.0})  # limit 25 kW; a cap of 0 is floored at 70 %
    assert p.asset_power("PV1")[-1] == pytest.approx(-25.0)
    assert p.asset_power("hvac")[-1] == pytest.approx(40.0 * 0.7)
    p.apply(T0 + STEP, {})  # no command: all PV, the full baseline
    assert p.asset_power("PV1")[-1] == pytest.approx(-60.0)
    assert p.asset_power("hvac")[-1] == pytest.approx(40.0)
    rec = p.records()
    assert rec["pv_available_kw"][0] == pytest.approx(80.0)
    assert rec["pv_used_kw"][0] == pytest.approx(25.0 + 20.0)


def test_pedf_battery_follows_the_exchange() -> None:
    p = park()
    p.read_state(T0)
    # Own load 25 - PV 20 = 5 kW; an exchange of 15 kW makes the battery charge 10 kW.
    p.apply(T0, {"P1": 15.0, "P1-bat": -20.0})
    assert p.asset_power("P1-bat")[-1] == pytest.approx(10.0)
    assert p.asset_power("P1")[-1] == pytest.approx(15.0)
    # An exchange beyond the battery's power: the battery saturates at 20 kW.
    p.apply(T0 + STEP, {"P1": 50.0})
    assert p.asset_power("P1-bat")[-1] == pytest.approx(20.0)


def test_energy_balance_every_interval() -> None:
    p = park()
    rng = np.random.default_rng(1)
    for i in range(40):
        at = T0 + i * STEP
        st = p.read_state(at)
        sp = {"bat": float(rng.uniform(-60, 60)), "P1": float(rng.uniform(-60, 60))}
        for s in st.ev_sessions:
            sp[s.charger] = float(rng.uniform(-12, 12))
        sp["rig"] = float(rng.uniform(0, 12))
        p.apply(at, sp)
    r = p.records()
    parts = r["base_kw"] + r["flex_kw"] + r["shiftable_kw"] + r["ev_kw"] + r["battery_kw"]
    np.testing.assert_allclose(r["net_kw"], parts - r["pv_used_kw"], atol=1e-9)
    np.testing.assert_allclose(r["import_kw"] - r["export_kw"], r["net_kw"], atol=1e-9)
    assert r["shiftable_kw"].sum() * 0.25 <= 20.0 + 1e-9  # never more than its energy


def test_ev_sessions_known_only_once_plugged_and_limited_by_need() -> None:
    p = ConstantPark(tiny_site(), dict(LEVELS), start=T0.replace(hour=0))
    day = T0.replace(hour=0)
    arrivals = []
    for i in range(96):
        at = day + i * STEP
        st = p.read_state(at)
        for s in st.ev_sessions:
            assert s.arrival <= at < s.departure  # no future arrival is revealed
        arrivals += [s.session_id for s in st.ev_sessions]
        p.apply(at, {s.charger: 50.0 for s in st.ev_sessions})
    assert arrivals, "the seeded fleet should bring cars"
    p.read_state(day + timedelta(days=1, hours=12))
    for s in p.sessions_done():
        assert s.delivered_kwh <= s.requested_kwh + 1e-9
    assert p.asset_power("EV1").max() <= 7.0 + 1e-9


def test_stale_readings_repeat_the_last_value_and_are_flagged() -> None:
    p = park(options=SimOptions(load_noise_frac=0.0, p_stale=0.5))
    flagged = 0
    for i in range(20):
        at = T0 + i * STEP
        st = p.read_state(at)
        flagged += len(st.stale_assets)
        p.apply(at, {"bat": 10.0})
    assert flagged > 0
    q = park(options=SimOptions(load_noise_frac=0.0, p_stale=0.5))
    assert [q.read_state(T0 + i * STEP).stale_assets for i in range(5)] == [
        park(options=SimOptions(load_noise_frac=0.0, p_stale=0.5))
        .read_state(T0 + i * STEP)
        .stale_assets
        for i in range(5)
    ]


def test_month_peak_resets_at_a_new_month() -> None:
    end = datetime(2026, 7, 31, 23, 45, tzinfo=TZ)
    p = ConstantPark(tiny_site(), dict(LEVELS), start=end)
    p.read_state(end)
    p.apply(end, {"bat": 50.0})
    assert p.month_peak_import_kw > 0
    assert p.read_state(end + STEP).month_peak_import_kw == 0.0


def test_a_car_plugged_in_before_the_start_charged_as_the_park_without_the_vpp() -> None:
    """The park ran uncontrolled before its clock started (as the history the simulation is
    primed with): a car that arrived at 06:00 has had EV1's 7 kW (eta 0.95 by default) for
    three hours by 09:00, 19.95 kWh of the 30 it needs; one that arrives later has nothing."""
    import dataclasses

    from vpp.park.model import EvSession

    early = EvSession("early", "EV1", T0 - timedelta(hours=3), T0 + timedelta(hours=4), 30.0)
    late = EvSession("late", "EV2", T0 + STEP, T0 + timedelta(hours=4), 10.0)
    site = dataclasses.replace(tiny_site(), ev_sessions=(early, late), ev_fleets=())
    p = ConstantPark(site, dict(LEVELS), start=T0)
    eta = site.assets.ev_chargers[0].eta
    got = {s.session_id: s.e_delivered_kwh for s in p.read_state(T0).ev_sessions}
    assert got["early"] == pytest.approx(7.0 * eta * 3.0)
    assert got.get("late", 0.0) == 0.0
