"""A light presolve of one interval's LP: fixed columns out, one-entry rows into bounds.

In one interval of a rolling dispatch most columns are fixed by their bounds (an EV slot
outside its stay, a slack with no room, a closed window), and the rows that held a fixed
column's partner become rows of one entry (a SOC limit whose slack is fixed is ``e >= e_min``).
:func:`reduce_lp` takes both out: fixed columns move into the row bounds and the objective,
one-entry rows become column bounds. What is left is solved as it is, without HiGHS's own
presolve, so that a basis from the previous interval can start it (HiGHS skips presolve when
it is given a basis, and its presolve cannot carry one across). :meth:`ReducedLp.restore`
maps the reduced solution back: primal values of every column, duals of every row.

The LP is HiGHS's form: ``row_lo <= A x <= row_hi``, ``col_lo <= x <= col_hi``, min ``c x``.
Pure numpy; no solver here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# A one-entry row whose coefficient is smaller than this stays a row (its bound would be huge).
MIN_SINGLETON_COEFF = 1e-7
# An empty row (every column fixed) is checked against its bounds with this tolerance.
EMPTY_ROW_TOL = 1e-7


@dataclass(frozen=True)
class ReducedLp:
    """The reduced LP and the maps back to the full one (indices are full-LP indices)."""

    keep: np.ndarray  # full column index of each reduced column
    members: np.ndarray  # full index of every column the reduced ones stand for
    member_group: np.ndarray  # its reduced column (parallel columns share one)
    rows: np.ndarray  # full row index of each reduced row
    a: object  # scipy CSC, len(rows) x len(keep)
    c: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    x_fixed: np.ndarray  # full length: values of the columns taken out, 0 elsewhere
    objective_offset: float  # c @ x_fixed
    cost_full: np.ndarray  # full length: c
    bound_lo_full: np.ndarray  # full length: column bounds after the one-entry rows
    bound_hi_full: np.ndarray
    singleton_rows: np.ndarray  # rows turned into a bound
    singleton_cols: np.ndarray  # their column
    singleton_coeff: np.ndarray  # their coefficient
    singleton_lo: np.ndarray  # the column bounds each sets
    singleton_hi: np.ndarray
    dual_fixed_cols: np.ndarray  # columns left in no row, set to their cheaper bound
    n_rows_full: int
    empty_rows_feasible: bool  # False: a row with only fixed columns is violated
    dropped: dict  # what each step took out, for reports

    def restore(
        self, x_reduced: np.ndarray, row_dual_reduced: np.ndarray, col_dual_reduced: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, row duals) of the full LP from a solution of the reduced one.

        Rows found redundant get 0. A row turned into a bound takes the dual its column's
        bound carries (reduced cost over the coefficient) when the column sits at the bound
        that row set; when several rows set the same bound the first takes it, the others 0.
        """
        x = self.x_fixed.copy()
        x[self.members] = self._split(x_reduced)
        y = np.zeros(self.n_rows_full)
        y[self.rows] = row_dual_reduced
        if self.singleton_rows.size:
            d = np.zeros(x.size)
            d[self.members] = col_dual_reduced[self.member_group]  # parallel: same cost
            d[self.dual_fixed_cols] = self.cost_full[self.dual_fixed_cols]
            j = self.singleton_cols
            xj, lo, hi = x[j], self.bound_lo_full[j], self.bound_hi_full[j]
            tol = 1e-9 * np.maximum(1.0, np.abs(xj))
            dj = d[j]  # > 0: the lower bound holds the column, < 0: the upper
            at_lo = (self.singleton_lo == lo) & (np.abs(xj - lo) <= tol) & (dj > 0)
            at_hi = (self.singleton_hi == hi) & (np.abs(xj - hi) <= tol) & (dj < 0)
            credited = np.flatnonzero(at_lo | at_hi)
            _, first = np.unique(j[credited], return_index=True)
            take = credited[first]
            y[self.singleton_rows[take]] = dj[take] / self.singleton_coeff[take]
        return x, y

    def _split(self, x_reduced: np.ndarray) -> np.ndarray:
        """Each member's value: a merged column's value shared in proportion to the room
        each member has above its lower bound (every member within its bounds)."""
        g = self.member_group
        lo, hi = self.bound_lo_full[self.members], self.bound_hi_full[self.members]
        span = hi - lo
        room = np.bincount(g, weights=span, minlength=x_reduced.size)
        above = x_reduced - np.bincount(g, weights=lo, minlength=x_reduced.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(room > 0, above / room, 0.0)
        out = x_reduced[g]
        merged = (np.bincount(g, minlength=x_reduced.size) > 1)[g]  # finite bounds there
        out[merged] = lo[merged] + np.clip(share[g[merged]], 0.0, 1.0) * span[merged]
        return out


def reduce_lp(a, c, col_lo, col_hi, row_lo, row_hi) -> ReducedLp:
    """The LP without what one interval's bounds settle, in four steps:

    1. fixed columns (``col_hi <= col_lo``) out, their values into the row bounds;
    2. rows with one entry left become bounds of that column;
    3. rows that no point within the column bounds can violate (activity bounds) out;
    4. columns left in no row set to the bound their cost prefers (kept when that bound
       is infinite, so that HiGHS reports the LP unbounded).

    ``a``: scipy sparse (any format), rows x columns. Infinite bounds are ``inf``.
    """
    a = a.tocsc()
    c = np.asarray(c, dtype=float)
    n_rows, n_cols = a.shape
    # 1. fixed columns
    fixed = col_hi <= col_lo
    x_fixed = np.where(fixed, col_lo, 0.0)
    shift = a @ x_fixed
    row_lo = np.where(np.isfinite(row_lo), row_lo - shift, row_lo)
    row_hi = np.where(np.isfinite(row_hi), row_hi - shift, row_hi)
    a_free = a.tocsr()
    a_free = a_free @ _select(~fixed)  # fixed columns zeroed, indices stay full
    a_free.eliminate_zeros()
    count = np.diff(a_free.indptr)
    first = a_free.indptr[:-1]
    empty = count == 0
    empty_ok = bool(
        np.all(row_lo[empty] <= EMPTY_ROW_TOL) and np.all(row_hi[empty] >= -EMPTY_ROW_TOL)
    )
    # 2. one-entry rows
    single = count == 1
    coeff = np.zeros(n_rows)
    coeff[single] = a_free.data[first[single]]
    single &= np.abs(coeff) >= MIN_SINGLETON_COEFF
    s_rows = np.flatnonzero(single)
    s_cols = a_free.indices[first[s_rows]]
    s_coeff = coeff[s_rows]
    pos = s_coeff > 0
    s_lo = np.where(pos, row_lo[s_rows], row_hi[s_rows]) / s_coeff
    s_hi = np.where(pos, row_hi[s_rows], row_lo[s_rows]) / s_coeff
    lo = np.asarray(col_lo, dtype=float).copy()
    hi = np.asarray(col_hi, dtype=float).copy()
    np.maximum.at(lo, s_cols, s_lo)  # several rows on one column: the tightest wins
    np.minimum.at(hi, s_cols, s_hi)
    # 3. rows within their bounds at every point of the box
    candidate = ~single & ~empty
    act_lo, act_hi = _activity(a_free, lo, hi)
    redundant = candidate & (act_hi <= row_hi) & (act_lo >= row_lo)
    rows = np.flatnonzero(candidate & ~redundant)
    # 4. columns in no remaining row
    in_rows = np.zeros(n_cols, dtype=bool)
    in_rows[a_free[rows].indices] = True
    loose = ~fixed & ~in_rows
    free_at = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
    at = np.where(c > 0, lo, np.where(c < 0, hi, free_at))  # the bound the cost prefers
    settled = loose & np.isfinite(at)
    x_fixed = np.where(settled, at, x_fixed)
    cols = np.flatnonzero(~fixed & ~settled)
    a_red = a[rows][:, cols].tocsc()
    # 5. parallel columns (same entries, same cost) become one, their bounds summed
    group = _parallel_groups(a_red, c[cols], lo[cols], hi[cols])
    first = np.unique(group, return_index=True)[1]  # the group's first column represents it
    keep = cols[first]
    return ReducedLp(
        keep=keep,
        rows=rows,
        a=a_red[:, first],
        c=c[keep],
        col_lo=np.bincount(group, weights=lo[cols]),
        col_hi=np.bincount(group, weights=hi[cols]),
        members=cols,
        member_group=group,
        row_lo=row_lo[rows],
        row_hi=row_hi[rows],
        x_fixed=x_fixed,
        objective_offset=float(c @ x_fixed),
        cost_full=c,
        bound_lo_full=lo,
        bound_hi_full=hi,
        singleton_rows=s_rows,
        singleton_cols=s_cols,
        singleton_coeff=s_coeff,
        singleton_lo=s_lo,
        singleton_hi=s_hi,
        dual_fixed_cols=np.flatnonzero(settled),
        n_rows_full=int(n_rows),
        empty_rows_feasible=empty_ok,
        dropped={
            "fixed_cols": int(fixed.sum()),
            "singleton_rows": int(s_rows.size),
            "redundant_rows": int(redundant.sum()),
            "empty_rows": int(empty.sum()),
            "settled_cols": int(settled.sum()),
            "merged_cols": int(cols.size - keep.size),
        },
    )


# Columns with more entries than this are not compared for parallel copies.
MAX_PARALLEL_NNZ = 4


def _parallel_groups(a, c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Group number of each column of ``a`` (CSC); columns with the same entries and cost
    and finite bounds share one, numbered in order of their first column."""
    n = a.shape[1]
    nnz = np.diff(a.indptr)
    cand = np.flatnonzero((nnz <= MAX_PARALLEL_NNZ) & np.isfinite(lo) & np.isfinite(hi))
    group = np.arange(n)
    if cand.size > 1:
        width = MAX_PARALLEL_NNZ
        key = np.zeros((cand.size, 2 + 2 * width))
        key[:, 0], key[:, 1] = nnz[cand], c[cand]
        for k in range(width):
            has = nnz[cand] > k
            at = a.indptr[cand[has]] + k
            key[has, 2 + k] = a.indices[at]
            key[has, 2 + width + k] = a.data[at]
        # One float per key (a random projection) to sort on; the keys themselves are then
        # compared, so a collision of projections can only leave columns unmerged.
        weights = np.random.default_rng(0).uniform(1.0, 2.0, key.shape[1])
        _, first, inverse = np.unique(key @ weights, return_index=True, return_inverse=True)
        rep = first[inverse.ravel()]  # position in cand of the smallest column of its class
        same = np.all(key == key[rep], axis=1)
        group[cand[same]] = cand[rep[same]]
    return np.unique(group, return_inverse=True)[1]


def _select(mask: np.ndarray):
    """Diagonal 0/1 matrix keeping the columns where ``mask`` holds."""
    return sp.diags(mask.astype(float), format="csr")


def _activity(a, lo: np.ndarray, hi: np.ndarray):
    """(min, max) of each row's ``a x`` (CSR) over ``lo <= x <= hi``; +-inf where an
    infinite bound enters."""
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    col, val = a.indices, a.data
    pos = val > 0
    low_end = np.where(pos, lo[col], hi[col])  # the bound that gives each term's minimum
    high_end = np.where(pos, hi[col], lo[col])
    n = a.shape[0]

    def total(ends: np.ndarray, inf_sign: float) -> np.ndarray:
        finite = np.isfinite(ends)
        s = np.bincount(rows, weights=np.where(finite, val * ends, 0.0), minlength=n)
        n_inf = np.bincount(rows, weights=(~finite).astype(float), minlength=n)
        return np.where(n_inf > 0, inf_sign * np.inf, s)

    return total(low_end, -1.0), total(high_end, 1.0)
