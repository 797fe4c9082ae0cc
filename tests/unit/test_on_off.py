"""On/off rules of shiftable loads (controllers.on_off) and the MPC's relaxation-first path:
the LP relaxation's schedule, or its rounding, is kept only when it is as good as the MILP."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers import invariants, on_off
from controllers.mpc import MpcController
from controllers.problem import ShiftableInput, ShiftableWindow
from tests.unit import factory as f

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _sh(p_min=10.0, run=3, windows=((0, 8, 40.0),), running=0, p_max=20.0):
    spec = f.shiftable(e=40.0, p_max=p_max, p_min=p_min, run=run)
    return ShiftableInput(spec, tuple(ShiftableWindow(*w) for w in windows), running)


@pytest.mark.parametrize(
    ("p", "running", "broken"),
    [
        ([0, 20, 20, 20, 0, 0, 0, 0], 0, None),  # one run of 3
        ([0, 20, 5, 20, 0, 0, 0, 0], 0, "between 0 and its minimum"),
        ([0, 20, 20, 0, 0, 0, 0, 0], 0, "runs 2 steps from step 1"),
        ([20, 0, 0, 0, 0, 0, 0, 0], 3, None),  # continues a run that already met its minimum
        ([0, 0, 0, 0, 0, 0, 20, 20], 0, None),  # cut by the horizon's end: allowed
        ([0, 0, 0, 0, 0, 20, 20, 0], 0, "runs 2 steps from step 5"),
        ([20, 0, 0, 0, 0, 0, 0, 0], 2, None),  # ran 2 before: must run 1 more, did
        ([0, 20, 20, 20, 0, 0, 0, 0], 1, "stops at step 0"),  # ran 1: must go on 2 more
    ],
)
def test_violations_read_the_rules_off_the_power(p, running, broken):
    out = on_off.violations(_sh(running=running), np.array(p, dtype=float))
    if broken is None:
        assert out == []
    else:
        assert len(out) >= 1 and broken in out[0]


@SETTINGS
@given(
    st.lists(st.floats(0, 20), min_size=10, max_size=10),
    st.integers(1, 5),
    st.integers(0, 4),
    st.integers(0, 3),
    st.integers(6, 10),
)
def test_rounded_pattern_keeps_the_run_rules(p, run, running, a, b):
    sh = _sh(p_min=10.0, run=run, windows=((a, b, 1e6),), running=running)
    pattern = on_off.round_pattern(sh, np.array(p), dt_h=1.0)
    window = np.zeros(10, dtype=bool)
    window[a:b] = True
    assert not (pattern & ~window).any()
    assert on_off.violations(sh, pattern * 15.0) == []


def test_rounded_pattern_fits_the_energy_left_with_one_run():
    # 30 kWh left at >= 10 kW and >= 3 steps: spread thin over 6 steps by the relaxation,
    # the rounding must not force 6 x 10 kWh; one run of 3 steps at 10 kW fits exactly.
    sh = _sh(p_min=10.0, p_max=20.0, run=3, windows=((0, 10, 30.0),))
    p = np.array([0, 0, 5, 5, 5, 5, 5, 5, 0, 0], dtype=float)
    pattern = on_off.round_pattern(sh, p, dt_h=1.0)
    assert pattern.sum() * 10.0 <= 30.0 + 1e-9
    assert on_off.violations(sh, pattern * 10.0) == []
    assert pattern[2:8].sum() == pattern.sum()  # around the relaxation's consumption


@st.composite
def milp_parks(draw):
    n = draw(st.sampled_from([8, 12, 16]))
    floats = lambda lo, hi: st.floats(lo, hi, allow_nan=False, allow_infinity=False)  # noqa: E731
    price = draw(st.lists(floats(0.1, 1.5), min_size=n, max_size=n))
    base = draw(st.lists(floats(0.0, 200.0), min_size=n, max_size=n))
    p_max = draw(floats(10, 60))
    load = f.shiftable(
        e=draw(floats(0, 4 * p_max)),
        p_max=p_max,
        p_min=draw(floats(0.2, 0.9)) * p_max,
        run=draw(st.integers(1, 5)),
    )
    a = draw(st.integers(0, n // 2))
    b = draw(st.integers(a + 1, n))
    bats = []
    if draw(st.booleans()):
        bats.append((f.battery(e_kwh=100, p_kw=draw(floats(5, 60))), draw(floats(0, 100))))
    p = f.problem(
        n=n,
        price=price,
        base_kw=base,
        batteries=bats,
        shiftables=[(load, [ShiftableWindow(a, b, load.e_kwh)])],
        import_max_kw=draw(floats(150, 600)),
        demand_charge=draw(st.sampled_from([0.0, 5.0])),
    )
    running = draw(st.integers(0, 3)) if a == 0 else 0
    sh = ShiftableInput(p.shiftables[0].spec, p.shiftables[0].windows, running)
    return __import__("dataclasses").replace(p, shiftables=(sh,))


@SETTINGS
@given(milp_parks())
def test_relaxation_first_matches_the_milp(p):
    """The relaxation's (or its rounding's) optimum is the MILP's within the MIP gap, and the
    on/off rules hold in either path's schedule."""
    fast = MpcController().dispatch(p)
    milp = MpcController(relax_first=False).dispatch(p)
    assert invariants.check(p, fast) == []
    assert invariants.check(p, milp) == []
    gap = p.mip_rel_gap * max(abs(milp.objective_cny), 1.0) + 1e-6
    assert fast.objective_cny <= milp.objective_cny + gap
    # The MILP's answer is itself only within its gap of the true optimum.
    assert fast.objective_cny >= milp.objective_cny - gap


def test_relaxation_first_reports_which_path_it_took():
    load = f.shiftable(e=40.0, p_max=20.0, p_min=10.0, run=3)
    p = f.problem(n=8, shiftables=[(load, [ShiftableWindow(0, 8, 40.0)])])
    c = MpcController()
    r = c.dispatch(p)
    assert c.relaxation_hits == 1
    assert any(
        m.startswith((on_off.RELAXATION_EXACT_MESSAGE, on_off.REPAIRED_MESSAGE)) for m in r.messages
    )
    assert "solve_relaxation_s" in r.timings_s
    assert MpcController(relax_first=False).dispatch(p).objective_cny == pytest.approx(
        r.objective_cny, rel=p.mip_rel_gap, abs=1e-6
    )
