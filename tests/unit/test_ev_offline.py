"""The offline optimum of a charger fleet's bill (controllers.ev_offline): hand-computed cases,
and a property: no schedule that serves every session bills less than the bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.ev_offline import OfflineSession, offline_bill_bound


def test_energy_goes_to_the_cheap_hours_and_the_peak_is_spread_when_it_is_charged():
    """Four hours at 1, 2, 1, 2 CNY/kWh, one car for 10 kWh, 10 kW charger: without a demand
    charge 10 CNY (all in cheap hours); at 1 CNY per kW of peak, 5 kW in each cheap hour:
    10 + 5 = 15 CNY (spreading over all four would cost 15 + 2.5)."""
    price = np.array([1.0, 2.0, 1.0, 2.0])
    s = [OfflineSession(0, 4, 10.0, 10.0)]
    b = offline_bill_bound(np.zeros(4), price, 1.0, s, demand_cny_per_kw=0.0)
    assert b.bill_cny == pytest.approx(10.0, abs=1e-6)
    b = offline_bill_bound(np.zeros(4), price, 1.0, s, demand_cny_per_kw=1.0)
    assert b.bill_cny == pytest.approx(15.0, abs=1e-6)
    assert b.peak_import_kw == pytest.approx(5.0, abs=1e-6)
    assert b.energy_cost_cny + b.demand_charge_cny == pytest.approx(b.bill_cny)


def test_base_load_efficiency_import_limit_and_a_metered_peak_enter_the_bill():
    """Base 4 kW every hour, price 1, a car for 9 kWh at 90 % (10 kWh from the grid) within a
    6.6 kW connection, a peak of 7 kW already metered: the car fits (2.5 kW an hour, 6.5 kW
    with the base), so the peak is the metered 7 kW: 16 + 10 + 7 = 33 CNY."""
    s = [OfflineSession(0, 4, 10.0, 9.0, eta=0.9)]
    b = offline_bill_bound(
        np.full(4, 4.0), np.ones(4), 1.0, s, 1.0, import_max_kw=6.6, peak_floor_kw=7.0
    )
    assert b.bill_cny == pytest.approx(33.0, abs=1e-6)
    assert b.peak_import_kw == pytest.approx(7.0, abs=1e-6)


def test_a_session_full_power_cannot_serve_is_asked_for_what_full_power_gives():
    """One hour at 5 kW cannot give 20 kWh: the bound asks for 5 kWh and stays finite."""
    b = offline_bill_bound(np.zeros(2), np.ones(2), 1.0, [OfflineSession(0, 1, 5.0, 20.0)], 0.0)
    assert b.status == "optimal"
    assert b.delivered_kwh == pytest.approx(5.0)
    assert b.bill_cny == pytest.approx(5.0, abs=1e-6)


def test_no_sessions_bill_the_base_load():
    b = offline_bill_bound(np.array([1.0, 3.0]), np.array([2.0, 1.0]), 0.5, [], 2.0)
    assert b.bill_cny == pytest.approx(0.5 * (2 + 3) + 2 * 3.0)


@st.composite
def fleets(draw):
    n = draw(st.integers(2, 8))
    price = np.array(draw(st.lists(st.floats(0.1, 2.0), min_size=n, max_size=n)))
    base = np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n)))
    sessions = []
    schedule = np.zeros(n)
    for _ in range(draw(st.integers(1, 4))):
        a = draw(st.integers(0, n - 1))
        d = draw(st.integers(a + 1, n))
        p_max = draw(st.floats(1.0, 10.0))
        # Some schedule within the charger's limit; the session asks for what it delivers.
        p = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=d - a, max_size=d - a)))
        p = p * p_max
        schedule[a:d] += p
        sessions.append(OfflineSession(a, d, p_max, float(p.sum()) * 0.9, eta=0.9))
    rate = draw(st.floats(0.0, 3.0))
    return price, base, sessions, schedule, rate


@settings(max_examples=60, deadline=None)
@given(fleets())
def test_no_schedule_that_serves_every_session_bills_less_than_the_bound(fleet):
    price, base, sessions, schedule, rate = fleet
    imp = base + schedule
    bill = float(price @ imp) + rate * float(imp.max())
    b = offline_bill_bound(base, price, 1.0, sessions, rate)
    assert b.status == "optimal"
    assert b.bill_cny <= bill + 1e-5 * max(1.0, bill)
