"""controllers.ev_schedulers: EDF and LLF orders on hand-made cases (golden), group limits
kept (property), per-session powers summing to the charger's (invariant)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.ev_allocate import Allocator
from controllers.ev_schedulers import EdfController, LlfController, session_key
from controllers.problem import EvChargerInput, GroupRow
from tests.unit import factory as f
from vpp.sim.closed_loop import make_controller


def _pod(sessions, limit=10.0, steps=(), n=6, p_max=10.0):
    evs = [(f.charger(f"c{i}", p_max=p_max), [s]) for i, s in enumerate(sessions)]
    p = f.problem(n=n, base_kw=[0.0] * n, evs=evs, price=[1.0] * n)
    names = tuple(c.spec.name for c in p.ev_chargers)
    row = GroupRow("pod", "import", names, (1.0,) * len(names), limit)
    chs = tuple(EvChargerInput(c.spec, c.sessions, tuple(steps)) for c in p.ev_chargers)
    return dataclasses.replace(p, ev_chargers=chs, group_rows=(row,))


def test_edf_serves_the_earliest_departure_first():
    # c0 leaves at 4 needing 20 kWh, c1 leaves at 2 needing 10 kWh; the pod takes 10 kW.
    p = _pod([f.session("s0", 0, 4, 20.0), f.session("s1", 0, 2, 10.0)])
    r = EdfController().dispatch(p)
    np.testing.assert_allclose(r.assets["c1"].p_kw, [10, 0, 0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(r.assets["c0"].p_kw, [0, 10, 10, 0, 0, 0], atol=1e-9)


def test_llf_serves_the_least_slack_first():
    # s0 leaves at 3 needing 10 kWh (laxity 2 h), s1 at 4 needing 40 kWh (laxity 0) on a
    # 15 kW pod: LLF serves s1 first and both are served; EDF serves s0 first, s1 ends short.
    sessions = [f.session("s0", 0, 3, 10.0), f.session("s1", 0, 4, 40.0)]
    p = _pod(sessions, limit=15.0)
    llf, edf = LlfController().dispatch(p), EdfController().dispatch(p)
    np.testing.assert_allclose(llf.assets["c1"].p_kw, [10, 10, 10, 10, 0, 0], atol=1e-9)
    np.testing.assert_allclose(llf.assets["c0"].p_kw, [5, 5, 0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(edf.assets["c0"].p_kw, [10, 0, 0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(edf.assets["c1"].p_kw, [5, 10, 10, 10, 0, 0], atol=1e-9)


def test_steps_are_kept_and_registered_names():
    p = _pod([f.session("s0", 0, 6, 9.0), f.session("s1", 0, 6, 9.0)], steps=(0, 4, 8))
    r = EdfController().dispatch(p)
    for name in ("c0", "c1"):
        assert set(np.round(r.assets[name].p_kw, 9)) <= {0.0, 4.0, 8.0}
    assert make_controller("edf").name == "edf" and make_controller("llf").name == "llf"


@st.composite
def fleets(draw):
    n_ch = draw(st.integers(1, 5))
    sessions = []
    for i in range(n_ch):
        a = draw(st.integers(0, 5))
        d = draw(st.integers(a + 1, 8))
        sessions.append(f.session(f"s{i}", a, d, draw(st.floats(0.0, 40.0))))
    limit = draw(st.floats(0.0, 25.0))
    steps = draw(st.sampled_from([(), (0.0, 2.0, 5.5, 7.0)]))
    return sessions, limit, steps


@settings(max_examples=60, deadline=None)
@given(fleets(), st.sampled_from([EdfController, LlfController]))
def test_never_over_a_group_limit_and_sessions_sum_to_chargers(case, ctrl):
    sessions, limit, steps = case
    p = _pod(sessions, limit=limit, steps=steps, n=8, p_max=7.0)
    r = ctrl().dispatch(p)
    al = Allocator(p)
    for k in range(p.n):
        powers = {name: float(s.p_kw[k]) for name, s in r.assets.items()}
        assert max(al.lhs(powers, k)) <= 1e-7
    for c in p.ev_chargers:
        a = r.assets[c.spec.name]
        total = sum(a.detail[session_key(s.session_id)] for s in c.sessions)
        np.testing.assert_allclose(total, a.p_kw, atol=1e-12)
        for s in c.sessions:
            delivered = float(a.p_kw.sum()) * c.spec.eta * p.dt_h
            assert delivered <= s.e_needed_kwh + 7.0 * p.dt_h + 1e-9
            outside = np.r_[a.p_kw[: s.arrival_k], a.p_kw[s.departure_k :]]
            assert np.all(outside == 0.0)
