"""The scenario suite: every scenario of configs/scenarios/ through the controllers ``mpc``,
``rule`` and ``uncontrolled`` over several seeds, in closed loop with the AC network check,
and what the simulated park did (the realised KPIs) side by side.

    .venv/bin/python bench/scenarios.py [--scenarios NAME|FILE,...] [--seeds 3] [--days D]
        [--controllers mpc,rule,uncontrolled] [--risk 0,0.5,1] [--tracking on|off|both]
        [--workers 2] [--json OUT]

Each case (scenario x controller x seed) is one :func:`vpp.sim.closed_loop.simulate` with
``grid=True`` (the planner validates and corrects each dispatch with the AC power flow; the
realised AC flow of what every bus drew runs after the run whatever the controller), on the
scenario's park, DR calls, start, forecast and truth (:mod:`vpp.sim.scenarios`). ``--days``
shortens (or lengthens) every scenario from its own start; ``--risk`` runs ``mpc`` once per
``risk_frac`` (the park's ``dispatch.risk_frac`` replaced); ``--tracking off`` turns the
local loop on the park meter off (``dispatch.grid_point_tracking``, :mod:`controllers.tracking`)
for every controller, ``both`` runs ``mpc`` with and without it (column ``mpc no-track``).
Cases run in ``--workers`` processes.

One table per scenario: a row per figure, a column per controller, each cell the median over
the seeds and [min-max]. Figures are the realised park's, except those named ``plan_``:

- ``total_cost_cny`` = energy + demand charge + stored-energy change - DR compensation
  (:mod:`vpp.accounting.kpis`), and its parts;
- ``peak_import_kw``;
- ``trafo_`` / ``line_`` / ``voltage_violation_steps``: intervals in which the realised AC flow
  broke a transformer's or cable's loading limit or a bus voltage band;
  ``converter_short_steps``: intervals in which a PEDF building's converter could not carry
  the building (unserved load or spilled PV);
- ``plan_grid_violation_steps``: intervals whose applied plan still broke a network limit in
  the planner's AC check; ``plan_relaxation_cycles``: plans that relaxed an avoidable limit;
- ``dr_events_effective`` of ``dr_events_settled`` (``dr_events_declined``: invitations the
  park declined, not settled); ``ev_sessions_short`` of ``ev_sessions``,
  ``ev_short_kwh``; ``unserved_kwh``; ``solver_failures``; ``tracking_kwh``: the battery
  energy the local loop moved away from the plan (both ways); ``wall_s`` per case.

Above each table, the naive forecaster's error on the scenario's truth (day-ahead forecasts
issued every 3 h over the run, :func:`vpp.sim.scenarios.forecast_error`): what "honestly wrong"
means there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from vpp.sim.scenarios import (  # noqa: E402
    find_scenario,
    forecast_error,
    load_scenario,
    scenario_files,
)

CONTROLLERS = ("mpc", "rule", "uncontrolled")
# (figure, how it reads) in table order; realised unless the name starts with plan_.
FIGURES = (
    ("total_cost_cny", "money"),
    ("energy_cost_cny", "money"),
    ("demand_charge_cny", "money"),
    ("stored_energy_cost_cny", "money"),
    ("dr_compensation_cny", "money"),
    ("peak_import_kw", "kw"),
    ("trafo_violation_steps", "count"),
    ("line_violation_steps", "count"),
    ("voltage_violation_steps", "count"),
    ("converter_short_steps", "count"),
    ("plan_grid_violation_steps", "count"),
    ("plan_relaxation_cycles", "count"),
    ("dr_events_effective", "count"),
    ("dr_events_settled", "count"),
    ("dr_events_declined", "count"),
    ("ev_sessions_short", "count"),
    ("ev_sessions", "count"),
    ("ev_short_kwh", "kwh"),
    ("unserved_kwh", "kwh"),
    ("solver_failures", "count"),
    ("tracking_kwh", "kwh"),
    ("wall_s", "seconds"),
)
TOL = 1e-9  # as the network check's own comparison (vpp.grid.network)


# ------------------------------------------------------------------------------------------
# One case (in a worker process)
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    scenario: str  # path of the scenario file
    controller: str
    seed: int
    days: float | None
    risk: float | None  # mpc's risk_frac; None: the park's own
    tracking: bool = True  # dispatch.grid_point_tracking

    @property
    def label(self) -> str:
        out = self.controller if self.risk is None else f"{self.controller} r={self.risk:g}"
        return out if self.tracking else f"{out} no-track"


def _die_with_parent() -> None:
    """A worker ends when the bench does (Linux ``PR_SET_PDEATHSIG``): a bench killed with
    its cases running left its spawned workers simulating for another 40 minutes."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):  # not Linux: they end with the queue
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_case(case: Case) -> dict:
    """Simulate one case and return its figures (plain numbers, JSON-ready)."""
    from vpp.sim.closed_loop import simulate

    sc = load_scenario(case.scenario)
    site = sc.site
    if case.risk is not None:
        site = dataclasses.replace(
            site, dispatch=dataclasses.replace(site.dispatch, risk_frac=case.risk)
        )
    if not case.tracking:
        site = dataclasses.replace(
            site, dispatch=dataclasses.replace(site.dispatch, grid_point_tracking=False)
        )
    days = sc.days if case.days is None else case.days
    t0 = time.perf_counter()
    r = simulate(
        site,
        sc.start,
        days,
        case.controller,
        sc.forecast,
        seed=case.seed,
        dr_events=sc.events,
        grid=True,
        options=sc.options,
    )
    wall = time.perf_counter() - t0
    return {
        "scenario": sc.name,
        "controller": case.label,
        "seed": case.seed,
        "days": days,
        "risk_frac": site.dispatch.risk_frac,
        "grid_point_tracking": site.dispatch.grid_point_tracking,
        "forecast": sc.forecast,
        "figures": figures(r, wall),
        # What the table cannot say: each DR event's settlement, who gave way, and why each
        # realised network violation happened (the KPIs' own lists, realised).
        "details": {
            key: r.kpis.get(key)
            for key in (
                "dr_per_event",
                "dr_declined",
                "ev_sessions_left_short",
                "shiftable_windows_short",
                "grid_violations",
                "demand_by_month",
            )
        },
    }


def figures(r, wall_s: float) -> dict:
    """The table's figures of one run (realised, except ``plan_*``)."""
    k, s, nw = r.kpis, r.series, r.site.network
    n = r.horizon.n

    def steps(mask) -> int | None:
        return int(np.sum(mask)) if r.realised_grid.checked else None

    trafo = s.get("trafo_loading_max_percent", np.full(n, np.nan))
    line = s.get("line_loading_max_percent", np.full(n, np.nan))
    v_lo = s.get("v_min_pu", np.full(n, np.nan))
    v_hi = s.get("v_max_pu", np.full(n, np.nan))
    short = (s.get("unserved_kw", np.zeros(n)) > 1e-6) | (
        s.get("pv_spilled_kw", np.zeros(n)) > 1e-6
    )
    return {
        "total_cost_cny": k["total_cost_cny"],
        "energy_cost_cny": k["energy_cost_cny"],
        "demand_charge_cny": k["demand_charge_cny"],
        "stored_energy_cost_cny": k["stored_energy_cost_cny"],
        "dr_compensation_cny": k["dr_compensation_cny"],
        "peak_import_kw": k["peak_import_kw"],
        "trafo_violation_steps": steps(trafo > nw.loading_max_percent + TOL),
        "line_violation_steps": steps(line > nw.loading_max_percent + TOL),
        "voltage_violation_steps": steps((v_lo < nw.v_min_pu - TOL) | (v_hi > nw.v_max_pu + TOL)),
        "grid_violation_steps": k["grid_violation_steps"],
        "converter_short_steps": int(np.sum(short)) if r.site.assets.pedf_buildings else None,
        "plan_grid_violation_steps": k["plan_grid_violation_steps"],
        "plan_relaxation_cycles": k.get("plan_relaxation_cycles"),
        "dr_events_effective": k["dr_events_effective"],
        "dr_events_settled": k["dr_events"],
        "dr_events_declined": k.get("dr_events_declined"),
        "ev_sessions_short": k.get("ev_sessions_unmet"),
        "ev_sessions": k.get("ev_sessions"),
        "ev_short_kwh": k["ev_unmet_kwh"],
        "unserved_kwh": k["unserved_kwh"],
        "solver_failures": k["solver_failures"],
        "tracking_kwh": k["tracking_kwh"],
        "wall_s": wall_s,
    }


def run_forecast(path: str, seed: int, days: float | None) -> dict:
    """The naive forecaster's error on one scenario's truth (one seed)."""
    sc = load_scenario(path)
    e = forecast_error(sc.site, sc.start, sc.days if days is None else days, sc.options, seed)
    return {"scenario": sc.name, "seed": seed, **dataclasses.asdict(e)}


# ------------------------------------------------------------------------------------------
# The tables
# ------------------------------------------------------------------------------------------
def _num(v: float, kind: str) -> str:
    if kind == "count":
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    if kind == "seconds":
        return f"{v:.0f}"
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:,.1f}"


def cell(values: list, kind: str) -> str:
    """Median [min-max] over the seeds ('-' where not measured)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return "-"
    med = _num(float(np.median(vals)), kind)
    lo, hi = _num(min(vals), kind), _num(max(vals), kind)
    return med if lo == hi else f"{med} [{lo}..{hi}]"


def table(name: str, rows: list[dict], controllers: list[str]) -> list[str]:
    """One scenario's table: a row per figure, a column per controller."""
    head = "figure (realised unless plan_)"
    cols = {c: [r["figures"] for r in rows if r["controller"] == c] for c in controllers}
    cells = {
        c: [cell([f[key] for f in cols[c]], kind) for key, kind in FIGURES] for c in controllers
    }
    width = max(
        16, *(len(x) + 2 for c in controllers for x in cells[c]), *(len(c) + 2 for c in controllers)
    )
    first = max(len(head), *(len(k) for k, _ in FIGURES)) + 1
    seeds = sorted({r["seed"] for r in rows})
    out = [f"{head.ljust(first)}" + "".join(c.rjust(width) for c in controllers)]
    for i, (key, _) in enumerate(FIGURES):
        out.append(key.ljust(first) + "".join(cells[c][i].rjust(width) for c in controllers))
    out.append(f"(median [min..max] over seeds {seeds}; {len(rows)} cases)")
    return out


def forecast_line(rows: list[dict]) -> str:
    def med(key: str) -> str:
        vals = [r[key] for r in rows if r[key] is not None]
        return "-" if not vals else f"{100 * float(np.median(vals)):.1f} %"

    return (
        f"naive forecast on this truth (day-ahead, issued every 3 h, median over seeds): park "
        f"load MAPE {med('load_mape')}, load bias {med('load_bias')}, PV WAPE {med('pv_wape')}"
    )


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------
def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated scenario names (file stems in configs/scenarios/) or files "
        "(default all scenario files)",
    )
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per case (3)")
    ap.add_argument("--days", type=float, help="run length from each scenario's start (days)")
    ap.add_argument("--controllers", default=",".join(CONTROLLERS))
    ap.add_argument("--risk", type=_floats, help="risk_frac values to sweep for mpc, e.g. 0,0.5,1")
    ap.add_argument(
        "--tracking",
        choices=("on", "off", "both"),
        default="on",
        help="the local loop on the park meter: on (default), off, or both for mpc",
    )
    ap.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write every case's figures")
    return ap.parse_args(argv)


def cases_of(args: argparse.Namespace, paths: list[str]) -> list[Case]:
    ctrls = [c.strip() for c in args.controllers.split(",") if c.strip()]
    bad = [c for c in ctrls if c not in CONTROLLERS]
    if bad or not ctrls:
        raise SystemExit(f"--controllers: unknown {bad}; choose from {list(CONTROLLERS)}")
    out = []
    for path in paths:
        for seed in range(args.seeds):
            for c in ctrls:
                risks = args.risk if (c == "mpc" and args.risk) else [None]
                if args.tracking == "both" and c == "mpc":
                    tracks = [True, False]
                else:
                    tracks = [args.tracking != "off"]
                out += [Case(path, c, seed, args.days, r, t) for r in risks for t in tracks]
    # The slowest first (mpc, with the AC check), so that the pool ends together.
    return sorted(out, key=lambda x: x.controller != "mpc")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.scenarios == "all":
        paths = [str(p) for p in scenario_files()]
    else:
        paths = [str(find_scenario(x.strip())) for x in args.scenarios.split(",") if x.strip()]
    scenarios = {p: load_scenario(p) for p in paths}  # fail early on a bad file
    cases = cases_of(args, paths)
    print(
        f"{len(scenarios)} scenarios x {args.seeds} seeds: {len(cases)} cases on "
        f"{args.workers} workers ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}); "
        f"AC check in the planning loop (grid=True) and on the realised park"
    )
    t0 = time.perf_counter()
    rows, fc_rows = [], []
    ctx = multiprocessing.get_context("spawn")  # no forked BLAS or solver threads
    with ProcessPoolExecutor(
        max_workers=max(args.workers, 1), mp_context=ctx, initializer=_die_with_parent
    ) as pool:
        fc_jobs = [
            pool.submit(run_forecast, p, seed, args.days)
            for p in paths
            for seed in range(args.seeds)
        ]
        jobs = {pool.submit(run_case, c): c for c in cases}
        for i, job in enumerate(as_completed(jobs), 1):
            c, row = jobs[job], job.result()
            rows.append(row)
            name = scenarios[c.scenario].name
            f = row["figures"]
            print(
                f"[{i}/{len(cases)}] {name} {c.label} seed {c.seed}: {f['wall_s']:.0f} s wall, "
                f"total {f['total_cost_cny']:,.0f} CNY",
                flush=True,
            )
        fc_rows = [j.result() for j in fc_jobs]
    labels = list(dict.fromkeys(c.label for c in cases if c.controller == "mpc"))
    others = sorted(
        (c for c in cases if c.controller != "mpc"), key=lambda c: CONTROLLERS.index(c.controller)
    )
    labels += list(dict.fromkeys(c.label for c in others))
    for sc in scenarios.values():
        mine = [r for r in rows if r["scenario"] == sc.name]
        days = sc.days if args.days is None else args.days
        print()
        print(f"== {sc.name}: {sc.site.name}, {sc.start:%Y-%m-%d} + {days:g} days, {sc.forecast}")
        print(f"   {sc.description}")
        print("   " + forecast_line([r for r in fc_rows if r["scenario"] == sc.name]))
        for line in table(
            sc.name, mine, [c for c in labels if any(r["controller"] == c for r in mine)]
        ):
            print(line)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s for {len(cases)} cases")
    print("(all figures are the realised park's; plan_ figures are the plan's)")
    if args.json:
        doc = {"cases": rows, "forecast_error": fc_rows, "argv": sys.argv[1:]}
        args.json.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
