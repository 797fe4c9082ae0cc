"""No setpoint outside a device's limits, for any limits and any plan: every value the
adapters write, decoded as the device decodes it, lies within the intersection of the
asset's configured range and the device's own (hypothesis). The Modbus tests check the
same on the wire: their simulated devices record any write outside their limits."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.drivers import limits

TOL = limits.REL_TOL
kw = st.floats(min_value=0.0, max_value=5_000.0, allow_nan=False)
plan = st.one_of(
    st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-12, -1e-12]),
)
sf = st.integers(min_value=-3, max_value=3)


def _within(value: float, lo: float, hi: float) -> bool:
    return lo - abs(lo) * TOL - 1e-12 <= value <= hi + abs(hi) * TOL + 1e-12


@settings(max_examples=200, deadline=None)
@given(cfg_cha=kw, cfg_dis=kw, dev_cha=kw, dev_dis=kw, p=plan, s=sf, gen=st.booleans())
def test_storage_setpoints_never_leave_the_limits(cfg_cha, cfg_dis, dev_cha, dev_dis, p, s, gen):
    rng = limits.intersect((-cfg_dis, cfg_cha), (-dev_dis, dev_cha))
    scale = 10.0**s
    try:
        w = limits.power_write(p, rng, scale, "int32", gen)
    except limits.LimitError:
        return  # nothing written: too large for the register at this scale
    decoded_w = w.raw * scale
    decoded_kw = (-decoded_w if gen else decoded_w) / 1000.0
    assert _within(decoded_kw, rng[0], rng[1]), (decoded_kw, rng)
    assert _within(decoded_kw, -dev_dis, dev_cha) and _within(decoded_kw, -cfg_dis, cfg_cha)
    assert math.copysign(1, decoded_kw) == math.copysign(1, p) or decoded_kw == 0.0
    assert abs(decoded_kw) <= abs(p) * (1 + TOL) + 1e-12  # never more than the plan asked


@settings(max_examples=200, deadline=None)
@given(
    inverter_kw=st.floats(min_value=0.1, max_value=5_000.0),
    rating_kw=st.floats(min_value=0.1, max_value=5_000.0),
    p=st.one_of(plan, st.none()),
    s=st.integers(min_value=-2, max_value=0),
)
def test_pv_limits_never_allow_more_than_planned(inverter_kw, rating_kw, p, s):
    rng = limits.intersect((-inverter_kw, 0.0), (-rating_kw, 0.0))
    w = limits.pv_limit_write(p, rng, rating_kw, 10.0**s)
    pct = w.raw * 10.0**s
    assert 0.0 <= pct <= 100.0 * (1 + TOL)
    if p is not None:
        allowed_kw = rating_kw * pct / 100.0
        assert allowed_kw <= max(-min(p, 0.0), 0.0) * (1 + TOL) + 1e-9  # not above the plan
        assert allowed_kw <= min(inverter_kw, rating_kw) * (1 + TOL) + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    p_max=st.floats(min_value=1.0, max_value=350.0),
    p=plan,
    unit=st.sampled_from(["W", "A"]),
    v=st.floats(min_value=100.0, max_value=400.0),
    phases=st.sampled_from([1, 3]),
    v2g=st.booleans(),
)
def test_charger_limits_never_exceed_the_charger_or_the_plan(p_max, p, unit, v, phases, v2g):
    rng = (-p_max if v2g else 0.0, p_max)
    value, allowed_kw = limits.charger_limit(p, rng, unit, v, phases)
    assert value >= 0.0
    sent_kw = value / 1000.0 if unit == "W" else value * v * phases / 1000.0
    assert sent_kw == allowed_kw or math.isclose(sent_kw, allowed_kw, rel_tol=1e-12)
    assert sent_kw <= p_max * (1 + TOL) + 1e-9
    assert sent_kw <= max(p, 0.0) * (1 + TOL) + 1e-9


@given(value=st.floats(min_value=-1e6, max_value=1e6), s=sf)
def test_encode_rounds_towards_zero(value, s):
    scale = 10.0**s
    try:
        _raw, decoded = limits.encode(value, scale, "int32")
    except limits.LimitError:
        return
    assert abs(decoded) <= abs(value) * (1 + TOL) + 1e-12
    assert abs(decoded - value) <= scale * (1 + 1e-6)  # and by less than one count
