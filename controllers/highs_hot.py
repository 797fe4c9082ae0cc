"""HiGHS kept hot between re-solves of one cvxpy model.

cvxpy's HiGHS interface builds a new ``highspy.Highs`` object for every solve. With DPP the
constraint matrix of a model does not change between intervals, only costs, column bounds
and row bounds do; :class:`HotHighs` loads the matrices once (from
``problem.get_problem_data``), then pushes only those vectors and restarts HiGHS from the
previous basis. The result goes back through cvxpy's own ``unpack_results``, so variable
values, status and solver statistics read as after ``problem.solve``.

A restart that ends neither optimal nor at a limit is solved again from scratch on a fresh
object (restarts that stall are a known HiGHS issue); when the matrix does change, the model
is reloaded (mode ``basis``) or is new anyway (mode ``reduced``). LPs only: the caller keeps
MILPs on the ordinary path.
"""

from __future__ import annotations

import time

import cvxpy as cp
import highspy
import numpy as np

from controllers.lp_reduce import ReducedLp, reduce_lp

MODES = ("auto", "basis", "reduced", "reduced-cold")
# "auto" is the mode measured fastest at every size: "reduced". Side by side with
# bench/dispatch.py it ties the basis restart at S and M and wins from L up; in closed loop on
# the demo park (time axis moving) one day took 7.3 s against 11.1 s.
AUTO_MODE = "reduced"
# HiGHS statuses that stop a run early with what it has: no retry, the solution if any.
LIMITS = frozenset(
    {"kTimeLimit", "kIterationLimit", "kObjectiveBound", "kObjectiveTarget", "kSolutionLimit"}
)
# Threads for one solve. One by default: a park controller shares its host with the
# database, the API and the field drivers. Measured side by side (bench/dispatch.py
# --contend 0,1,2, L, 2 cores): idle, two threads 0.276 s against one 0.303 s (+10 %); with
# one busy process 0.587 against 0.333 s, with two 1.211 against 0.432 s: HiGHS's parallel
# dual simplex waits on a core that is not free. With threads > 1 (``highs_threads``), LPs
# of at least PARALLEL_MIN_COLS columns run it (same iterations, same optimum).
DEFAULT_THREADS = 1
PARALLEL_MIN_COLS = 20_000
# Matrix values changed in place before the model is reloaded instead (one call each).
MAX_COEFF_CHANGES = 50_000


class HotHighs:
    """HiGHS for one cvxpy problem, restarted from its last basis.

    ``mode="basis"`` keeps one ``highspy.Highs`` object with the full LP and pushes only
    costs and bounds. ``mode="reduced"`` solves each interval's LP after the light presolve
    of :mod:`controllers.lp_reduce` (columns the bounds fix, one-entry rows, rows that
    cannot bind, columns in no row, parallel columns): most columns of a large park are
    fixed in any one interval. The reduced LP starts from the last interval's basis, mapped
    by full column and row index (HiGHS skips its own presolve when given a basis, which is
    why the reduction is done here). ``"reduced-cold"`` is the same LP from scratch with
    HiGHS's presolve, kept to measure the restart against.
    """

    def __init__(self, mode: str = "auto", threads: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"HotHighs mode {mode!r}: expected one of {MODES}")
        self.mode = mode
        self.threads = DEFAULT_THREADS if threads is None else max(1, int(threads))
        self.h: highspy.Highs | None = None
        self._a = None  # the loaded matrix (scipy CSC), to detect a changed one
        self.loads = 0  # times the matrices were (re)loaded
        self.retries = 0  # restarts that failed and were solved again from scratch
        self.coeff_updates = 0  # times matrix values were changed in place
        self._basis = None  # reduced mode: last (column, row) statuses by full index
        self.warm_starts = 0  # reduced mode: solves started from the last basis
        self.pool_resets = 0  # HiGHS thread pools rebuilt for this object's thread count
        self.last_timings_s: dict[str, float] = {}  # reduced mode: the last solve's steps
        self._started = 0.0  # when the current solve began (perf_counter)

    def solve(self, problem: cp.Problem, options: dict) -> None:
        """Solve ``problem`` (an LP) with HiGHS and unpack the result into it.

        ``options``: HiGHS options (``time_limit`` ...), applied to every run; a second run
        of one solve gets what is left of the time limit.
        """
        self._started = time.perf_counter()
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
        mode = AUTO_MODE if self.mode == "auto" else self.mode
        reduced = mode in ("reduced", "reduced-cold")
        if reduced:
            self._solve_reduced(problem, chain, inverse, a, vectors, options)
            return
        t0 = time.perf_counter()
        if self._same_matrix(a):
            self._options(self.h, options)
            self._push(*vectors)
            self._run()
            if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                self.retries += 1
                self._load(a, *vectors, self._time_left(options))
                self._run()
        else:
            self._load(a, *vectors, options)
            self._run()
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
        t0 = time.perf_counter()
        lp = reduce_lp(a, *vectors)
        t_reduced = time.perf_counter()
        status = "kInfeasible"  # an empty row out of its bounds
        if lp.empty_rows_feasible:
            status = self._run_reduced(lp, options)
        t_run = time.perf_counter()
        h = self.h
        if status == "kOptimal" or (status in LIMITS and h.getSolution().value_valid):
            sol, info = h.getSolution(), h.getInfo()
            row_dual, col_dual = np.asarray(sol.row_dual), np.asarray(sol.col_dual)
            if not sol.dual_valid or row_dual.size != lp.row_hi.size:  # stopped at a limit
                row_dual, col_dual = np.zeros(lp.row_hi.size), np.zeros(lp.c.size)
            x, y = lp.restore(np.asarray(sol.col_value), row_dual, col_dual)
            objective = float(info.objective_function_value) + lp.objective_offset
            if status == "kOptimal":
                self._remember_basis(lp, h.getBasis(), a.shape)
        else:
            # Infeasible, unbounded, no solution: the full LP from scratch, so that status,
            # dual ray and whatever solution there is are the full problem's.
            self._basis = None
            self._load(a, *vectors, self._time_left(options), keep=False)
            self._run()
            h = self.h
            sol, info = h.getSolution(), h.getInfo()
            status = h.getModelStatus().name
            x, y = np.asarray(sol.col_value), np.asarray(sol.row_dual)
            objective = float(info.objective_function_value)
        results = {
            "solution": _Solution(x, y),
            "basis": None,
            "info": _Info(info, objective),
            "model_status": status,
            "run_time": time.perf_counter() - t0,
        }
        if status == "kInfeasible":
            results["dual_ray"] = h.getDualRay()
        problem.unpack_results(results, chain, inverse)
        self.last_timings_s = {
            "lp_reduce_s": t_reduced - t0,
            "highs_run_s": t_run - t_reduced,
            "lp_restore_s": time.perf_counter() - t_run,
        }

    def _run_reduced(self, lp: ReducedLp, options: dict) -> str:
        """Solve the reduced LP from the last basis when there is one; a restart that ends
        neither optimal nor at a limit (a stall) is solved again from scratch."""
        reduced = (lp.a, lp.c, lp.col_lo, lp.col_hi, lp.row_lo, lp.row_hi)
        self._load(*reduced, options, keep=False)
        warm = self._warm_basis(lp)
        if warm is not None:
            self.h.setBasis(warm)
            self.warm_starts += 1
        self._run()
        status = self.h.getModelStatus().name
        if warm is not None and status != "kOptimal" and status not in LIMITS:
            self.retries += 1
            self._load(*reduced, self._time_left(options), keep=False)
            self._run()
            status = self.h.getModelStatus().name
        return status

    def _time_left(self, options: dict) -> dict:
        """``options`` with the time limit less what this solve has used: a second run (a
        stalled restart, or the full LP for its status) shares the first run's limit."""
        if "time_limit" not in options:
            return options
        used = time.perf_counter() - self._started
        return {**options, "time_limit": max(0.1, float(options["time_limit"]) - used)}

    def _warm_basis(self, lp: ReducedLp) -> highspy.HighsBasis | None:
        """The last interval's basis on this reduced LP, by full column and row index.

        Columns taken out last time start nonbasic at their lower bound, rows taken out
        basic; the count of basic variables is off when the sets changed, so the basis is
        marked alien and HiGHS mends it."""
        if self._basis is None or self.mode == "reduced-cold":  # "auto" restarts
            return None
        col_status, row_status = self._basis
        if col_status.size != lp.x_fixed.size or row_status.size != lp.n_rows_full:
            return None
        basis = highspy.HighsBasis()
        basis.col_status = _STATUSES[col_status[lp.keep]].tolist()
        basis.row_status = _STATUSES[row_status[lp.rows]].tolist()
        basis.valid = True
        basis.alien = True
        return basis

    def _remember_basis(self, lp: ReducedLp, basis: highspy.HighsBasis, shape) -> None:
        if not basis.valid:
            self._basis = None
            return
        n_rows, n_cols = shape
        col_status = np.full(n_cols, _LOWER, dtype=np.int8)
        row_status = np.full(n_rows, _BASIC, dtype=np.int8)
        col_status[lp.keep] = [s.value for s in basis.col_status]
        row_status[lp.rows] = [s.value for s in basis.row_status]
        self._basis = (col_status, row_status)

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
        # The flat-array form of passModel: one copy into HiGHS (a HighsLp copies twice,
        # 75 ms against 13 ms at XL). Integrality all continuous: this is an LP.
        status = h.passModel(
            c.size, row_hi.size, a.nnz,
            int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize), 0.0,
            c, col_lo, col_hi, row_lo, row_hi,
            a.indptr.astype(np.int32), a.indices.astype(np.int32), a.data,
            np.zeros(c.size, dtype=np.int32),
        )  # fmt: skip
        if status == highspy.HighsStatus.kError:
            raise ValueError("HiGHS refused the LP (passModel)")
        self._options(h, self._thread_options(c.size))
        self.h, self._a = h, (a.copy() if keep else None)
        self.loads += 1

    def _thread_options(self, n_cols: int) -> dict:
        if self.threads <= 1:
            return {}
        out = {"threads": self.threads}
        if n_cols >= PARALLEL_MIN_COLS:
            out |= {"simplex_strategy": 2, "simplex_max_concurrency": self.threads}
        return out

    def _run(self) -> None:
        """Run HiGHS. Its thread pool is one per process, sized by the first run that asked
        for a number of threads: when another size was asked first (a plain cvxpy solve with
        ``threads`` set), HiGHS refuses; the pool is then rebuilt and the run repeated."""
        status = self.h.run()
        if (
            status == highspy.HighsStatus.kError
            and self.h.getModelStatus() == highspy.HighsModelStatus.kNotset
            and self.threads > 1
        ):
            highspy.Highs.resetGlobalScheduler(True)
            self.pool_resets += 1
            self.h.run()

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


# Basis statuses kept as int8 (HiGHS's enum values); _STATUSES maps them back.
_STATUSES = np.array(list(highspy.HighsBasisStatus.__members__.values()), dtype=object)
_STATUSES = _STATUSES[np.argsort([s.value for s in _STATUSES])]
_LOWER = highspy.HighsBasisStatus.kLower.value
_BASIC = highspy.HighsBasisStatus.kBasic.value


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
