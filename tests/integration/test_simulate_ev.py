"""EV service in closed loop: a DC charger that may not run below 6 kW still finishes a car
whose last need is smaller than one interval at that power (the safety layer sends a setpoint
under half the minimum power as 0)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.park.model import EvCharger, EvSession
from vpp.sim import closed_loop as sim
from vpp.sim.simulated_park import SimOptions

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 18, 0, tzinfo=TZ)


def dc_site(*sessions: EvSession):
    s = tiny_site(horizon_steps=16)
    chargers = (EvCharger("DC1", "LV", 60.0, p_min_kw=6.0), EvCharger("DC2", "LV", 60.0, 6.0))
    return dataclasses.replace(
        s,
        assets=dataclasses.replace(s.assets, ev_chargers=chargers),
        ev_fleets=(),
        ev_sessions=sessions,
    )


def _run(controller: str, *sessions: EvSession):
    site = dc_site(*sessions)
    r = sim.simulate(site, START, 0.25, controller, "perfect", options=SimOptions(0.0))
    return {s.session_id: s for s in r.sessions}, r.kpis


@pytest.mark.parametrize("controller", ["uncontrolled", "rule", "mpc"])
def test_a_car_needing_less_than_one_interval_at_minimum_power_is_served(controller) -> None:
    """0.55 kWh would be planned at 2.3 kW for one interval, under the 6 kW minimum."""
    h = timedelta(hours=1)
    topup = EvSession("topup", "DC1", START + h, START + 2 * h, 0.55)
    done, k = _run(controller, topup)
    assert done["topup"].delivered_kwh == pytest.approx(0.55, abs=1e-6)
    assert k["ev_unmet_kwh"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("controller", ["uncontrolled", "rule", "mpc"])
def test_the_last_tail_of_a_long_charge_is_served(controller) -> None:
    """86.05 kWh = 6 intervals at 60 kW (85.5 kWh into the car) and a 0.55 kWh tail."""
    h = timedelta(hours=1)
    truck = EvSession("truck", "DC2", START + h, START + 5 * h, 86.05)
    done, k = _run(controller, truck)
    assert done["truck"].delivered_kwh == pytest.approx(86.05, abs=1e-6)
    assert k["ev_unmet_kwh"] == pytest.approx(0.0, abs=1e-6)
