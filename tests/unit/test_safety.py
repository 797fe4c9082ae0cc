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
