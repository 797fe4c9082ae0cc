"""Property tests on random small parks: invariants, limits, optimality against the rule
baseline, and relaxations exactly when the hard problem is infeasible."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers import costs, invariants, safety
from controllers.baselines import RuleController, UncontrolledController
from controllers.mpc import MpcController, SolverFailure
from tests.unit import factory as f

SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def parks(draw):
    n = draw(st.sampled_from([6, 8, 12]))
    floats = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
    price = draw(st.lists(floats(0.1, 1.5), min_size=n, max_size=n))
    base = draw(st.lists(floats(0.0, 200.0), min_size=n, max_size=n))
    bats = []
    for i in range(draw(st.integers(0, 2))):
        e = draw(floats(20, 200))
        b = f.battery(
            name=f"bat{i}",
            e_kwh=e,
            p_kw=draw(floats(5, 100)),
            eta=draw(floats(0.85, 1.0)),
            soc_min=draw(floats(0.0, 0.3)),
            soc_max=draw(floats(0.7, 1.0)),
            deg=draw(floats(0.0, 0.1)),
        )
        bats.append((b, draw(floats(0.0, e))))
    pv = []
    if draw(st.booleans()):
        avail = np.array(draw(st.lists(floats(0, 150), min_size=n, max_size=n)))
        pv.append((f.pv_array(kw=150, curtailable=draw(st.booleans())), avail))
    evs = []
    for c in range(draw(st.integers(0, 2))):
        a = draw(st.integers(0, n - 1))
        d = draw(st.integers(a + 1, n))
        sessions = [f.session(f"s{c}", a, d, draw(floats(0, 60)))]
        evs.append((f.charger(f"ev{c}", v2g=draw(st.booleans())), sessions))
    cur = []
    if draw(st.booleans()):
        cur.append(
            (f.curtailable(), np.array(draw(st.lists(floats(0, 80), min_size=n, max_size=n))))
        )
    shift = []
    if draw(st.booleans()):
        shift.append((f.shiftable(e=draw(floats(0, 40))), [f.ShiftableWindow(0, n, 0.0)]))
        shift[0] = (shift[0][0], [f.ShiftableWindow(0, n, shift[0][0].e_kwh)])
    return f.problem(
        n=n,
        price=price,
        base_kw=base,
        batteries=bats,
        pv=pv,
        evs=evs,
        curtailables=cur,
        shiftables=shift,
        import_max_kw=draw(floats(50, 600)),
        demand_charge=draw(st.sampled_from([0.0, 5.0])),
        export_price=draw(floats(0.0, 0.5)),
        terminal=draw(floats(0.0, 0.5)),
    )


f.ShiftableWindow = __import__("controllers.problem", fromlist=["ShiftableWindow"]).ShiftableWindow


@SETTINGS
@given(parks())
def test_invariants_limits_and_optimality(p):
    r = MpcController().dispatch(p)
    assert invariants.check(p, r) == []
    _, clamps = safety.clamp(p, r.setpoints_kw(0))
    assert [c for c in clamps if abs(c.sent_kw - c.proposed_kw) > 1e-5] == []
    ev = costs.total(costs.evaluate(p, r))
    assert r.objective_cny == pytest.approx(ev, rel=1e-6, abs=1e-3)
    scale = 1e-6 * max(1.0, abs(ev)) + 1e-3
    for base in (RuleController(), UncontrolledController()):
        b = base.dispatch(p)
        assert invariants.check(p, b) == [], base.name
        assert r.objective_cny <= b.objective_cny + scale, base.name


@SETTINGS
@given(parks())
def test_relaxed_exactly_when_infeasible_without_slack(p):
    soft = MpcController().dispatch(p)
    try:
        MpcController(soft=False, fallback=None).dispatch(p)
        hard_feasible = True
    except SolverFailure:
        hard_feasible = False
    if hard_feasible:
        assert soft.relaxed == [], [x.describe() for x in soft.relaxed]
    else:
        assert soft.terms_cny["penalties"] > 0
