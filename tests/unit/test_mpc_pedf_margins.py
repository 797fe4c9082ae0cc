"""PEDF margins for forecast error: converter rating kept free and a battery reserve ahead of
the hours where the converter cannot carry a load above forecast; both priced in the plan's
term ``margin_shortfall``, and the optimiser's terms agree with the numpy yardstick."""

import dataclasses

import numpy as np
import pytest

from controllers import costs, invariants
from controllers.mpc import MpcController
from controllers.problem import PedfInput
from tests.unit import factory as f
from vpp.park.model import BaseLoad, PedfBuilding, Profile

TOL = 1e-4


def _pedf(base_kw, e0: float, **margins) -> PedfInput:
    spec = PedfBuilding(
        "pedf",
        "b1",
        converter_kw=50.0,
        pv=f.pv_array("pedf-pv", 40.0),
        battery=f.battery("pedf-bat", e_kwh=100, p_kw=40, eta=1.0),
        base_load=BaseLoad("pedf-base", "b1", Profile("simbench:G1-A", 80.0)),
    )
    n = len(base_kw)
    return PedfInput(
        spec,
        pv_available_kw=np.zeros(n),
        base_kw=np.asarray(base_kw, dtype=float),
        flex_baseline_kw=np.zeros(n),
        e_init_kwh=e0,
        terminal_value_cny_per_kwh=0.0,
        **margins,
    )


def _problem(pedf: PedfInput, price) -> object:
    p = f.problem(n=len(price), price=price)
    return dataclasses.replace(p, pedfs=(pedf,))


def test_the_converter_margin_keeps_rating_free_while_the_battery_can_cover():
    # 45 kW of load behind a 50 kW converter, 10 kW kept free: the battery gives 5 kW.
    pe = _pedf([45.0] * 4, 50.0, converter_margin_import_kw=np.full(4, 10.0))
    p = _problem(pe, [0.5] * 4)
    r = MpcController().dispatch(p)
    assert r.assets["pedf"].p_kw.max() <= 40.0 + TOL
    assert r.terms_cny["margin_shortfall"] == pytest.approx(0.0, abs=TOL)
    assert invariants.check(p, r) == []
    # With an empty battery the margin gives way (priced), the rating does not.
    empty = _problem(dataclasses.replace(pe, e_init_kwh=0.0), [0.5] * 4)
    r = MpcController().dispatch(empty)
    assert r.assets["pedf"].p_kw.max() <= 50.0 + TOL
    assert r.terms_cny["margin_shortfall"] > 0
    assert "pedf_converter" not in {x.constraint for x in r.relaxed}


def test_the_reserve_keeps_energy_for_the_converter_bound_hours():
    # Dear hours first, then cheap hours where the load exceeds the converter by 10 kW (P50)
    # and may exceed it by 5 kW more: without a reserve the battery holds exactly the 40 kWh
    # P50 needs there (no charging at the dear price); with it, the 5 kWh an hour of error it
    # alone would have to give are kept on top, accumulated over the stretch.
    base = [30.0, 30.0, 60.0, 60.0, 60.0, 60.0]
    price = [1.2, 1.2, 0.3, 0.3, 0.3, 0.3]
    reserve = np.array([0.0, 0.0, 5.0, 10.0, 15.0, 20.0])
    plain = _problem(_pedf(base, 40.0), price)
    kept = _problem(_pedf(base, 40.0, e_reserve_kwh=reserve), price)
    r0, r1 = MpcController().dispatch(plain), MpcController().dispatch(kept)
    e_min = kept.pedfs[0].spec.battery.e_min_kwh
    assert (r1.assets["pedf-bat"].e_kwh[1:] >= e_min + reserve - TOL).all()
    assert r1.terms_cny["margin_shortfall"] == pytest.approx(0.0, abs=TOL)
    # The reserve costs money, and the plan says so in its terms.
    assert r1.objective_cost_cny > r0.objective_cost_cny
    for p, r in ((plain, r0), (kept, r1)):
        assert invariants.check(p, r) == []
        yard = costs.evaluate(p, r)
        for k in ("margin_shortfall", "energy_import"):
            assert r.terms_cny[k] == pytest.approx(yard[k], abs=1e-3), k
