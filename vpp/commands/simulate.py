"""``vpp simulate``: a controller in closed loop against the simulated park, with KPIs and a
report (``kpis.json``, ``timeseries.csv``, ``report.html`` in ``--out``).

``--scenario FILE`` (:mod:`vpp.sim.scenarios`) names the park, the DR file, the days, the
forecast and how the park's truth departs from its profiles in one file; the flags
``--config``, ``--start``, ``--days``, ``--forecast`` and ``--dr`` given beside it override
the file's. ``vpp compare`` takes the same options.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from vpp.commands import day_checks
from vpp.park.coverage import planned_days
from vpp.park.model import DemandResponseEvent, Site


def add_common(p: argparse.ArgumentParser) -> None:
    """Options shared by ``simulate`` and ``compare``."""
    p.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="scenario YAML (configs/scenarios/): park, DR file, start, days, forecast and the "
        "truth's departures; the flags below override it",
    )
    p.add_argument("--config", type=Path, help="park YAML (required without --scenario)")
    p.add_argument(
        "--start", help="first day, YYYY-MM-DD (park's zone; required without --scenario)"
    )
    p.add_argument("--days", type=float, help="days to simulate (required without --scenario)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of loads, EVs, telemetry (0)")
    p.add_argument(
        "--forecast",
        choices=["naive", "model", "perfect"],
        default=None,
        help="model: the forecasts package (fit on 4 weeks before the start); naive: seasonal "
        "naive + clear-sky persistence; perfect: the truth (default: the scenario's, else "
        "model)",
    )
    p.add_argument(
        "--dr",
        type=Path,
        metavar="FILE",
        help="DR YAML with dr_events (replaces a scenario's DR file)",
    )
    p.add_argument(
        "--grid",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="validate and correct every dispatch with the AC power flow (vpp.grid.loop)",
    )
    p.add_argument("--horizon-steps", type=int, help="override the dispatch horizon (steps)")
    p.add_argument(
        "--prorate-demand",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pro-rate a partly covered month's demand charge by the share of the month the "
        "run covers (default); --no-prorate-demand bills the whole month on its peak",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    day_checks.add_flags(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a controller in closed loop over days and report KPIs",
        description=(
            "Every interval: read the simulated park, forecast from the past only, dispatch, "
            "apply the first interval, advance the physics. Writes kpis.json, timeseries.csv "
            "and report.html (with the uncontrolled park as the baseline)."
        ),
    )
    add_common(p)
    p.add_argument(
        "--controller", choices=["mpc", "rule", "uncontrolled", "edf", "llf"], default="mpc"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the uncontrolled baseline run")
    p.add_argument(
        "--parallel-baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the uncontrolled baseline in a second process beside the controller's run "
        f"(same results; default: from {PARALLEL_BASELINE_MIN_DAYS:g} simulated days on a "
        "machine with two or more CPUs)",
    )
    p.set_defaults(func=run)


def load_dr_events(
    path: Path, tz: str, site: Site | None = None
) -> tuple[DemandResponseEvent, ...]:
    """DR events from a scenario YAML (``dr_events: [...]``); naive times in the park's zone.

    Checked as the park file's events are (:func:`vpp.park.config.load_dr_file`): against
    ``site``'s connection, dispatch step and own event ids when given. Raises
    :class:`vpp.errors.UserError` listing every problem as ``FILE: field.path: message``.
    """
    from vpp.errors import UserError
    from vpp.park.config import ConfigError, load_dr_file

    try:
        return load_dr_file(path, tz, site)
    except ConfigError as exc:
        raise UserError(f"invalid DR scenario:\n{exc}") from None


def apply_scenario(args: argparse.Namespace):
    """Fill the options the user left out from ``--scenario`` (its park, start, days,
    forecast, DR file) and set ``args.truth`` (the truth's :class:`SimOptions`, None without
    a scenario). Returns the :class:`vpp.sim.scenarios.Scenario` or None."""
    from vpp.errors import UserError
    from vpp.park.config import ConfigError

    args.truth = None
    if getattr(args, "scenario", None) is None:
        missing = [f for f in ("config", "start", "days") if getattr(args, f) is None]
        if missing:
            flags = ", ".join(f"--{f}" for f in missing)
            raise UserError(f"{flags}: required without --scenario")
        if args.forecast is None:
            args.forecast = "model"
        return None
    from vpp.sim.scenarios import load_scenario

    try:
        sc = load_scenario(args.scenario)
    except ConfigError as exc:
        raise UserError(f"invalid scenario:\n{exc}") from None
    if args.config is None:
        args.config = sc.park_file
    if args.start is None:
        args.start = sc.start.date().isoformat()
    if args.days is None:
        args.days = sc.days
    if args.forecast is None:
        args.forecast = sc.forecast
    if args.dr is None and sc.dr_file is not None:
        args.dr = sc.dr_file
    args.truth = sc.options
    return sc


def prepare(args: argparse.Namespace) -> tuple[Site, datetime, tuple[DemandResponseEvent, ...]]:
    """Park, start time and DR events from the common arguments (errors a user can act on).
    With ``--scenario``, the file's values stand in for the flags not given
    (:func:`apply_scenario`); ``args.truth`` then holds its truth options."""
    from vpp.errors import UserError
    from vpp.park.config import ConfigError, load_site

    apply_scenario(args)
    try:
        site = load_site(args.config)
    except ConfigError as exc:
        raise UserError(f"invalid configuration:\n{exc}") from None
    except OSError as exc:
        raise UserError(f"--config: {exc}") from None
    if args.truth is not None:
        from vpp.sim.truth import check_load_steps

        try:
            check_load_steps(site, args.truth.load_steps)
        except ValueError as exc:
            msg = f"--scenario {args.scenario}: truth.{exc} (--config {args.config})"
            raise UserError(msg) from None
    try:
        day = date.fromisoformat(args.start[:10])
    except ValueError:
        raise UserError(f"--start: not a date: {args.start!r} (e.g. 2026-07-13)") from None
    if args.days <= 0:
        raise UserError("--days: must be positive")
    if args.horizon_steps:
        site = dataclasses.replace(
            site, dispatch=dataclasses.replace(site.dispatch, horizon_steps=args.horizon_steps)
        )
    start = datetime.combine(day, time(0), tzinfo=ZoneInfo(site.location.tz))
    # The run and its last plan's look-ahead: inside the tariff and a known calendar.
    end = start + timedelta(days=args.days)
    day_checks.check_days(site, *planned_days(site, start, end), args)
    day_checks.check_series(site, start, end)
    events = site.dr_events
    if args.dr:
        events = events + load_dr_events(args.dr, site.location.tz, site)
    if args.grid and not _grid_available():
        raise UserError("--grid: the network validator (vpp.grid.loop) is not available")
    return site, start, events


def _grid_available() -> bool:
    try:
        import vpp.grid.loop  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from vpp.sim.closed_loop import simulate
    from vpp.sim.report import write_run

    site, start, events = prepare(args)
    kw = sim_options(args, events)
    want_baseline = not args.no_baseline and args.controller != "uncontrolled"
    pool = future = None
    if want_baseline and _parallel_baseline(args):
        # The baseline depends on nothing the controller's run does: a second process runs
        # it at the same time (spawned: a clean interpreter, no threads forked mid-run).
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_baseline_run, args)
    try:
        result = simulate(site, start, args.days, args.controller, progress=not args.quiet, **kw)
        baseline = None
        if future is not None:
            baseline = future.result()
        elif want_baseline:
            baseline = simulate(
                site, start, args.days, "uncontrolled", progress=not args.quiet, **kw
            )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    write_run(result, args.out, baseline)
    if args.scenario is not None:
        print(f"scenario {args.scenario}: {args.start}, {args.days:g} days, {args.forecast}")
    print(f"{result.controller}: {result.horizon.n} cycles in {result.wall_s:.0f} s")
    for r in [result] + ([baseline] if baseline is not None else []):
        print(summary_line(r))
    from vpp.accounting.shortfalls import summary_lines

    for line in summary_lines(result.kpis):  # who gave way, and why
        print(line)
    for line in dr_lines(result.kpis):  # each DR event: the park's settlement, the plan's choice
        print(line)
    if result.tenants:  # a park with sub-meters: the bills on each meter
        from vpp.accounting import tenants

        print(f"tenants ({result.controller}): {tenants.summary_line(result.tenants)}")
        for row in tenants.tenant_rows(result.tenants):
            print(
                f"  {row['meter']}: bill {row['bill_cny']:,.0f} CNY (saving "
                f"{row['allocated_saving_cny']:,.0f}), import {row['import_kwh']:,.0f} kWh, "
                f"peak {row['peak_import_kw']:,.0f} kW, CO2 {row['co2_t']:,.2f} t"
            )
        print("  (the total above is the connection's, every bus netted, at the site's tariff)")
    print("(all figures are the realised park's; plan_ figures are the plan's)")
    print(f"written: {args.out}/kpis.json, timeseries.csv, report.html")
    return 0


PARALLEL_BASELINE_MIN_DAYS = 1.0  # below, a second interpreter's start-up outweighs the gain


def _parallel_baseline(args: argparse.Namespace) -> bool:
    """Whether the baseline runs in its own process (``--parallel-baseline``, else auto)."""
    if getattr(args, "parallel_baseline", None) is not None:
        return bool(args.parallel_baseline)
    return args.days >= PARALLEL_BASELINE_MIN_DAYS and (os.cpu_count() or 1) >= 2


def _baseline_run(args: argparse.Namespace):
    """The uncontrolled baseline of ``run`` in a child process: the same park, days and
    options, read again from the same arguments; quiet (the parent reports)."""
    import contextlib
    import io

    from vpp.sim.closed_loop import simulate

    with contextlib.redirect_stdout(io.StringIO()):
        site, start, events = prepare(args)
        kw = sim_options(args, events)
        return simulate(site, start, args.days, "uncontrolled", progress=False, **kw)


def sim_options(args: argparse.Namespace, events) -> dict:
    """Keyword arguments of :func:`vpp.sim.closed_loop.simulate` from the common options."""
    return dict(
        forecast=args.forecast,
        seed=args.seed,
        dr_events=events,
        grid=args.grid,
        demand_prorate=args.prorate_demand,
        options=getattr(args, "truth", None),
    )


def _violation_causes(k: dict) -> str:
    """``; 3 from forecast error beyond the margin``: why the park's violations happened."""
    rows = k.get("grid_violations") or []
    names = {
        "plan": "the plan itself",
        "forecast_error_beyond_margin": "forecast error beyond the margin",
        "forecast_error_within_margin": "forecast error within the margin",
        "phase_unbalance": "one phase over (the balanced loading within)",
    }
    parts = []
    for cause, text in names.items():
        n = sum(r.get(f"intervals_{cause}", 0) for r in rows)
        if n:
            parts.append(f"{n} from {text}")
    return "; " + ", ".join(parts) if parts else ""


def dr_lines(k: dict) -> list[str]:
    """One line per settled DR event: what the park delivered (realised) and, where the
    plans gave it up, from when and why (the plan's)."""
    out = []
    for r in k.get("dr_per_event", ()):
        ratio = r.get("ratio")
        got = "-" if ratio is None else f"{100 * ratio:.0f} %"
        line = (
            f"  DR {r['event_id']}: delivered {got} of the request "
            f"({'effective' if r.get('effective') else 'not effective'})"
        )
        if r.get("plan_cycles"):
            line += f"; followed in {r['plan_cycles_followed']} of {r['plan_cycles']} plans"
        if r.get("plan_given_up_at"):
            line += f"; given up from {r['plan_given_up_at']}: {r['plan_given_up_why']}"
        out.append(line)
    return out


def summary_line(result) -> str:
    """One run's bill and realised limits in one line."""
    k = result.kpis
    viol = k["grid_violation_steps"]
    plan = k["plan_grid_violation_steps"]
    dr = k["dr_compensation_cny"]
    return (
        f"{result.controller}: total {k['total_cost_cny']:,.0f} CNY = energy "
        f"{k['energy_cost_cny']:,.0f} + demand {k['demand_charge_cny']:,.0f} + stored energy "
        f"{k['stored_energy_cost_cny']:,.0f} - DR {0.0 if dr is None else dr:,.0f}; peak "
        f"{k['peak_import_kw']:,.0f} kW, CO2 {k['co2_t']:,.1f} t, EV unmet "
        f"{k['ev_unmet_kwh']:,.1f} kWh; network violations "
        f"{'not checked (no network)' if viol is None else f'{viol} intervals'} (plan: "
        f"{'not checked' if plan is None else plan}{_violation_causes(k)}), DR effective "
        f"{k['dr_events_effective']} of {k['dr_events']}"
    )
