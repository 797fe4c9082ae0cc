"""A network row's forecast-error margin is priced, its limit is not (controllers.mpc):
a car is served out of the margin before it is shed, never out of the limit, and the
margin is left alone when nothing needs it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controllers.mpc import MpcController
from controllers.problem import NetworkConstraint
from tests.unit import factory as f

N = 4


def _problem(need_kwh: float, limit_kw: float, margin_kw: float):
    # one bus: 100 kW of base load and a car; the row holds the bus under limit_kw, of
    # which margin_kw is the forecast-error margin (the row itself is limit - margin)
    evs = [(f.charger("ev1", p_max=50.0), [f.session("s", 0, N, need_kwh, 50.0)])]
    p = f.problem(n=N, step_h=0.25, price=[0.5] * N, base_kw=[100.0] * N, evs=evs)
    row = NetworkConstraint(
        "T1 trafo_loading r1", "T1", np.array([1.0]), np.full(N, limit_kw - margin_kw),
        np.full(N, margin_kw),
    )  # fmt: skip
    return dataclasses.replace(p, network=(row,))


def _ev_kwh(r) -> float:
    return float(np.sum(r.assets["ev1"].p_kw)) * 0.25


def test_a_car_is_served_out_of_the_margin_not_out_of_the_limit() -> None:
    # 10 kW of room under the row for the hour (10 kWh), 20 kW more inside the margin: the
    # car needs 20 kWh
    r = MpcController().dispatch(_problem(need_kwh=20.0, limit_kw=130.0, margin_kw=20.0))
    assert r.ok and not r.relaxed
    assert _ev_kwh(r) == pytest.approx(20.0, abs=1e-4)  # served in full
    bus = np.asarray(r.bus_p_kw["b1"])
    assert bus.max() <= 130.0 + 1e-6  # never beyond the limit itself
    # the margin it used (10 kWh) is priced
    assert r.terms_cny["margin_shortfall"] == pytest.approx(500.0 * 10.0, rel=1e-4)


def test_what_no_margin_can_hold_gives_way_at_the_limit_and_says_so() -> None:
    r = MpcController().dispatch(_problem(need_kwh=40.0, limit_kw=130.0, margin_kw=20.0))
    assert _ev_kwh(r) == pytest.approx(30.0, abs=1e-3)  # the limit: 30 kW for the hour
    assert {x.constraint for x in r.relaxed} == {"ev_energy"}
    assert np.asarray(r.bus_p_kw["b1"]).max() <= 130.0 + 1e-6


def test_a_margin_nothing_needs_is_left_alone() -> None:
    r = MpcController().dispatch(_problem(need_kwh=5.0, limit_kw=130.0, margin_kw=20.0))
    assert _ev_kwh(r) == pytest.approx(5.0, abs=1e-4)
    assert r.terms_cny["margin_shortfall"] == pytest.approx(0.0, abs=1e-6)
    assert np.asarray(r.bus_p_kw["b1"]).max() <= 110.0 + 1e-6
