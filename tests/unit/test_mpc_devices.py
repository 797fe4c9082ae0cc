"""Hand-checkable cases for each device feature: EV targets, V2G, DR caps, PEDF converters,
minimum run of shiftable loads."""

from datetime import time

import numpy as np
import pytest

from controllers import invariants
from controllers.mpc import MpcController
from controllers.problem import PedfInput, ShiftableWindow
from tests.unit import factory as f
from vpp.park.model import BaseLoad, PedfBuilding, Profile

TOL = 1e-4


def test_ev_intermediate_target_is_met_even_at_a_higher_price():
    s = f.session("s", 0, 4, 20.0, target_k=1, target_e_kwh=10.0)
    p = f.problem(n=4, price=[1.0, 0.2, 0.3, 0.9], evs=[(f.charger(), [s])])
    r = MpcController().dispatch(p)
    np.testing.assert_allclose(r.assets["ev1"].p_kw, [10, 10, 0, 0], atol=TOL)
    assert r.relaxed == [] and invariants.check(p, r) == []


def test_v2g_gives_back_at_most_its_dischargeable_energy():
    """Needs nothing, may give 5 kWh: discharges 5 kWh in the dearest hour, never more."""
    s = f.session("s", 0, 4, 0.0, e_dischargeable_kwh=5.0)
    p = f.problem(n=4, price=[0.5, 0.5, 2.0, 0.5], evs=[(f.charger(v2g=True), [s])])
    r = MpcController().dispatch(p)
    into = r.assets["ev1"].detail["p_to_car_kw"]
    assert np.cumsum(into).min() >= -5.0 - TOL
    assert into[2] == pytest.approx(-5.0, abs=TOL)
    assert into.sum() == pytest.approx(0.0, abs=TOL) or into.sum() >= -5.0 - TOL


def test_dr_cap_met_by_the_battery_or_relaxed_and_named():
    cap = np.array([np.inf, np.inf, 60.0, 60.0])
    bat = f.battery(e_kwh=100, p_kw=50, eta=1.0)
    p = f.problem(n=4, price=[0.5] * 4, batteries=[(bat, 100.0)], dr_max=cap)
    r = MpcController().dispatch(p)
    assert r.p_net_kw[2:].max() <= 60.0 + TOL and r.relaxed == []
    small = f.battery(e_kwh=30, p_kw=50, eta=1.0)
    p = f.problem(n=4, price=[0.5] * 4, batteries=[(small, 30.0)], dr_max=cap)
    r = MpcController().dispatch(p)
    (relax,) = [x for x in r.relaxed if x.constraint == "dr_import_cap"]
    assert set(relax.steps) <= {2, 3}
    # 80 kWh must be shed in the window and the battery holds 30: 50 kWh over the cap.
    assert (r.p_net_kw[2:] - 60.0).sum() == pytest.approx(50.0, abs=1e-3)
    assert invariants.check(p, r) == []


def _pedf(e0: float) -> tuple:
    spec = PedfBuilding(
        "pedf",
        "b1",
        converter_kw=50.0,
        pv=f.pv_array("pedf-pv", 40.0),
        battery=f.battery("pedf-bat", e_kwh=100, p_kw=40, eta=1.0),
        base_load=BaseLoad("pedf-base", "b1", Profile("simbench:G1-A", 80.0)),
    )
    return PedfInput(
        spec,
        pv_available_kw=np.zeros(4),
        base_kw=np.full(4, 70.0),
        flex_baseline_kw=np.zeros(4),
        e_init_kwh=e0,
        terminal_value_cny_per_kwh=0.0,
    )


def test_pedf_exchange_stays_within_its_converter():
    p = f.problem(n=4, price=[0.5] * 4)
    p = p.__class__(**{**p.__dict__, "pedfs": (_pedf(100.0),)})
    r = MpcController().dispatch(p)
    assert np.abs(r.assets["pedf"].p_kw).max() <= 50.0 + TOL
    # 70 kW of load behind a 50 kW converter: the battery covers at least 20 kW every hour
    # (it may give more: its energy has no value at the end here).
    assert (r.assets["pedf-bat"].p_kw <= -20.0 + TOL).all()
    assert r.relaxed == [] and invariants.check(p, r) == []
    empty = p.__class__(**{**p.__dict__, "pedfs": (_pedf(0.0),)})
    r = MpcController().dispatch(empty)
    assert {x.constraint for x in r.relaxed} == {"pedf_converter"}
    assert invariants.check(empty, r) == []


def test_shiftable_minimum_run_is_contiguous_and_at_least_minimum_power():
    """40 kWh at 10-20 kW for at least 3 hours once started: cheapest contiguous block."""
    load = f.shiftable(e=40.0, p_max=20.0, p_min=10.0, run=3)
    p = f.problem(
        n=8,
        price=[0.9, 0.3, 0.8, 0.2, 0.2, 0.3, 0.9, 0.9],
        shiftables=[(load, [ShiftableWindow(0, 8, 40.0)])],
    )
    r = MpcController().dispatch(p)
    on = r.assets["pump"].p_kw > TOL
    runs = np.diff(np.concatenate([[0], on.astype(int), [0]]))
    starts, ends = np.nonzero(runs == 1)[0], np.nonzero(runs == -1)[0]
    assert len(starts) == 1 and ends[0] - starts[0] >= 3
    assert r.assets["pump"].p_kw[on].min() >= 10.0 - TOL
    assert r.assets["pump"].p_kw.sum() == pytest.approx(40.0, abs=TOL)
    assert time(0) == load.window_start
