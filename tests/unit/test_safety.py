"""The last safety layer: whatever the solver says, setpoints stay within device limits."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.safety import clamp, limits_kw, safe_setpoint_kw
from tests.unit import factory as f


def _problem():
    bat = f.battery(e_kwh=100, p_kw=50, eta=1.0, soc_min=0.1, soc_max=0.9)
    return f.problem(
        n=4,
        step_h=1.0,
        batteries=[(bat, 85.0)],
        pv=[(f.pv_array(kw=100), np.full(4, 60.0))],
        evs=[
            (f.charger("ev1", p_max=10, p_min=4), [f.session("s", 0, 2, 10)]),
            (f.charger("ev2"), [f.session("t", 2, 4, 10)]),
        ],
    )


def test_battery_limited_by_measured_soc():
    lo, hi = limits_kw(_problem())["bat"]
    assert hi == pytest.approx(5.0)  # 90 - 85 kWh room in one hour
    assert lo == pytest.approx(-50.0)


def test_nan_and_overshoot_and_absent_car():
    sent, events = clamp(_problem(), {"bat": math.nan, "pv": -80.0, "ev2": 7.0, "ev1": 2.0})
    assert sent["bat"] == 0.0
    assert sent["pv"] == -60.0  # cannot generate more than available
    assert sent["ev2"] == 0.0  # no car plugged in at interval 0
    assert sent["ev1"] == 4.0  # below the 4 kW minimum: snapped to it (2 >= 4 / 2)
    assert {e.asset for e in events} == {"bat", "pv", "ev2", "ev1"}


def test_stale_assets_are_held_safe():
    sent, _ = clamp(_problem(), {"bat": -30.0, "pv": -10.0}, hold=frozenset({"bat", "pv"}))
    assert sent["bat"] == 0.0
    assert sent["pv"] == -60.0  # PV held uncurtailed
    assert safe_setpoint_kw(_problem(), "ev1") == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["bat", "pv", "ev1", "ev2"]),
        st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_any_input_ends_within_limits(proposed):
    p = _problem()
    lim = limits_kw(p)
    sent, _ = clamp(p, proposed)
    for name, v in sent.items():
        lo, hi = lim[name]
        assert lo - 1e-9 <= v <= hi + 1e-9 and math.isfinite(v)


@pytest.mark.parametrize(
    ("e_needed_kwh", "proposed_kw", "sent_kw"),
    [
        (10.0, 1.0, 4.0),  # the car still needs energy: a remainder runs at the minimum
        (0.0, 1.0, 0.0),  # a full car: nearer of 0 and the minimum
        (10.0, 3.0, 4.0),  # above half the minimum: up, as before
    ],
)
def test_remainder_below_a_chargers_minimum_is_not_dropped(e_needed_kwh, proposed_kw, sent_kw):
    """A remainder under the minimum power, rounded down every interval, was never delivered."""
    p = f.problem(
        n=4,
        evs=[(f.charger("ev1", p_max=10, p_min=4), [f.session("s", 0, 2, e_needed_kwh)])],
    )
    sent, events = clamp(p, {"ev1": proposed_kw})
    assert sent["ev1"] == sent_kw
    assert [e.asset for e in events] == ["ev1"]


def _garage(p_min: float, bus_cap_kw: float, n_chargers: int = 2):
    """Chargers with a minimum power on one bus whose limit is ``bus_cap_kw``; every car
    still needs energy (so the minimum-power rule would round their setpoints up)."""
    from dataclasses import replace

    evs = [
        (f.charger(f"ev{i}", p_max=7.0, p_min=p_min), [f.session(f"s{i}", 0, 4, 20.0, 7.0)])
        for i in range(n_chargers)
    ]
    p = f.problem(n=4, base_kw=[0.0] * 4, evs=evs)
    return replace(p, bus_import_max_kw=np.full((1, 4), bus_cap_kw))


def test_a_minimum_power_never_lifts_a_setpoint_over_the_bus_limit_the_plan_kept():
    """Issue #16's case: two chargers at 1.664 kW minimum on a bus capped at 1.0 kW, both
    cars needing energy, planned {0, 1.0}: the clamp sent 1.664 kW; it now rounds down."""
    p = _garage(1.664, 1.0)
    plan = {"ev0": 0.0, "ev1": 1.0}
    sent, events = clamp(p, plan, plan_bus_kw={"b1": 1.0}, plan_net_kw=1.0)
    assert sent == {"ev0": 0.0, "ev1": 0.0}
    (e,) = events
    assert e.asset == "ev1" and "rounded down" in e.reason and "bus b1" in e.reason
    # without the plan's bus power (callers that do not give it) the old rule stands
    old, _ = clamp(p, plan)
    assert old["ev1"] == pytest.approx(1.664)
    # with room under the limit the rounding up stands
    roomy = _garage(1.664, 5.0)
    up, _ = clamp(roomy, plan, plan_bus_kw={"b1": 1.0}, plan_net_kw=1.0)
    assert up["ev1"] == pytest.approx(1.664)


@settings(max_examples=200, deadline=None)
@given(
    p_min=st.floats(0.5, 6.0),
    cap=st.floats(0.0, 30.0),
    n=st.integers(1, 6),
    fracs=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
    park_cap=st.floats(0.0, 40.0),
)
def test_the_clamp_never_takes_a_bus_or_the_park_over_a_limit_the_plan_kept(
    p_min, cap, n, fracs, park_cap
):
    """Random plans that keep the bus limit and the park's import limit: whatever the
    minimum-power rounding does, the setpoints sent keep both."""
    from dataclasses import replace

    p = _garage(p_min, cap, n)
    p = replace(p, import_max_kw=np.full(4, park_cap))
    limit = min(cap, park_cap)
    raw = [fr * 7.0 for fr in fracs[:n]]
    total = sum(raw)
    scale = min(1.0, limit / total) if total > 0 else 1.0
    plan = {f"ev{i}": v * scale for i, v in enumerate(raw)}
    planned = sum(plan.values())
    sent, _ = clamp(p, plan, plan_bus_kw={"b1": planned}, plan_net_kw=planned)
    assert sum(sent.values()) <= limit + 1e-6
    for name, v in sent.items():
        assert v == 0.0 or v >= p_min - 1e-9 or v == pytest.approx(plan[name])
