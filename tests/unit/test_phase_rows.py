"""The linear inner approximation of per-phase current limits (controllers.phase_rows).

Property: every point the rows allow has a true phasor current within the limit, on every
phase (points taken on the rows' boundary, the hardest place). Figures: the capacity given up
is 0 at balance and 1 - cos 15 deg = 3.41 % at worst, as the module states.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers import phase_rows as pr

V = 400.0
I_MAX = 80.0
CONNS = ("three_phase", "A", "B", "C", "AB", "BC", "CA")


def _rows(conns, consuming_only):
    """(phase, coeff per member in A, limit in A) of every facet row."""
    return [
        (ph, np.array([pr.facet_coeff(c, V, ph, th) for c in conns]), pr.facet_limit_a(I_MAX))
        for ph in pr.PHASE_NAMES
        for th in pr.facets_deg(consuming_only)
    ]


def _max_scale(rows, p):
    """The largest s with every row holding at s * p."""
    s = math.inf
    for _, c, lim in rows:
        lhs = float(c @ p)
        if lhs > 1e-12:
            s = min(s, lim / lhs)
    return s


def _worst_a(conns, p):
    cur = pr.phase_currents_a([(c, V, float(x)) for c, x in zip(conns, p, strict=True)])
    return max(abs(i) for i in cur.values())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(CONNS), min_size=1, max_size=8),
    st.data(),
    st.booleans(),
)
def test_every_point_the_rows_allow_is_truly_within_the_limit(conns, data, consuming):
    lo = 0.0 if consuming else -10.0
    p = np.array(
        [data.draw(st.floats(lo, 10.0, allow_nan=False, width=32)) for _ in conns], dtype=float
    )
    rows = _rows(conns, consuming)
    s = _max_scale(rows, p)
    if not math.isfinite(s):
        return  # nothing drawn
    at = s * p  # on the boundary of the rows
    assert _worst_a(conns, at) <= I_MAX * (1 + 1e-9)
    inside = 0.5 * at
    assert all(float(c @ inside) <= lim + 1e-9 for _, c, lim in rows)


@pytest.mark.parametrize("consuming", [True, False])
def test_capacity_given_up_at_balance_is_zero(consuming):
    # Balanced: three-phase chargers, or equal loads on the three line pairs.
    for conns in (("three_phase",), ("AB", "BC", "CA")):
        p = np.ones(len(conns))
        rows = _rows(conns, consuming)
        got = _worst_a(conns, _max_scale(rows, p) * p)
        assert got == pytest.approx(I_MAX, rel=1e-12)
        assert 1 - got / I_MAX == pytest.approx(pr.GIVEN_UP_AT_BALANCE_FRAC, abs=1e-12)


def test_worst_capacity_given_up_is_3_41_percent():
    # Phase A fed half by a single-phase charger on A, half by a line pair AB: 15 deg.
    conns = ("A", "AB")
    p = np.array([1.0, math.sqrt(3.0)])  # equal currents in A: sqrt 3 p_A / V = p_AB / V
    got = _worst_a(conns, _max_scale(_rows(conns, True), p) * p)
    assert 1 - got / I_MAX == pytest.approx(pr.GIVEN_UP_WORST_FRAC, rel=1e-9)
    assert abs(pr.GIVEN_UP_WORST_FRAC - 0.0341) < 5e-5
    # One kind alone (0 or 30 deg) is a vertex: nothing given up.
    for conns in (("A",), ("AB",), ("CA",)):
        p = np.ones(1)
        got = _worst_a(conns, _max_scale(_rows(conns, True), p) * p)
        assert got == pytest.approx(I_MAX, rel=1e-12)


def test_line_pair_current_angles():
    cur = pr.phase_currents_a([("AB", V, 4.0)])  # 10 A from A to B
    assert abs(cur["A"]) == pytest.approx(10.0)
    assert math.degrees(np.angle(cur["A"])) == pytest.approx(30.0)
    assert math.degrees(np.angle(cur["B"])) == pytest.approx(-30.0)
    assert abs(cur["C"]) == 0.0
    three = pr.phase_currents_a([("three_phase", V, math.sqrt(3) * 0.4 * 10)])
    assert [abs(three[x]) for x in "ABC"] == pytest.approx([10.0] * 3)
