"""Golden cases small enough to check by hand, with explicit tolerances."""

import numpy as np
import pytest

from controllers import costs, invariants
from controllers.grid_friendly import BATTERY_TIE_CNY_PER_KWH, TIE_BREAK_CNY_PER_KWH
from controllers.mpc import MpcController
from tests.unit import factory as f

TOL_CNY = 1e-4
TOL_KW = 1e-4
# The objective also holds the grid-friendly tie-breaks (controllers.grid_friendly), at most
# this much per kWh imported and per kWh through a battery: a preference, not money
# (``objective_cost_cny`` leaves it out).


def _money(r) -> float:
    """The objective's money, and the check that only the tie-breaks separate the two."""
    kwh = float(r.p_import_kw.sum())  # 1 h steps
    through = sum(
        float(np.abs(s.detail["p_charge_kw"]).sum() + np.abs(s.detail["p_discharge_kw"]).sum())
        for s in r.assets.values()
        if "p_charge_kw" in s.detail
    )
    bound = TIE_BREAK_CNY_PER_KWH * kwh + BATTERY_TIE_CNY_PER_KWH * through + 1e-9
    assert 0.0 <= r.objective_preference <= bound
    return r.objective_cost_cny


def test_one_battery_two_tier_arbitrage():
    """4 x 1 h, price 0.2 then 1.0 CNY/kWh, base load 100 kW; battery 100 kWh, 50 kW, eta 0.9
    each way, empty at the start, no terminal value. By hand: charge 50 kW in both cheap hours
    (stores 2 x 50 x 0.9 = 90 kWh), give back 90 x 0.9 = 81 kWh in the dear hours.
    Cost = 0.2 x (150 + 150) + 1.0 x (200 - 81) = 60 + 119 = 179 CNY."""
    bat = f.battery(e_kwh=100, p_kw=50, eta=0.9)
    p = f.problem(n=4, batteries=[(bat, 0.0)])
    r = MpcController().dispatch(p)
    assert r.status == "optimal"
    assert _money(r) == pytest.approx(179.0, abs=TOL_CNY)
    assert r.terms_cny["energy_import"] == pytest.approx(179.0, abs=TOL_CNY)
    s = r.assets["bat"]
    np.testing.assert_allclose(s.detail["p_charge_kw"][:2], [50, 50], atol=TOL_KW)
    np.testing.assert_allclose(s.e_kwh[:3], [0, 45, 90], atol=TOL_KW)
    assert s.e_kwh[-1] == pytest.approx(0.0, abs=TOL_KW)
    # Grid-side power: the 90 kWh stored come back as 81 kWh at the terminal.
    assert s.detail["p_discharge_kw"][2:].sum() == pytest.approx(81.0, abs=TOL_KW)
    assert invariants.check(p, r) == []


def test_demand_charge_peak_shaving():
    """Flat 0.5 CNY/kWh, 10 CNY/kW demand charge, load 100/300/100/100 kW; battery holds 90
    kWh (81 kWh deliverable at eta 0.9), 50 kW. Best: shave the 300 kW hour by 50 kW (peak
    250) and deliver the other 31 kWh anywhere. Cost = 0.5 x (600 - 81) + 10 x 250 = 2759.5."""
    bat = f.battery(e_kwh=100, p_kw=50, eta=0.9)
    p = f.problem(
        n=4,
        price=[0.5] * 4,
        base_kw=[100, 300, 100, 100],
        batteries=[(bat, 90.0)],
        demand_charge=10.0,
    )
    r = MpcController().dispatch(p)
    assert _money(r) == pytest.approx(2759.5, abs=TOL_CNY)
    assert r.p_import_kw.max() == pytest.approx(250.0, abs=TOL_KW)
    assert r.terms_cny["demand_charge"] == pytest.approx(2500.0, abs=TOL_CNY)


def test_month_peak_already_higher_costs_nothing_more():
    """A new peak below the month's peak so far adds no demand charge."""
    p = f.problem(
        n=4, price=[0.5] * 4, base_kw=[100, 300, 100, 100], demand_charge=10.0, month_peak=400.0
    )
    r = MpcController().dispatch(p)
    assert r.terms_cny["demand_charge"] == pytest.approx(0.0, abs=TOL_CNY)
    assert _money(r) == pytest.approx(300.0, abs=TOL_CNY)


def test_ev_charges_in_the_cheap_hours_before_departure():
    """An EV needs 20 kWh between hours 0 and 4 at 10 kW, eta 1: it charges in the two
    cheapest hours of its stay."""
    p = f.problem(
        n=4, price=[1.0, 0.2, 0.3, 0.9], evs=[(f.charger(), [f.session("s1", 0, 4, 20.0)])]
    )
    r = MpcController().dispatch(p)
    np.testing.assert_allclose(r.assets["ev1"].p_kw, [0, 10, 10, 0], atol=TOL_KW)
    assert r.relaxed == []


def test_measured_soc_below_minimum_is_relaxed_and_reported():
    """A battery measured at 5 kWh with a 20 kWh minimum: not infeasible; the SOC bound is
    relaxed, reported, and the battery charges back as fast as it can."""
    bat = f.battery(e_kwh=100, p_kw=10, eta=1.0, soc_min=0.2, deg=0.01)  # unique optimum
    p = f.problem(n=4, price=[1.0] * 4, batteries=[(bat, 5.0)])
    r = MpcController().dispatch(p)
    assert r.ok
    relaxed = {(x.constraint, x.asset) for x in r.relaxed}
    assert ("soc_min", "bat") in relaxed
    np.testing.assert_allclose(r.assets["bat"].detail["p_charge_kw"][:2], [10, 5], atol=TOL_KW)
    assert invariants.check(p, r) == []


def test_terms_agree_with_the_numpy_yardstick():
    bat = f.battery(e_kwh=100, p_kw=50, eta=0.92, deg=0.05)
    pv = f.pv_array()
    p = f.problem(
        n=6,
        price=[0.3, 0.3, 1.2, 1.2, 0.6, 0.6],
        base_kw=[80, 60, 120, 140, 90, 70],
        batteries=[(bat, 30.0)],
        pv=[(pv, np.array([0, 40, 90, 100, 30, 0.0]))],
        evs=[(f.charger(), [f.session("s1", 1, 5, 25.0)])],
        demand_charge=3.0,
        export_price=0.4,
        terminal=0.5,
    )
    r = MpcController().dispatch(p)
    ev = costs.evaluate(p, r)
    for k, v in ev.items():
        assert r.terms_cny[k] == pytest.approx(v, abs=1e-4), k


def test_peak_margin_keeps_forecast_error_below_the_months_peak():
    """Load 80 kW, month peak so far 100 kW, cheap then dear hours, 10 CNY/kW demand charge.
    Without a margin the battery charges 20 kW in the cheap hours (up to the month's peak, at
    no charge); with a 10 kW margin against forecast error it charges only 10 kW, because
    each further kW would cost 10 CNY of demand charge for about 1.2 CNY of arbitrage."""
    bat = f.battery(e_kwh=200, p_kw=50, eta=0.9)

    def charge(margin: float) -> np.ndarray:
        p = f.problem(
            n=4,
            base_kw=[80.0] * 4,
            batteries=[(bat, 0.0)],
            demand_charge=10.0,
            month_peak=100.0,
        )
        p = p.__class__(**{**p.__dict__, "peak_margin_kw": np.full(4, margin)})
        r = MpcController().dispatch(p)
        assert r.terms_cny["demand_charge"] == pytest.approx(0.0, abs=TOL_CNY)
        return r.assets["bat"].detail["p_charge_kw"][:2]

    np.testing.assert_allclose(charge(0.0), [20, 20], atol=TOL_KW)
    np.testing.assert_allclose(charge(10.0), [10, 10], atol=TOL_KW)
