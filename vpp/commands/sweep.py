"""``vpp sweep``: many closed-loop simulations of one park on Dask (:mod:`vpp.sweep`).

    vpp sweep --config PARK.yaml --spec SWEEP.yaml --out DIR [--workers 2]
    vpp sweep --scenario SCENARIO.yaml --spec SWEEP.yaml --out DIR --scheduler tcp://HOST:PORT

Writes ``DIR/cases/KEY.json`` (one per case, as each finishes), ``DIR/results.parquet``,
``DIR/results.csv`` and ``DIR/summary.html``. A rerun runs only the cases not done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a study of many cases (controllers, seeds, dates, sizes, tariffs...) on Dask",
        description=(
            "Expands the sweep file's axes into cases, validates every case, runs one Dask "
            "task per case (a LocalCluster here, or --scheduler), skips the cases done "
            "before, and writes a table of every case's realised KPIs and a summary report."
        ),
    )
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--config", type=Path, help="park YAML the sweep varies")
    base.add_argument(
        "--scenario", type=Path, help="scenario YAML as the base (park, DR, days, truth)"
    )
    p.add_argument("--spec", required=True, type=Path, help="sweep YAML (configs/sweeps/)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="LocalCluster worker processes, one thread each (default 2)",
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on an existing Dask cluster instead of a LocalCluster",
    )
    p.add_argument("--check", action="store_true", help="validate and list the cases; run none")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def load(args: argparse.Namespace):
    from vpp.errors import UserError
    from vpp.park.config import ConfigError
    from vpp.sweep.spec import base_from_config, base_from_scenario, load_spec

    try:
        if args.scenario is not None:
            base = base_from_scenario(args.scenario)
        else:
            base = base_from_config(args.config)
    except ConfigError as exc:
        flag = "--scenario" if args.scenario is not None else "--config"
        raise UserError(f"{flag}: invalid:\n{exc}") from None
    try:
        return load_spec(args.spec, base)
    except ConfigError as exc:
        raise UserError(f"invalid sweep:\n{exc}") from None


def run(args: argparse.Namespace) -> int:
    from vpp.errors import UserError
    from vpp.sweep.results import write_table
    from vpp.sweep.runner import run_sweep
    from vpp.sweep.spec import describe
    from vpp.sweep.summary import write_summary

    if args.workers < 1:
        raise UserError("--workers: must be at least 1")
    if args.scheduler is not None and not args.scheduler.startswith(("tcp://", "tls://")):
        raise UserError(f"--scheduler: expected tcp://HOST:PORT, got {args.scheduler!r}")
    import logging

    if not args.verbose:  # the scheduler and nannies announce every step at INFO
        import distributed  # noqa: F401  (it sets its loggers' levels when imported)

        for name in list(logging.root.manager.loggerDict):
            if name == "distributed" or name.startswith("distributed."):
                logging.getLogger(name).setLevel(logging.WARNING)
    sweep = load(args)
    print(f"sweep {args.spec}: {len(sweep)} cases (uncontrolled references included)")
    if args.check:
        for r in sweep.cases:
            print(f"  {r.key}  {describe(r.case)}")
        return 0
    try:
        done = run_sweep(
            sweep,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            stream=None if args.quiet else sys.stderr,
        )
    except OSError as exc:  # the scheduler cannot be reached
        raise UserError(f"--scheduler {args.scheduler}: {exc}") from None
    df = write_table(sweep, args.out)
    title = f"Sweep {args.spec.stem}: {sweep.cases[0].site.name}"
    write_summary(df, args.out, title, sweep.description)
    print(
        f"{done.total} cases: {done.ran} run now, {done.skipped} done before (skipped), "
        f"{done.failed} failed; {done.wall_s:.0f} s"
    )
    for d in done.docs:
        if d["status"] != "ok":
            print(f"  failed {d['key']}: {d['error']}")
    print(f"written: {args.out}/results.parquet, results.csv, summary.html, cases/")
    return 1 if done.failed else 0
