"""A light presolve of one interval's LP, so that the last interval's basis can start it.

In one interval of a rolling dispatch most columns are fixed by their bounds (an EV slot
outside its stay, a slack with no room, a closed window); the rows that held a fixed column's
partner become rows of one entry (a SOC limit whose slack is fixed is ``e >= e_min``); rows
at "no limit" cannot bind; PV arrays on one bus are the same column. :func:`reduce_lp` takes
all of that out (five steps, in its docstring). HiGHS's own presolve does much the same, but
HiGHS skips it when given a basis and cannot carry a basis across it; the LP this module
leaves is solved without it, from the last interval's basis (``controllers.highs_hot``).
:meth:`ReducedLp.restore` maps the solution back: primal values of every column, duals of
every row (they satisfy the full LP's optimality conditions: ``tests/unit/test_lp_reduce.py``).

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
        that row set and its reduced cost presses on that bound; when several rows set it,
        the first takes it, the others 0. Merged parallel columns share the merged value in
        proportion to their room (:meth:`_split`).
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
    """The LP without what one interval's bounds settle, in five steps:

    1. fixed columns (``col_hi <= col_lo``) out, their values into the row bounds;
    2. rows with one entry left become bounds of that column;
    3. rows that no point within the column bounds can violate (activity bounds) out;
    4. columns left in no row set to the bound their cost prefers (kept when that bound
       is infinite, so that HiGHS reports the LP unbounded);
    5. parallel columns (same entries, same cost, finite bounds) merged into one.

    ``a``: scipy sparse (any format), rows x columns. Infinite bounds are ``inf``. Works on
    the nonzeros of ``a`` as arrays, one pass per step (about 30 ms for 1M nonzeros).
    """
    a = sp.csc_matrix(a)
    a.sum_duplicates()
    c = np.asarray(c, dtype=float)
    n_rows, n_cols = a.shape
    row_of, val = a.indices, a.data
    col_of = np.repeat(np.arange(n_cols), np.diff(a.indptr))
    # 1. fixed columns
    fixed = col_hi <= col_lo
    x_fixed = np.where(fixed, col_lo, 0.0)
    shift = a @ x_fixed
    row_lo = np.where(np.isfinite(row_lo), row_lo - shift, row_lo)
    row_hi = np.where(np.isfinite(row_hi), row_hi - shift, row_hi)
    live = ~fixed[col_of] & (val != 0.0)  # the entries that stay; most do not
    row_of, col_of, val = row_of[live], col_of[live], val[live]
    count = np.bincount(row_of, minlength=n_rows)
    empty = count == 0
    empty_ok = bool(
        np.all(row_lo[empty] <= EMPTY_ROW_TOL) and np.all(row_hi[empty] >= -EMPTY_ROW_TOL)
    )
    # 2. one-entry rows
    single = count == 1
    at = np.flatnonzero(single[row_of])
    tiny = np.abs(val[at]) < MIN_SINGLETON_COEFF
    single[row_of[at[tiny]]] = False
    at = at[~tiny]
    s_rows, s_cols, s_coeff = row_of[at], col_of[at], val[at]
    pos = s_coeff > 0
    s_lo = np.where(pos, row_lo[s_rows], row_hi[s_rows]) / s_coeff
    s_hi = np.where(pos, row_hi[s_rows], row_lo[s_rows]) / s_coeff
    lo = np.asarray(col_lo, dtype=float).copy()
    hi = np.asarray(col_hi, dtype=float).copy()
    np.maximum.at(lo, s_cols, s_lo)  # several rows on one column: the tightest wins
    np.minimum.at(hi, s_cols, s_hi)
    # 3. rows within their bounds at every point of the box
    candidate = ~single & ~empty
    act_lo, act_hi = _activity(row_of, col_of, val, lo, hi, n_rows)
    redundant = candidate & (act_hi <= row_hi) & (act_lo >= row_lo)
    row_kept = candidate & ~redundant
    rows = np.flatnonzero(row_kept)
    # 4. columns in no remaining row
    entry = row_kept[row_of]
    in_rows = np.zeros(n_cols, dtype=bool)
    in_rows[col_of[entry]] = True
    free_at = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
    cheap = np.where(c > 0, lo, np.where(c < 0, hi, free_at))  # the bound the cost prefers
    settled = ~fixed & ~in_rows & np.isfinite(cheap)
    x_fixed = np.where(settled, cheap, x_fixed)
    cols = np.flatnonzero(~fixed & ~settled)
    # The matrix on the rows and columns left, straight from the entries (still in column
    # order, rows ascending within a column).
    new_col = np.full(n_cols, -1)
    new_col[cols] = np.arange(cols.size)
    new_row = np.full(n_rows, -1)
    new_row[rows] = np.arange(rows.size)
    entry &= new_col[col_of] >= 0
    indptr = np.zeros(cols.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(new_col[col_of[entry]], minlength=cols.size), out=indptr[1:])
    a_left = sp.csc_matrix(
        (val[entry], new_row[row_of[entry]], indptr), shape=(rows.size, cols.size)
    )
    # 5. parallel columns become one, their bounds summed
    group = _parallel_groups(a_left, c[cols], lo[cols], hi[cols])
    first = np.unique(group, return_index=True)[1]  # the group's first column represents it
    keep = cols[first]
    a_red = a_left[:, first] if first.size < cols.size else a_left
    return ReducedLp(
        keep=keep,
        rows=rows,
        a=a_red,
        c=c[keep],
        col_lo=np.bincount(group, weights=lo[cols], minlength=keep.size),
        col_hi=np.bincount(group, weights=hi[cols], minlength=keep.size),
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
    """Group number of each column of ``a`` (CSC, canonical); columns with the same entries
    and cost and finite bounds share one, numbered in order of their first column.

    Columns are sorted on one random projection of (entries, cost, count), then each is
    compared entry by entry with the first column of its class: a collision of projections
    can only leave columns unmerged."""
    n = a.shape[1]
    nnz = np.diff(a.indptr)
    rng = np.random.default_rng(0)
    projection = a.T @ rng.uniform(1.0, 2.0, a.shape[0]) + c * 0.618034 + nnz * 1.324718
    cand = np.flatnonzero((nnz <= MAX_PARALLEL_NNZ) & np.isfinite(lo) & np.isfinite(hi))
    group = np.arange(n)
    if cand.size > 1:
        _, first, inverse = np.unique(projection[cand], return_index=True, return_inverse=True)
        rep = cand[first[inverse.ravel()]]  # the smallest column with the same projection
        same = (nnz[cand] == nnz[rep]) & (c[cand] == c[rep])
        # entry by entry: positions of each candidate's k-th entry and of its rep's
        k_n = nnz[cand]
        owner = np.repeat(np.arange(cand.size), k_n)
        k = np.arange(owner.size) - np.repeat(np.cumsum(k_n) - k_n, k_n)
        mine = a.indptr[cand][owner] + k
        theirs = a.indptr[rep][owner] + np.minimum(k, nnz[rep][owner] - 1)
        equal = (a.indices[mine] == a.indices[theirs]) & (a.data[mine] == a.data[theirs])
        same &= np.bincount(owner, weights=~equal, minlength=cand.size) == 0
        group[cand[same]] = rep[same]
    return np.unique(group, return_inverse=True)[1]


def _activity(rows, cols, vals, lo: np.ndarray, hi: np.ndarray, n_rows: int):
    """(min, max) of each row's ``a x`` over ``lo <= x <= hi``, ``a`` given by its entries;
    +-inf where an infinite bound enters."""
    pos = vals > 0
    low_end = np.where(pos, lo[cols], hi[cols])  # the bound that gives each term's minimum
    high_end = np.where(pos, hi[cols], lo[cols])

    def total(ends: np.ndarray, inf_sign: float) -> np.ndarray:
        finite = np.isfinite(ends)
        s = np.bincount(rows, weights=np.where(finite, vals * ends, 0.0), minlength=n_rows)
        n_inf = np.bincount(rows[~finite], minlength=n_rows)
        return np.where(n_inf > 0, inf_sign * np.inf, s)

    return total(low_end, -1.0), total(high_end, 1.0)
