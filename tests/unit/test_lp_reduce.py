"""The light presolve (controllers.lp_reduce): the reduced LP has the full LP's optimum, and the
restored primal and dual solution satisfies the full LP's optimality conditions."""

import highspy
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.lp_reduce import reduce_lp

INF = np.inf
TOL = 1e-6


def solve(a, c, col_lo, col_hi, row_lo, row_hi):
    """HiGHS on one LP: (status name, x, row duals, column duals, objective)."""
    a = sp.csc_matrix(a)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = c.size, row_hi.size
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = c, col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h.passModel(lp)
    h.run()
    sol = h.getSolution()
    status = h.getModelStatus().name
    return (
        status,
        np.asarray(sol.col_value),
        np.asarray(sol.row_dual),
        np.asarray(sol.col_dual),
        h.getInfo().objective_function_value,
    )


def kkt_violations(a, c, col_lo, col_hi, row_lo, row_hi, x, y) -> list[str]:
    """Optimality conditions of ``min c x, row_lo <= A x <= row_hi, col_lo <= x <= col_hi``
    in HiGHS's sign convention (reduced cost d = c - A'y; a dual is >= 0 at a lower bound)."""
    a = sp.csr_matrix(a)
    out = []
    r = a @ x
    d = c - a.T @ y
    scale = 1.0 + np.abs(x)
    if np.any(x < col_lo - TOL * scale) or np.any(x > col_hi + TOL * scale):
        out.append("column bound violated")
    rs = 1.0 + np.abs(r)
    if np.any(r < row_lo - TOL * rs) or np.any(r > row_hi + TOL * rs):
        out.append("row bound violated")
    dual_tol = 1e-5 * (1.0 + np.abs(c).max())
    above, below = x > col_lo + TOL * scale, x < col_hi - TOL * scale
    if np.any(above & (d > dual_tol)) or np.any(below & (d < -dual_tol)):
        out.append("column dual infeasible")
    r_above, r_below = r > row_lo + TOL * rs, r < row_hi - TOL * rs
    if np.any(r_above & (y > dual_tol)) or np.any(r_below & (y < -dual_tol)):
        out.append("row dual infeasible")
    return out


@st.composite
def lps(draw):
    """Random feasible LPs with what the presolve removes: fixed columns, one-entry rows,
    rows no point can violate, columns in no row, parallel columns."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    m, n = draw(st.integers(2, 14)), draw(st.integers(2, 16))
    dens = draw(st.floats(0.15, 0.6))
    a = sp.random(m, n, density=dens, random_state=rng, format="csc").toarray()
    a[a != 0] = np.round(rng.uniform(-2, 2, np.count_nonzero(a)), 1)
    if draw(st.booleans()):  # a parallel copy of column 0
        a = np.hstack([a, a[:, :1]])
    lo = np.round(rng.uniform(-3, 1, a.shape[1]), 1)
    hi = lo + np.round(rng.uniform(0, 4, a.shape[1]), 1)
    fix = rng.random(a.shape[1]) < 0.25
    hi[fix] = lo[fix]
    x0 = lo + rng.random(a.shape[1]) * (hi - lo)
    r0 = a @ x0
    kind = rng.integers(0, 4, m)  # equality, <=, >=, ranged
    slack = np.round(rng.uniform(0, 2, m), 1)
    row_lo = np.where(kind == 1, -INF, r0 - np.where(kind == 0, 0.0, slack))
    row_hi = np.where(kind == 2, INF, r0 + np.where(kind == 0, 0.0, slack))
    if draw(st.booleans()):  # a row that no point in the box can violate
        extra = np.round(rng.uniform(-1, 1, a.shape[1]), 1)
        a = np.vstack([a, extra])
        big = np.abs(extra) @ np.maximum(np.abs(lo), np.abs(hi)) + 1.0
        row_lo, row_hi = np.append(row_lo, -big), np.append(row_hi, big)
    if draw(st.booleans()):  # a one-entry row
        j = int(rng.integers(0, a.shape[1]))
        one = np.zeros(a.shape[1])
        one[j] = float(rng.choice([-2.0, 0.5, 1.0]))
        a = np.vstack([a, one])
        v = one[j] * x0[j]
        row_lo, row_hi = np.append(row_lo, v - 0.3), np.append(row_hi, v + 0.3)
    c = np.round(rng.uniform(-2, 2, a.shape[1]), 1)
    if a.shape[1] > n:
        c[-1] = c[0]  # the parallel copy costs the same
    if draw(st.booleans()):  # some unbounded columns whose cost keeps them at their bound
        j = int(rng.integers(0, a.shape[1]))
        if not fix[j]:
            if c[j] >= 0:
                hi[j] = INF
            else:
                lo[j] = -INF
    return a, c, lo, hi, row_lo, row_hi


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lps())
def test_reduced_lp_has_the_full_optimum_and_a_valid_dual(case):
    a, c, lo, hi, row_lo, row_hi = case
    status, x_full, y_full, _, obj_full = solve(a, c, lo, hi, row_lo, row_hi)
    assert status == "kOptimal"
    # The checker itself holds on HiGHS's own solution of the full LP.
    assert kkt_violations(a, c, lo, hi, row_lo, row_hi, x_full, y_full) == []

    lp = reduce_lp(sp.csc_matrix(a), c, lo, hi, row_lo, row_hi)
    assert lp.empty_rows_feasible
    if lp.c.size:
        status_r, xr, yr, dr, obj_r = solve(lp.a, lp.c, lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi)
        assert status_r == "kOptimal"
    else:
        xr, yr, dr, obj_r = np.zeros(0), np.zeros(lp.row_hi.size), np.zeros(0), 0.0
    x, y = lp.restore(xr, yr, dr)
    assert obj_r + lp.objective_offset == pytest.approx(obj_full, rel=1e-7, abs=1e-7)
    assert float(c @ x) == pytest.approx(obj_full, rel=1e-7, abs=1e-7)
    assert kkt_violations(a, c, lo, hi, row_lo, row_hi, x, y) == []


def test_each_step_takes_out_what_it_should():
    inf = INF
    # columns: 0 fixed, 1 free in rows, 2 and 3 parallel, 4 in no row (cost > 0)
    a = np.array(
        [
            [1.0, 1.0, 2.0, 2.0, 0.0],  # a coupling row
            [1.0, 0.0, 0.0, 0.0, 0.0],  # only the fixed column: empty after step 1
            [0.0, 2.0, 0.0, 0.0, 0.0],  # one entry: 0.5 <= x1 <= 1.5
            [0.0, 1.0, 1.0, 1.0, 0.0],  # at most 4 + 1 + 1 = 6 in the box: never binds
            [0.0, 0.0, 0.0, 0.0, 1.0],  # one entry: x4 >= 0.25
        ]
    )
    c = np.array([1.0, -1.0, -0.5, -0.5, 3.0])
    lo = np.array([2.0, 0.0, 0.0, 0.0, 0.0])
    hi = np.array([2.0, 4.0, 1.0, 1.0, 9.0])
    row_lo = np.array([-inf, 1.0, 1.0, -inf, 0.25])
    row_hi = np.array([6.0, 3.0, 3.0, 10.0, inf])
    lp = reduce_lp(sp.csc_matrix(a), c, lo, hi, row_lo, row_hi)
    assert lp.dropped == {
        "fixed_cols": 1,
        "singleton_rows": 2,
        "redundant_rows": 1,
        "empty_rows": 1,
        "settled_cols": 1,
        "merged_cols": 1,
    }
    assert lp.rows.tolist() == [0] and lp.keep.tolist() == [1, 2]
    assert lp.col_lo.tolist() == [0.5, 0.0] and lp.col_hi.tolist() == [1.5, 2.0]
    assert lp.row_hi.tolist() == [4.0]  # 6 minus the fixed column's 2
    # x1 = 1.5, merged column = 1.25 (row 0: 1.5 + 2 * 1.25 = 4): split 0.625 / 0.625
    x, _ = lp.restore(np.array([1.5, 1.25]), np.zeros(1), np.zeros(2))
    assert x.tolist() == pytest.approx([2.0, 1.5, 0.625, 0.625, 0.25])


def test_a_violated_empty_row_is_reported():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    lp = reduce_lp(
        sp.csc_matrix(a),
        np.zeros(2),
        np.array([1.0, 0.0]),
        np.array([1.0, 1.0]),
        np.array([2.0, -INF]),  # row 0 holds only the fixed column (1.0): 1.0 >= 2 fails
        np.array([3.0, 5.0]),
    )
    assert not lp.empty_rows_feasible
