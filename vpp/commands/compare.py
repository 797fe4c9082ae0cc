"""``vpp compare``: the same days through several controllers, a table and one report."""

from __future__ import annotations

import argparse
import json

from vpp.commands.simulate import add_common, prepare, sim_options, summary_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="simulate the same days with several controllers and compare",
        description=(
            "Runs each controller in closed loop over the same days, seed and DR events; "
            "writes DIR/<controller>/ (kpis.json, timeseries.csv), DIR/comparison.json and "
            "one DIR/report.html."
        ),
    )
    add_common(p)
    p.add_argument(
        "--controllers", default="mpc,rule,uncontrolled", help="comma-separated (default all)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vpp.errors import UserError
    from vpp.sim.closed_loop import CONTROLLER_NAMES, simulate
    from vpp.sim.report import _fmt, comparison, render, write_run

    names = [x.strip() for x in args.controllers.split(",") if x.strip()]
    bad = [x for x in names if x not in CONTROLLER_NAMES]
    if bad or not names:
        raise UserError(f"--controllers: unknown {bad}; choose from {list(CONTROLLER_NAMES)}")
    site, start, events = prepare(args)
    runs = []
    for name in names:
        kw = sim_options(args, events)
        r = simulate(site, start, args.days, name, progress=not args.quiet, **kw)
        write_run(r, args.out / name)
        runs.append(r)
    rows = comparison(runs)
    (args.out / "comparison.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    (args.out / "report.html").write_text(render(site.name, runs), encoding="utf-8")
    # One line per figure, one column per controller (the table is wider than a terminal).
    names = [r["controller"] for r in rows]
    first = max(len(k) for k in rows[0])
    print(" " * first + "".join(n.rjust(16) for n in names))
    for key in list(rows[0])[1:]:
        print(key.ljust(first) + "".join(_fmt(r[key]).rjust(16) for r in rows))
    for r in runs:
        print(summary_line(r))
    print("(all figures are the realised park's; plan_ figures are the plan's)")
    print(f"written: {args.out}/report.html, comparison.json, <controller>/kpis.json")
    return 0
