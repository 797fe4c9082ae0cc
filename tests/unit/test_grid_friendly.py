"""Plans that do not stack peaks (issue #21 item 4, controllers.grid_friendly): on a flat cheap
block every plan that charges inside it costs the same; the grid-friendly term picks the one
that keeps the park under its own peak, for no money, the same one every time (a warm and a
cold solve agree), and the optimiser's term is what the numpy yardstick computes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controllers import costs, grid_friendly
from controllers.dr_choice import NOT_MONEY
from controllers.mpc import MpcController
from controllers.problem import DrEventRow
from tests.unit import factory as f

# Twelve hours: six cheap (0.2 CNY/kWh), six dear (1.0); the park draws 300 kW, 500 kW in its
# own peak hour (hour 9). Three identical empty batteries of 100 kWh / 100 kW, lossless: each
# fills in the cheap block and gives it back in the dear one. Charging all three at once takes
# 300 kW for an hour (a 600 kW peak); spread over the block, 50 kW.
BASE_KW = [300.0] * 9 + [500.0] + [300.0] * 2
PRICE = [0.2] * 6 + [1.0] * 6


def _problem(spread: float = 0.0, ramp: float = 0.0):
    bats = [(f.battery(f"bat{i}", e_kwh=100.0, p_kw=100.0, eta=1.0), 0.0) for i in range(3)]
    p = f.problem(n=12, price=PRICE, base_kw=BASE_KW, batteries=bats, terminal=0.9)
    return dataclasses.replace(p, peak_spread_cny_per_kw=spread, import_ramp_cny_per_kw=ramp)


def _energy_cny(p, r) -> float:
    return float(p.dt_h * p.price_import_cny_per_kwh @ r.p_import_kw)


def test_without_the_term_the_batteries_stack_and_with_it_they_spread_for_no_money():
    p0, p1 = _problem(), _problem(spread=0.05, ramp=0.001)
    r0, r1 = MpcController().dispatch(p0), MpcController().dispatch(p1)
    assert r0.ok and r1.ok
    # Each battery is full when the dear block begins, in both plans.
    for r in (r0, r1):
        for i in range(3):
            assert r.assets[f"bat{i}"].e_kwh[6] == pytest.approx(100.0, abs=1e-6)
    # Spread: 300 kWh over six cheap hours on top of 300 kW, the lowest peak any plan that
    # fills the batteries can have (the dear block is lower: the batteries give back there);
    # without the term the solver's vertex puts more into some hours.
    np.testing.assert_allclose(r1.p_import_kw[:6], 350.0, atol=1e-6)
    assert r1.p_import_kw.max() == pytest.approx(350.0, abs=1e-6)
    assert r0.p_import_kw.max() > 350.0 + 1.0
    # The same money: every cheap hour costs the same.
    assert _energy_cny(p1, r1) == pytest.approx(_energy_cny(p0, r0), rel=1e-9)
    assert r1.objective_cost_cny == pytest.approx(r0.objective_cost_cny, abs=1e-6)


def test_the_day_peak_weight_alone_gives_the_lowest_peak_of_the_cheapest_plans():
    p0, p = _problem(), _problem(spread=0.05)
    r0, r = MpcController().dispatch(p0), MpcController().dispatch(p)
    assert r.ok
    assert r.p_import_kw.max() == pytest.approx(350.0, abs=1e-6)
    assert _energy_cny(p, r) == pytest.approx(_energy_cny(p0, r0), rel=1e-9)


@pytest.mark.parametrize(("spread", "ramp"), [(0.0, 0.0), (0.0, 0.001), (0.05, 0.001)])
def test_the_optimisers_term_equals_the_yardstick(spread, ramp):
    p = _problem(spread, ramp)
    r = MpcController().dispatch(p)
    ev = costs.evaluate(p, r)
    assert ev["grid_friendly"] == pytest.approx(r.terms_cny["grid_friendly"], rel=1e-6, abs=1e-9)
    assert ev["grid_friendly"] > 0.0


def test_hand_computed_term_on_a_given_schedule():
    p = _problem(spread=0.05, ramp=0.001)
    imp = np.array(BASE_KW) + np.array([50.0] * 6 + [0.0] * 6)
    tie = grid_friendly.TIE_BREAK_CNY_PER_KWH * np.arange(12) / 11
    # one day: its peak 500 kW x 0.05; ramps: 350->300 (50), 300->500 (200), 500->300 (200)
    expected = float(tie @ imp) + 0.05 * 500.0 + 0.001 * (50.0 + 200.0 + 200.0)
    assert grid_friendly.cost_cny(p, imp) == pytest.approx(expected, rel=1e-12)


def test_each_local_day_has_its_own_peak():
    p = dataclasses.replace(_problem(spread=1.0), day_index=np.array([0] * 6 + [1] * 6))
    imp = np.array([100.0] * 6 + [400.0] * 6)
    tie = float(grid_friendly.tie_break_cny_per_kwh(12) @ imp)
    assert grid_friendly.cost_cny(p, imp) == pytest.approx(tie + 100.0 + 400.0, rel=1e-12)


@pytest.mark.parametrize("ramp", [0.001, 0.01])
def test_a_warm_and_a_cold_solve_of_the_same_problem_send_the_same_setpoints(ramp):
    """Three identical batteries: without the term any split of the charging between them
    is optimal and the simplex vertex depends on where it started. The ramp weight (the
    default's, and more) makes the optimum one plan; the tie-breaks alone, at 1e-5 CNY/kWh,
    are below the solver's tolerances and do not (they order what the ramp leaves equal)."""
    warm = MpcController()
    for price in ([0.2] * 6 + [1.0] * 6, [1.0] * 6 + [0.2] * 6, PRICE):
        p = dataclasses.replace(
            _problem(ramp=ramp), price_import_cny_per_kwh=np.asarray(price, dtype=float)
        )
        r_warm = warm.dispatch(p)
    r_cold = MpcController().dispatch(p)
    for i in range(3):
        np.testing.assert_allclose(
            r_warm.assets[f"bat{i}"].p_kw, r_cold.assets[f"bat{i}"].p_kw, atol=1e-4
        )


def test_new_values_rebuild_nothing_and_new_weights_rebuild_once():
    """The weights are settings, constants of the model (they multiply variables whose bounds
    are Parameters: DPP forbids a Parameter there); the day masks and margins are values."""
    ctrl = MpcController()
    ctrl.dispatch(_problem(ramp=0.001))
    shifted = dataclasses.replace(
        _problem(ramp=0.001),
        price_import_cny_per_kwh=np.asarray(PRICE[::-1], dtype=float),
        day_index=np.array([0] * 6 + [1] * 6),
    )
    ctrl.dispatch(shifted)
    assert ctrl.builds == 1
    ctrl.dispatch(_problem(ramp=0.002, spread=0.1))
    assert ctrl.builds == 2
    ctrl.dispatch(_problem())
    assert ctrl.builds == 3


def test_the_term_is_a_preference_not_money():
    assert "grid_friendly" in NOT_MONEY
    r = MpcController().dispatch(_problem(spread=0.05, ramp=0.001))
    money = sum(v for k, v in r.terms_cny.items() if k not in ("penalties", "grid_friendly"))
    assert r.objective_cost_cny == pytest.approx(money, abs=1e-6)


@pytest.mark.parametrize("case", ["battery", "pv"])
def test_the_ramp_weight_never_buys_a_smoother_net_load_by_burning_energy(case):
    """Where energy is worth nothing (a PV surplus exported at 0 CNY/kWh, no degradation
    cost), smoothing the export by charging and discharging a full lossy battery at once, or
    by curtailing PV, would lower the ramp for next to nothing; the term's throughput and
    curtailment costs make either dearer than the ramp it saves."""
    n = 8
    pv = np.array([0.0, 300.0, 0.0, 300.0, 0.0, 300.0, 0.0, 0.0])  # a spiky surplus
    bats = []
    if case == "battery":  # full, its energy worth keeping: it can only burn the surplus
        bats = [(f.battery("bat", e_kwh=1000.0, p_kw=200.0, eta=0.8), 1000.0)]
    p = f.problem(
        n=n,
        price=[0.5] * n,
        base_kw=[100.0] * n,
        batteries=bats,
        pv=[(f.pv_array("pv", kw=300.0, curtailable=True), pv)],
        terminal=1.0,
    )
    p = dataclasses.replace(p, import_ramp_cny_per_kw=0.01)
    r = MpcController().dispatch(p)
    assert r.ok
    if case == "battery":
        d = r.assets["bat"].detail
        both = np.minimum(d["p_charge_kw"], d["p_discharge_kw"])
        assert both.max() == pytest.approx(0.0, abs=1e-6)
    curtailed = pv + r.assets["pv"].p_kw
    assert curtailed.max() == pytest.approx(0.0, abs=1e-6)


def test_the_step_a_dr_event_asks_for_is_not_a_ramp():
    owned = np.array([False] * 4 + [True] * 4 + [False] * 4)
    p = dataclasses.replace(_problem(ramp=1.0), dr_rows=(DrEventRow("e1", 1.0, owned),))
    assert grid_friendly.ramp_on(p).tolist() == [1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1]
    net = np.array([300.0] * 4 + [100.0] * 4 + [300.0] * 4)  # the event's 200 kW step
    tie = float(grid_friendly.tie_break_cny_per_kwh(12) @ net)
    assert grid_friendly.cost_cny(p, net) == pytest.approx(tie, rel=1e-12)
