"""Per-session power in every plan (controllers.session_power) and in the plan the cycle
hands out: a charger's power is its plugged car's, session by session."""

from __future__ import annotations

import numpy as np
import pytest

from controllers.baselines import RuleController
from controllers.ev_schedulers import EdfController
from controllers.mpc import MpcController
from controllers.session_power import session_key, sessions_of, with_session_power
from tests.unit import factory as f


def _problem():
    evs = [
        (f.charger("ev1", p_max=10), [f.session("a", 0, 3, 12.0), f.session("b", 4, 8, 20.0)]),
        (f.charger("ev2", p_max=10), [f.session("c", 2, 6, 15.0)]),
    ]
    return f.problem(n=8, step_h=1.0, price=[0.3] * 4 + [1.0] * 4, evs=evs)


@pytest.mark.parametrize("controller", [MpcController(), RuleController(), EdfController()])
def test_each_session_gets_its_chargers_power_while_plugged_and_the_sum_is_the_charger(
    controller,
) -> None:
    p = _problem()
    r = with_session_power(p, controller.dispatch(p))
    for ch in p.ev_chargers:
        s = r.assets[ch.spec.name]
        per = sessions_of(s.detail)
        assert set(per) == {x.session_id for x in ch.sessions}
        np.testing.assert_allclose(sum(per.values()), s.p_kw, atol=1e-9)
        for x in ch.sessions:
            outside = np.ones(p.n, bool)
            outside[x.arrival_k : x.departure_k] = False
            assert np.all(per[x.session_id][outside] == 0.0)
    # what each session was planned to get: its need (full service is possible here)
    got = {
        sid: float(v.sum()) * p.dt_h * ch.spec.eta
        for ch in p.ev_chargers
        for sid, v in sessions_of(r.assets[ch.spec.name].detail).items()
    }
    if controller.name == "mpc":
        assert got == pytest.approx({"a": 12.0, "b": 20.0, "c": 15.0}, rel=1e-3)


def test_a_controller_that_allocates_sessions_itself_is_left_as_it_is() -> None:
    p = _problem()
    r = EdfController().dispatch(p)
    before = {k: v.copy() for k, v in r.assets["ev1"].detail.items()}
    after = with_session_power(p, r).assets["ev1"].detail
    assert set(after) == set(before)
    np.testing.assert_array_equal(after[session_key("a")], before[session_key("a")])
