"""Closed-loop simulation speed on the demo park: cycles per second, p50/p95 cycle time and
the projected time of the 30-day goal (2,880 cycles with forecasting, dispatch and, with
``--grid``, the AC network check), under 10 minutes.

    .venv/bin/python bench/simulate.py [--days 1] [--controller mpc] [--forecast naive]
                                       [--grid] [--start 2026-07-13]

A cycle is everything the loop does per interval: read the park, forecast, prepare, dispatch
(one re-solve of the same cvxpy model), clamp, apply the physics, record. Wall time and the
process's CPU time are both printed: on a shared machine the load average inflates wall time.
The one-off set-up (history, model fit for ``--forecast model``) is reported apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from vpp.park.config import load_site  # noqa: E402
from vpp.sim.closed_loop import simulate  # noqa: E402

GOAL_CYCLES = 2880
GOAL_S = 600.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/parks/demo.yaml")
    ap.add_argument("--start", default="2026-07-13")
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--controller", default="mpc")
    ap.add_argument("--forecast", default="naive", choices=["naive", "model", "perfect"])
    ap.add_argument("--grid", action="store_true")
    args = ap.parse_args()
    site = load_site(args.config)
    start = datetime.combine(date.fromisoformat(args.start), dtime(0), ZoneInfo(site.location.tz))
    load0 = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    r = simulate(site, start, args.days, args.controller, args.forecast, grid=args.grid)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    cyc = np.array([c.cycle_s for c in r.cycles])
    loop_s = float(cyc.sum())
    setup_s = wall - loop_s
    per = loop_s / len(cyc)
    cpu_per = cpu / len(cyc)  # includes the set-up: an upper bound
    print(f"park {site.name}; {args.controller}, forecast {args.forecast}, grid {args.grid}")
    print(f"cycles {len(cyc)} ({args.days:g} days from {args.start}), horizon "
          f"{site.dispatch.horizon_steps} steps")  # fmt: skip
    print(f"set-up {setup_s:.1f} s; loop {loop_s:.1f} s wall, {cpu:.1f} s CPU (all)")
    print(f"cycles/s {1 / per:.2f}; cycle p50 {1000 * np.median(cyc):.0f} ms, "
          f"p95 {1000 * np.percentile(cyc, 95):.0f} ms, mean {1000 * per:.0f} ms")  # fmt: skip
    proj = GOAL_CYCLES * per + setup_s
    proj_cpu = GOAL_CYCLES * cpu_per
    print(f"projected 30 days ({GOAL_CYCLES} cycles): {proj / 60:.1f} min wall, "
          f"{proj_cpu / 60:.1f} min CPU (goal {GOAL_S / 60:.0f} min: "
          f"{'met' if proj <= GOAL_S else 'NOT met'} on wall time)")  # fmt: skip
    print(f"load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"solver fallbacks {r.kpis['solver_failures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
