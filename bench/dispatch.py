"""Dispatch benchmark: the MPC LP on synthetic parks S to XL, against HiGHS called directly.

    .venv/bin/python bench/dispatch.py [--sizes S,M,L,XL] [--runs 5] [--variants full,red,agg-red]

Each (size, variant) runs in its own subprocess so that peak memory and caches do not leak
between them. Per row: build time (cvxpy expressions), first solve (compile + solve +
extraction), median re-solve over ``--runs`` perturbed problems with the same structure (the
controller re-uses its cvxpy model; new prices, forecasts, SOC, session energies), peak
resident memory of the process after the cvxpy path, and the reference: the same LP's
matrices taken once from ``problem.get_problem_data(cp.HIGHS)``, loaded into one
``highspy.Highs`` object and re-solved with only costs, column bounds and row bounds changed
(hot start from the previous basis), side by side on the same perturbed problems. ``ratio``
is re-solve / direct. ``gap`` is the objective of each re-solve, measured by the numpy
yardstick :func:`controllers.costs.evaluate` on the plan the variant returns, against the
full formulation's optimum on the same problem (max over runs, in percent; the full
formulation is always run). ``inv`` counts broken invariants over all re-solves, ``builds``
the cvxpy models built, ``iters`` the median solver iterations of a re-solve (simplex
iterations do not depend on the machine's load, seconds do).

Variants (see :data:`VARIANTS`): ``full`` is the plain per-slot DPP formulation; ``agg``
aggregates EV sessions into virtual EVs (controllers.ev_aggregate); ``hot`` keeps HiGHS
hot between re-solves and restarts it from the last basis (controllers.highs_hot);
``agg-hot`` both (mode ``basis``, the full LP); ``red`` is the controller's default: each
interval's LP through controllers.lp_reduce, started from the last basis, on the default
number of threads (one: see ``--contend``; ``highs_mode="reduced"``, which ``auto`` picks);
``agg-red`` with virtual EVs; ``red-1t`` and ``agg-red-1t`` on one thread, ``red-2t`` on
two; ``red-cold`` and ``agg-red-cold`` the same reduced LP from
scratch with HiGHS's presolve. The machine is noisy: differences under about 20 % are
noise, far more when other jobs share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cvxpy as cp  # noqa: E402
import highspy  # noqa: E402
import numpy as np  # noqa: E402

from bench.parks import SIZES, make_problem, perturb  # noqa: E402
from controllers import costs, invariants  # noqa: E402
from controllers.mpc import MpcController  # noqa: E402

VARIANTS: dict[str, dict] = {
    "full": {"hot_start": False},
    "agg": {"ev_aggregate": True, "hot_start": False},
    "hot": {"hot_start": True, "highs_mode": "basis"},
    "agg-hot": {"ev_aggregate": True, "hot_start": True, "highs_mode": "basis"},
    "red": {"hot_start": True, "highs_mode": "reduced"},
    "agg-red": {"ev_aggregate": True, "hot_start": True, "highs_mode": "reduced"},
    "red-cold": {"hot_start": True, "highs_mode": "reduced-cold"},
    "agg-red-cold": {"ev_aggregate": True, "hot_start": True, "highs_mode": "reduced-cold"},
    "red-1t": {"hot_start": True, "highs_mode": "reduced", "highs_threads": 1},
    "red-2t": {"hot_start": True, "highs_mode": "reduced", "highs_threads": 2},
    "agg-red-1t": {
        "ev_aggregate": True,
        "hot_start": True,
        "highs_mode": "reduced",
        "highs_threads": 1,
    },
}


def make_controller(variant: str) -> MpcController:
    return MpcController(**VARIANTS[variant])


# --------------------------------------------------------------------------------------------
# Direct HiGHS on the model's own matrices, hot-started
# --------------------------------------------------------------------------------------------
class DirectHighs:
    """One ``highspy.Highs`` object holding the LP; later solves push costs and bounds only."""

    def __init__(self) -> None:
        self.h: highspy.Highs | None = None
        self.a_data: np.ndarray | None = None
        self.reloads = 0

    def solve(self, data: dict) -> tuple[float, float]:
        """Solve the LP in cvxpy's HiGHS ``data``; returns (objective without offset, seconds)."""
        inf = highspy.kHighsInf
        c = np.asarray(data["c"], dtype=float)
        a = data["A"].tocsc()
        b = np.asarray(data["b"], dtype=float)
        dims = data["dims"]
        n_eq = dims.zero
        row_lo = np.concatenate([b[:n_eq], np.full(b.size - n_eq, -inf)])
        lb, ub = data.get("lower_bounds"), data.get("upper_bounds")
        col_lo = np.full(c.size, -inf) if lb is None else np.asarray(lb, dtype=float)
        col_hi = np.full(c.size, inf) if ub is None else np.asarray(ub, dtype=float)
        t0 = time.perf_counter()
        same = (
            self.h is not None
            and self.a_data is not None
            and self.a_data.shape == a.data.shape
            and np.array_equal(self.a_data, a.data)
        )
        if not same:
            self.reloads += 1
            self.h = highspy.Highs()
            self.h.setOptionValue("output_flag", False)
            lp = highspy.HighsLp()
            lp.num_col_, lp.num_row_ = c.size, b.size
            lp.col_cost_, lp.col_lower_, lp.col_upper_ = c, col_lo, col_hi
            lp.row_lower_, lp.row_upper_ = row_lo, b
            lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
            lp.a_matrix_.start_, lp.a_matrix_.index_ = a.indptr, a.indices
            lp.a_matrix_.value_ = a.data
            self.h.passModel(lp)
            self.a_data = a.data.copy()
        else:
            cols = np.arange(c.size, dtype=np.int32)
            rows = np.arange(b.size, dtype=np.int32)
            self.h.changeColsCost(c.size, cols, c)
            self.h.changeColsBounds(c.size, cols, col_lo, col_hi)
            self.h.changeRowsBounds(b.size, rows, row_lo, b)
        self.h.run()
        dt = time.perf_counter() - t0
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"direct HiGHS: {self.h.modelStatusToString(status)}")
        return float(self.h.getInfo().objective_function_value), dt


# --------------------------------------------------------------------------------------------
# One (size, variant) in this process
# --------------------------------------------------------------------------------------------
def run_one(size: str, variant: str, runs: int) -> dict:
    base = make_problem(size, seed=0)
    problems = [perturb(base, seed=s) for s in range(1, runs + 1)]
    ctrl = make_controller(variant)
    t0 = time.perf_counter()
    r0 = ctrl.dispatch(base)
    first_total = time.perf_counter() - t0
    build = float(r0.timings_s.get("build_s", 0.0))
    times, objs, bad, stats, iters = [], [], 0, [], []
    for q in problems:
        t0 = time.perf_counter()
        r = ctrl.dispatch(q)
        times.append(time.perf_counter() - t0)
        objs.append(costs.total(costs.evaluate(q, r)))
        bad += len(invariants.check(q, r))
        stats.append(r.timings_s)
        iters.append(ctrl._model(q, integer=False)[0].problem.solver_stats.num_iters or 0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    # The reference: the same model's LP through highspy directly, hot-started.
    builds = ctrl.builds
    info = ctrl._model(problems[-1], integer=False)[0].problem.solver_stats.extra_stats
    last_obj = float(getattr(info, "objective_function_value", np.nan))
    direct, direct_times, val = DirectHighs(), [], np.nan
    for q in [base, *problems]:
        model = ctrl._model(q, integer=False)[0]
        model.update(q)
        data, _, _ = model.problem.get_problem_data(cp.HIGHS)
        val, dt = direct.solve(data)
        direct_times.append(dt)
    return {
        "size": size,
        "variant": variant,
        "build_s": build,
        "first_s": first_total - build,
        "resolve_s": statistics.median(times),
        "resolve_all_s": times,
        "peak_mb": peak_mb,
        "direct_s": statistics.median(direct_times[1:]) if runs else direct_times[0],
        "direct_first_s": direct_times[0],
        "direct_vs_cvxpy_rel": abs(val - last_obj) / max(1.0, abs(last_obj)),
        "direct_reloads": direct.reloads,
        "objs": objs,
        "invariant_violations": bad,
        "builds": builds,
        "iters": statistics.median(iters),
        "n_cols": int(data["A"].shape[1]),
        "n_rows": int(data["A"].shape[0]),
        "solver_s": statistics.median(s.get("solver_s", float("nan")) for s in stats),
        "compile_s": statistics.median(s.get("compile_s", float("nan")) for s in stats),
    }


# --------------------------------------------------------------------------------------------
# Driver: one subprocess per (size, variant), then the table
# --------------------------------------------------------------------------------------------
def _child(size: str, variant: str, runs: int) -> dict:
    cmd = [sys.executable, __file__, "--one", f"{size}:{variant}", "--runs", str(runs)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{size}/{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Busy:
    """``n`` processes that spin on a core each while the block runs (a host shared with a
    database, the API and field drivers); each stops by itself after ``limit_s``."""

    def __init__(self, n: int, limit_s: float = 3600.0):
        self.n, self.limit_s, self.procs = n, limit_s, []

    def __enter__(self):
        spin = f"import time\nt=time.monotonic()+{self.limit_s}\nwhile time.monotonic()<t: pass"
        self.procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(self.n)]
        time.sleep(1.0 if self.n else 0.0)  # let them take their cores
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        return False


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="S,M,L,XL")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--variants", default="full,red,agg-red")
    ap.add_argument(
        "--contend",
        default="0",
        help="comma-separated numbers of busy processes to run alongside (e.g. 0,1,2): the "
        "table is printed for each, so a default that wins idle is seen on a busy host too",
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        size, variant = args.one.split(":")
        print(json.dumps(run_one(size, variant, args.runs)))
        return
    variants = [v for v in args.variants.split(",") if v]
    if "full" not in variants:
        variants.insert(0, "full")
    head = (
        f"{'size':<4} {'variant':<8} {'cols':>7} {'rows':>7} {'build s':>8} {'first s':>8} "
        f"{'re-solve s':>10} {'solver s':>9} {'peak MB':>8} {'direct s':>9} {'ratio':>6} "
        f"{'gap %':>7} {'inv':>4} {'builds':>6} {'iters':>6}"
    )
    print(f"dispatch bench: {args.runs} re-solves per row, medians, 96 steps of 15 min")
    for n_busy in [int(x) for x in args.contend.split(",") if x.strip()]:
        with Busy(n_busy):
            print(f"\n{n_busy} competing busy processes (load average {os.getloadavg()[0]:.1f})")
            print(head)
            _table(args, variants)


def _table(args, variants: list[str]) -> None:
    for size in [s for s in args.sizes.split(",") if s]:
        if size not in SIZES:
            raise SystemExit(f"unknown size {size!r}: expected one of {', '.join(SIZES)}")
        full = None
        for variant in variants:
            row = _child(size, variant, args.runs)
            if variant == "full":
                full = row
            ref = np.asarray(full["objs"]) if full else np.asarray(row["objs"])
            gap = 100.0 * float(np.max((np.asarray(row["objs"]) - ref) / np.abs(ref)))
            print(
                f"{size:<4} {variant:<8} {row['n_cols']:>7} {row['n_rows']:>7} "
                f"{row['build_s']:>8.3f} {row['first_s']:>8.3f} {row['resolve_s']:>10.3f} "
                f"{row['solver_s']:>9.3f} {row['peak_mb']:>8.0f} {row['direct_s']:>9.3f} "
                f"{row['resolve_s'] / row['direct_s']:>6.2f} {gap:>7.3f} "
                f"{row['invariant_violations']:>4} {row['builds']:>6} {row['iters']:>6.0f}",
                flush=True,
            )
            if row["direct_vs_cvxpy_rel"] > 1e-6:
                rel = row["direct_vs_cvxpy_rel"]
                print(f"     direct HiGHS objective differs from cvxpy's by {rel:.1e}")


if __name__ == "__main__":
    main()
