"""Power-flow timings of the park network and the closed loop, medians of several runs.

    .venv/bin/python bench/grid.py [--runs 5] [--plain-runs 3]

Prints, for the demo park and SimBench 1-MV-comm--0-sw (96 steps of 15 minutes): time per
step and for the 96 steps with a plain ``runpp`` loop, with ``recycle``, and with the batched
solver of :mod:`vpp.grid.flow`, measured side by side, and the largest voltage difference to
plain ``runpp``. Then the two stress scenarios of :mod:`vpp.grid.scenarios` through
:func:`vpp.grid.loop.dispatch_ac_feasible` with the MPC controller: correction rounds, extra
solve time and cost of the fix; and ``ev_valley`` again with a forecast-error bound of 150 kW
at the B05 building (``ev_valley+err``): what the margin costs in validate time and money.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from vpp.grid.network import GridModel  # noqa: E402
from vpp.park.config import load_site  # noqa: E402

STEPS = 96


def _median_s(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def demo_case() -> tuple[GridModel, np.ndarray, np.ndarray]:
    grid = GridModel.from_site(load_site("configs/parks/demo.yaml"))
    rng = np.random.default_rng(0)
    P = np.zeros((STEPS, len(grid.buses)))
    lv = [k for k, b in enumerate(grid.buses) if b.endswith("-LV")]
    P[:, lv] = rng.uniform(-300.0, 1200.0, (STEPS, len(lv)))
    return grid, P, np.maximum(P, 0.0) * 0.33


def simbench_case(code: str = "1-MV-comm--0-sw") -> tuple[GridModel, np.ndarray, np.ndarray]:
    """The SimBench grid with its own profiles, moved onto one vpp load per bus."""
    import simbench

    net = simbench.get_simbench_net(code)
    prof = simbench.get_absolute_values(net, profiles_instead_of_study_cases=True)
    names = [str(n) for n in net.bus.name]
    pos = {int(i): k for k, i in enumerate(net.bus.index)}
    P = np.zeros((STEPS, len(names)))
    Q = np.zeros_like(P)
    for table, sign in (("load", 1.0), ("sgen", -1.0)):
        p = prof[(table, "p_mw")].to_numpy()[:STEPS] * 1e3 * sign
        cols = [pos[int(b)] for b in net[table].bus]
        np.add.at(P.T, cols, p.T)
        if table == "load":
            q = prof[(table, "q_mvar")].to_numpy()[:STEPS] * 1e3
            np.add.at(Q.T, cols, q.T)
        net[table]["in_service"] = False
    return GridModel(net, buses=names), P, Q


def bench_flow(label: str, grid: GridModel, P, Q, runs: int, plain_runs: int) -> None:
    t_plain, ref = _median_s(lambda: grid.power_flow_runpp(P, Q), plain_runs)
    t_rec, rec = _median_s(lambda: grid.power_flow_runpp(P, Q, recycle=True), runs)
    t_fast, fast = _median_s(lambda: grid.power_flow(P, Q), runs)
    t_val, _ = _median_s(
        lambda: grid.validate({b: P[:, k] for k, b in enumerate(grid.buses)}), runs
    )
    dv_rec = np.nanmax(np.abs(rec.vm_pu - ref.vm_pu))
    dv_fast = np.nanmax(np.abs(fast.vm_pu - ref.vm_pu))
    print(f"\n{label}: {len(grid.net.bus)} buses, {STEPS} steps (fast path: {grid.fast})")
    print(
        f"  {'method':<26}{'per step ms':>12}{'96 steps s':>12}{'vs plain':>10}{'max |dV| pu':>13}"
    )
    for name, t, dv in (
        ("runpp plain", t_plain, 0.0),
        ("runpp recycle", t_rec, dv_rec),
        ("batched Newton (vpp)", t_fast, dv_fast),
    ):
        print(f"  {name:<26}{t / STEPS * 1e3:>12.2f}{t:>12.3f}{t_plain / t:>9.1f}x{dv:>13.1e}")
    print(f"  validate() incl. report: {t_val:.3f} s for {STEPS} steps")


def _with_error(problem, site, opts, error_kw: float = 150.0):
    """``ev_valley`` with the B05 building's load forecast up to ``error_kw`` low every
    interval: the loop checks the plan at that bound too and keeps the margin (the stressed
    AC checks cost validate time; the margin costs money)."""
    import dataclasses

    bus = next(t.lv_bus for t in site.network.transformers if t.name == "T-B05")
    up = np.zeros((len(problem.buses), problem.n))
    up[problem.bus_index(bus)] = error_kw
    return dataclasses.replace(problem, bus_error_up_kw=up), site, opts


def bench_loop(runs: int) -> None:
    from controllers.mpc import MpcController
    from vpp.grid import scenarios as grid_scenarios
    from vpp.grid.loop import dispatch_ac_feasible

    site = load_site("configs/parks/demo.yaml")
    print("\nclosed loop (MpcController, medians over runs)")
    print(f"  {'scenario':<12}{'rounds':>7}{'feasible':>9}{'first solve s':>14}"
          f"{'extra solve s':>14}{'validate s':>11}{'cost of fix CNY':>16}")  # fmt: skip
    cases = [(fn.__name__, *fn(site)) for fn in (grid_scenarios.ev_valley, grid_scenarios.pv_noon)]
    cases.append(("ev_valley+err", *_with_error(*grid_scenarios.ev_valley(site))))
    for name, problem, s, opts in cases:
        grid = GridModel.from_site(s, opts)
        loops = [dispatch_ac_feasible(MpcController(), problem, grid)[1] for _ in range(runs)]
        first = statistics.median(lp.solve_s[0] for lp in loops)
        extra = statistics.median(lp.extra_solve_s for lp in loops)
        val = statistics.median(sum(lp.validate_s) for lp in loops)
        lp = loops[-1]
        print(f"  {name:<12}{lp.rounds:>7}{lp.feasible!s:>9}{first:>14.3f}{extra:>14.3f}"
              f"{val:>11.3f}{lp.cost_of_fix_cny:>16.2f}")  # fmt: skip
        for t in lp.tightened:
            print(
                f"    round {t.round}: {t.element} {t.kind} {t.worst_value:.4g} "
                f"at step {t.worst_step}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--plain-runs", type=int, default=3)
    args = ap.parse_args()
    bench_flow("demo park", *demo_case(), args.runs, args.plain_runs)
    bench_flow("SimBench 1-MV-comm--0-sw", *simbench_case(), args.runs, args.plain_runs)
    bench_loop(max(1, args.runs // 2))


if __name__ == "__main__":
    main()
