"""HiGHS kept hot between re-solves of one cvxpy model.

cvxpy's HiGHS interface builds a new ``highspy.Highs`` object for every solve. With DPP the
constraint matrix of a model does not change between intervals, only costs, column bounds
and row bounds do; :class:`HotHighs` loads the matrices once (from
``problem.get_problem_data``), then pushes only those vectors and restarts HiGHS from the
previous basis. The result goes back through cvxpy's own ``unpack_results``, so variable
values, status and solver statistics read as after ``problem.solve``.

A restart that does not end optimal is solved again from scratch on a fresh object (restarts
that stall are a known HiGHS issue); when the matrix does change, the model is reloaded.
LPs only: the caller keeps MILPs on the ordinary path.
"""

from __future__ import annotations

import time

import cvxpy as cp
import highspy
import numpy as np

MODES = ("auto", "basis", "reduced")
# "auto" solves the reduced LP from this many columns up: measured side by side with
# bench/dispatch.py, the basis restart wins at M (19k columns: 0.05 s against 0.14 s) and
# the reduced LP at L (93k: 0.7 s against 0.96 s).
AUTO_REDUCED_MIN_COLS = 60_000
# Matrix values changed in place before the model is reloaded instead (one call each).
MAX_COEFF_CHANGES = 50_000


class HotHighs:
    """One ``highspy.Highs`` object for one cvxpy problem, restarted from its last basis.

    ``mode="reduced"`` instead drops the columns that this interval's bounds fix (an EV slot
    outside its stay, a slack with no room, a window that is closed), moves their values into
    the row bounds and the objective, and solves that smaller LP from scratch with HiGHS's
    presolve. On large parks most columns are fixed in any one interval and the presolved
    model is a fraction of the full one, which a restart from a basis cannot use (HiGHS skips
    presolve when it has a basis).
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"HotHighs mode {mode!r}: expected one of {MODES}")
        self.mode = mode
        self.h: highspy.Highs | None = None
        self._a = None  # the loaded matrix (scipy CSC), to detect a changed one
        self.loads = 0  # times the matrices were (re)loaded
        self.retries = 0  # restarts that failed and were solved again from scratch
        self.coeff_updates = 0  # times matrix values were changed in place

    def solve(self, problem: cp.Problem, options: dict) -> None:
        """Solve ``problem`` (an LP) with HiGHS and unpack the result into it.

        ``options``: HiGHS options (``time_limit`` ...), applied to every run.
        """
        data, chain, inverse = problem.get_problem_data(cp.HIGHS)
        c = np.asarray(data["c"], dtype=float)
        a = data["A"].tocsc()
        b = np.asarray(data["b"], dtype=float)
        n_eq = data["dims"].zero
        inf = highspy.kHighsInf
        row_lo = np.concatenate([b[:n_eq], np.full(b.size - n_eq, -inf)])
        lb, ub = data.get("lower_bounds"), data.get("upper_bounds")
        col_lo = np.full(c.size, -inf) if lb is None else np.asarray(lb, dtype=float)
        col_hi = np.full(c.size, inf) if ub is None else np.asarray(ub, dtype=float)
        vectors = (c, col_lo, col_hi, row_lo, b)
        reduced = self.mode == "reduced" or (
            self.mode == "auto" and c.size >= AUTO_REDUCED_MIN_COLS
        )
        if reduced:
            self._solve_reduced(problem, chain, inverse, a, vectors, options)
            return
        t0 = time.perf_counter()
        if self._same_matrix(a):
            self._options(self.h, options)
            self._push(*vectors)
            self.h.run()
            if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                self.retries += 1
                self._load(a, *vectors, options)
                self.h.run()
        else:
            self._load(a, *vectors, options)
            self.h.run()
        run_s = time.perf_counter() - t0  # getRunTime() accumulates over an object's runs
        h = self.h
        results = {
            "solution": h.getSolution(),
            "basis": h.getBasis(),
            "info": h.getInfo(),
            "model_status": h.getModelStatus().name,
            "run_time": run_s,
        }
        if results["model_status"] == "kInfeasible":
            results["dual_ray"] = h.getDualRay()
        problem.unpack_results(results, chain, inverse)

    def _solve_reduced(self, problem, chain, inverse, a, vectors, options: dict) -> None:
        c, col_lo, col_hi, row_lo, row_hi = vectors
        t0 = time.perf_counter()
        fixed = col_hi <= col_lo
        keep = np.flatnonzero(~fixed)
        x_fixed = np.where(fixed, col_lo, 0.0)
        shift = a @ x_fixed
        finite_shift = lambda bound: np.where(np.isfinite(bound), bound - shift, bound)  # noqa: E731
        self._load(
            a[:, keep], c[keep], col_lo[keep], col_hi[keep],
            finite_shift(row_lo), finite_shift(row_hi), options, keep=False,
        )  # fmt: skip
        self.h.run()
        h = self.h
        sol, info = h.getSolution(), h.getInfo()
        x = x_fixed.copy()
        if len(sol.col_value) == keep.size:
            x[keep] = np.asarray(sol.col_value)
        objective = float(info.objective_function_value) + float(c @ x_fixed)
        results = {
            "solution": _Solution(x, np.asarray(sol.row_dual)),
            "basis": None,
            "info": _Info(info, objective),
            "model_status": h.getModelStatus().name,
            "run_time": time.perf_counter() - t0,
        }
        if results["model_status"] == "kInfeasible":
            results["dual_ray"] = h.getDualRay()
        problem.unpack_results(results, chain, inverse)

    def _same_matrix(self, a) -> bool:
        """True when the loaded model holds ``a``: same shape and pattern, and values that are
        the same or were updated in place. Parameters that multiply variables (network
        sensitivities) change a few values: up to :data:`MAX_COEFF_CHANGES` are changed one
        by one (the basis survives); more, or a new pattern, reload the model."""
        old = self._a
        same_pattern = (
            self.h is not None
            and old is not None
            and old.shape == a.shape
            and old.nnz == a.nnz
            and np.array_equal(old.indptr, a.indptr)
            and np.array_equal(old.indices, a.indices)
        )
        if not same_pattern:
            return False
        changed = np.flatnonzero(old.data != a.data)
        if changed.size == 0:
            return True
        if changed.size > MAX_COEFF_CHANGES:
            return False
        cols = np.repeat(np.arange(a.shape[1]), np.diff(a.indptr))[changed]
        for k, j in zip(changed.tolist(), cols.tolist(), strict=True):
            self.h.changeCoeff(int(a.indices[k]), j, float(a.data[k]))
        self._a = a.copy()
        self.coeff_updates += 1
        return True

    def _load(self, a, c, col_lo, col_hi, row_lo, row_hi, options: dict, keep: bool = True) -> None:
        """A new HiGHS object with this LP; ``keep`` the matrix to compare the next one with
        (the reduced mode never compares: copying its matrix every interval was waste)."""
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        self._options(h, options)
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = c.size, row_hi.size
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = c, col_lo, col_hi
        lp.row_lower_, lp.row_upper_ = row_lo, row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_ = a.indptr, a.indices
        lp.a_matrix_.value_ = a.data
        h.passModel(lp)
        self.h, self._a = h, (a.copy() if keep else None)
        self.loads += 1

    @staticmethod
    def _options(h: highspy.Highs, options: dict) -> None:
        for name, value in options.items():
            if h.setOptionValue(name, value) == highspy.HighsStatus.kError:
                raise ValueError(f"HiGHS rejected option {name}={value!r}")

    def _push(self, c, col_lo, col_hi, row_lo, row_hi) -> None:
        cols = np.arange(c.size, dtype=np.int32)
        rows = np.arange(row_hi.size, dtype=np.int32)
        self.h.changeColsCost(c.size, cols, c)
        self.h.changeColsBounds(c.size, cols, col_lo, col_hi)
        self.h.changeRowsBounds(row_hi.size, rows, row_lo, row_hi)


class _Solution:
    """The full problem's primal values and the row duals, as cvxpy reads a HiGHS solution."""

    def __init__(self, col_value: np.ndarray, row_dual: np.ndarray):
        self.col_value = col_value
        self.row_dual = row_dual


class _Info:
    """HiGHS's info with the objective of the full problem (fixed columns included)."""

    def __init__(self, info, objective: float):
        self._info = info
        self.objective_function_value = objective

    def __getattr__(self, name: str):
        return getattr(self._info, name)
