"""``vpp run``: the controller service. The park's plant (the simulated park by default),
the interval loop on the boundaries, the HTTP API, storage and metrics, in one process.

Wiring: settings (environment + flags) -> database engine (migrated on start) -> plant
driver, forecaster, controller, dispatch function (AC-validated when the network model is
available) -> :class:`vpp.runtime.service.Runtime` ->
:class:`vpp.runtime.scheduler.CycleScheduler` and :func:`api.app.create_app` served by uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)
# What ./run.sh runs: the simulated demo park that ships with the repository.
DEMO_PARK = Path(__file__).resolve().parents[2] / "configs" / "parks" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the controller service (simulated park, API, interval loop)",
        description=(
            "Start the controller: an API on --host:--port (OpenAPI at /docs), a control cycle "
            "on every interval boundary (:00, :15, :30, :45), storage in VPP_DATABASE_URL "
            "(default sqlite:///var/vpp.sqlite3) and Prometheus metrics at /metrics. The plant "
            "is the simulated park playing the configured park. Set VPP_ADMIN_KEY to bootstrap "
            "an admin API key, or create keys with 'vpp db create-key'."
        ),
    )
    p.add_argument(
        "--config",
        type=Path,
        default=DEMO_PARK,
        help=f"park YAML (default: the demo park, {DEMO_PARK.relative_to(DEMO_PARK.parents[2])})",
    )
    p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="listen port (default 8000)")
    p.add_argument(
        "--speed", type=float, default=None, help="run the clock N times faster (default 1)"
    )
    p.add_argument("--once", action="store_true", help="run one cycle, print it and exit")
    p.add_argument("--start", default=None, help="simulated start time, ISO 8601 (default: now)")
    p.add_argument(
        "--driver",
        choices=["auto", "simulated", "static", "field"],
        default="auto",
        help="plant: the simulated park (auto: when available), the static driver, or field: "
        "the park's real devices at the endpoints its file names (OCPP charge points, "
        "Modbus/SunSpec inverters and PCS, MQTT meters; README 'Pointing vpp run at a real "
        "park')",
    )
    p.add_argument(
        "--no-grid", action="store_true", help="skip the AC power-flow validation of each plan"
    )
    p.add_argument(
        "--inline-solver",
        action="store_true",
        help="compute cycles in the service process (default: a worker process forecasts, "
        "solves and validates each cycle, which keeps the API responsive, and is killed if "
        "it overruns its time limit)",
    )
    p.add_argument(
        "--forecast",
        choices=["profiles", "telemetry"],
        default="profiles",
        help="profiles: the configured load and PV profiles (on the simulated park, the "
        "profiles it plays: near-perfect); telemetry: the naive model on the telemetry "
        "stored in the database, per asset once it has a week of it, profiles before",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the simulated park")
    from vpp.commands import day_checks

    day_checks.add_flags(p)
    p.add_argument(
        "--grid-side",
        type=Path,
        default=None,
        metavar="FILE",
        help="grid-side adapters to run with the service: OpenADR 2.0b and 3 VENs, an IEC "
        "60870-5-104 outstation (YAML; see configs/gridside/example.yaml)",
    )
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace):
    from pydantic import ValidationError

    from vpp.errors import UserError
    from vpp.runtime.settings import Settings

    over = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "speed": args.speed,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    try:
        return Settings(**over)
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise UserError("invalid settings:\n  " + "\n  ".join(lines)) from None


def _start(text: str | None, tz: str) -> datetime | None:
    from vpp.errors import UserError

    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--start: not an ISO 8601 time: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))


def resume_after_stored(engine, start: datetime, site) -> datetime:
    """The clock's start when none was given: ``start`` (now), but never before the interval
    after the last stored cycle. A simulated clock (``--speed``) runs ahead of the wall
    clock; restarted at now it would jump back and store cycles out of time order."""
    from sqlalchemy.exc import SQLAlchemyError

    from vpp.store import repo

    try:
        with engine.connect() as conn:
            last = repo.last_cycle(conn)
    except SQLAlchemyError:  # a new database: the tables come with the migrations at start
        return start
    if last is None:
        return start
    step = timedelta(minutes=site.dispatch.step_minutes)
    after = last["at"].astimezone(start.tzinfo) + step
    if after <= start:
        return start
    log.info(
        "clock: resuming at %s, the interval after the last stored cycle (%s), not at %s",
        after.isoformat(timespec="minutes"),
        last["at"].astimezone(start.tzinfo).isoformat(timespec="minutes"),
        start.isoformat(timespec="minutes"),
    )
    return after


def make_driver(site, settings, choice: str = "auto", start: datetime | None = None, clock=None):
    """The plant: the simulated park (vpp.sim.simulated_park) when available, else static;
    ``field``: the park's devices (vpp.drivers.field), started by :func:`start_driver`."""
    from vpp.drivers.static import StaticDriver
    from vpp.errors import UserError

    if choice == "field":
        return make_field_driver(site, clock)

    if choice in ("auto", "simulated"):
        try:
            from vpp.sim.simulated_park import SimulatedPark
        except ImportError:
            if choice == "simulated":
                raise UserError(
                    "the simulated park (vpp.sim.simulated_park) is not installed"
                ) from None
        else:
            from vpp.runtime.plant import SteppedPlant

            park = SimulatedPark(site, seed=settings.seed, start=start)
            return SteppedPlant(park, timedelta(minutes=site.dispatch.step_minutes))
    log.warning("plant: static driver (configured initial state; setpoints are recorded only)")
    return StaticDriver(site, seed=settings.seed)


def make_dispatch_fn(site, enabled: bool):
    """AC power-flow validation and correction around the controller, when available."""
    from vpp.runtime.planner import make_dispatch_fn as make

    return make(site, enabled)


def _spec(args: argparse.Namespace, site, settings):
    from vpp.runtime.planner import FORECASTERS, PlannerSpec

    return PlannerSpec(
        site,
        forecaster=FORECASTERS[args.forecast],
        ac_validation=not args.no_grid,
        database_url=settings.database_url,
    )


def _planner(args: argparse.Namespace, spec):
    """The cycle's computation (forecast, prepare, dispatch, AC validation) in a worker
    process, started now so it sets up while the service does; None (in this process)
    with --inline-solver or --once."""
    from vpp.runtime.planner_process import ProcessPlanner

    if args.inline_solver or args.once:
        return None
    planner = ProcessPlanner(spec)
    planner.start()
    return planner


def build_runtime(args: argparse.Namespace):
    from controllers.mpc import MpcController
    from vpp.commands import logs
    from vpp.errors import UserError
    from vpp.park.config import ConfigError, load_site
    from vpp.park.profiles import ProfileForecaster
    from vpp.plan.cycle import plain_dispatch
    from vpp.runtime.clock import Clock
    from vpp.runtime.planner import load
    from vpp.runtime.service import Runtime
    from vpp.sim.closed_loop import device_commands
    from vpp.store.db import DatabaseError, make_engine

    settings = _settings(args)
    try:
        site = load_site(args.config)
    except ConfigError as exc:
        raise UserError(f"invalid configuration:\n{exc}") from None
    zone = ZoneInfo(site.location.tz)
    logs.set_zone(site.location.tz)
    start = _start(args.start, site.location.tz) or settings.start_at or datetime.now(zone)
    start = start if start.tzinfo else start.replace(tzinfo=zone)
    start = start.astimezone(zone)  # logs and the API speak the park's local time
    check_service_days(site, start, args)
    engine = make_engine(settings.database_url)
    if args.start is None and settings.start_at is None:
        start = resume_after_stored(engine, start, site)
    clock = Clock(start, settings.speed)
    spec = _spec(args, site, settings)
    planner = _planner(args, spec)
    runtime = Runtime(
        site=site,
        settings=settings,
        engine=engine,
        driver=make_driver(site, settings, args.driver, clock.now(), clock),
        # The forecasts of the cycles computed here: all of them without a planner process,
        # else the fallbacks' (the profiles: no database reads in the API's process).
        forecaster=load(spec.forecaster)(spec) if planner is None else ProfileForecaster(),
        controller=MpcController(),
        # Used here only without a planner process (the fallbacks need no network model).
        dispatch_fn=make_dispatch_fn(site, not args.no_grid) if planner is None else plain_dispatch,
        clock=clock,
        commands_fn=device_commands,
        planner=planner,
    )
    try:
        runtime.start()  # refuses (UserError naming the holder) when another service writes
    except (DatabaseError, UserError) as exc:
        if planner is not None:
            planner.close()
        raise UserError(str(exc)) from None
    try:
        start_driver(runtime)
    except Exception as exc:
        runtime.close()
        if planner is not None:
            planner.close()
        raise UserError(f"field devices: {type(exc).__name__}: {exc}") from None
    _bootstrap_admin(runtime, settings)
    return runtime, settings


def make_field_driver(site, clock):
    """The field driver of ``site``'s endpoints (nothing started yet); a configuration
    problem of a register map or the OCPP keys file stops here, naming the file and field."""
    from vpp.drivers.field import FieldDriver
    from vpp.errors import UserError
    from vpp.park.config import ConfigError

    try:
        driver = FieldDriver(site, clock=clock.now if clock is not None else None)
    except ConfigError as exc:
        raise UserError(f"invalid configuration:\n{exc}") from None
    if not driver.status and driver.mqtt is None:
        raise UserError(
            f"--driver field: {site.source_file or 'the park file'} names no device endpoint "
            "(assets' endpoint: ocpp, modbus or mqtt_topic)"
        )
    missing = driver.unreached()
    if missing:
        log.warning(
            "field: %d controllable asset(s) have no endpoint, their setpoints reach no device: %s",
            len(missing),
            ", ".join(missing),
        )
    return driver


def start_driver(runtime) -> None:
    """A driver that talks to devices starts once the service holds the writer lease;
    MQTT readings go through the runtime's own telemetry path."""
    driver = runtime.driver
    if hasattr(driver, "bind_ingest"):
        driver.bind_ingest(runtime.ingest_checked)
    if callable(getattr(driver, "start", None)):
        driver.start()


# Warn at start when the tariff's validity or the known holiday calendar ends within this
# many (park) days: enough to get next year's State Council holiday notice (published in
# October to December) into the park file or a chinese-calendar release.
COVERAGE_WARN_DAYS = 60


def check_service_days(site, start: datetime, args: argparse.Namespace) -> date | None:
    """The first plan's days must be covered (or allowed by a flag, with a warning); a
    warning names the day, within :data:`COVERAGE_WARN_DAYS`, from which the service will
    plan with a tariff out of validity or an unknown calendar. Returns that day, if any."""
    from vpp.commands import day_checks
    from vpp.park.coverage import first_uncovered_day, planned_days

    first, last = planned_days(site, start, start)
    day_checks.check_days(site, first, last, args)
    end = first_uncovered_day(site, first)
    if end <= last or (end - first).days > COVERAGE_WARN_DAYS:
        return None
    lines = [x for _, x in day_checks.problems(site, end, end)]
    log.warning(
        "in %d days, from %s, this service plans days its data does not cover: %s",
        (end - first).days,
        end,
        "; ".join(lines),
    )
    return end


def _bootstrap_admin(runtime, settings) -> None:
    from api.auth import Role, ensure_key

    if settings.admin_key is not None and ensure_key(
        runtime.engine, "bootstrap-admin", Role.ADMIN, settings.admin_key.get_secret_value()
    ):
        log.info("admin key 'bootstrap-admin' stored from VPP_ADMIN_KEY")


def run(args: argparse.Namespace) -> int:
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    grid_side = _grid_side(args)  # checked before anything starts
    runtime, settings = build_runtime(args)
    if args.once:
        cur = runtime.run_cycle(trigger="once")
        runtime.close()  # releases the writer lease
        _close_driver(runtime)
        print(_summary(runtime, cur))
        return 0 if cur is not None and not cur.fallback else 1
    return serve(runtime, settings, grid_side)


def _grid_side(args: argparse.Namespace):
    """The grid-side file's adapters (vpp.gridside.config), None without --grid-side."""
    path = getattr(args, "grid_side", None)
    if path is None:
        return None
    from vpp.gridside.config import load

    return load(path)


def _close_driver(runtime) -> None:
    close = getattr(runtime.driver, "close", None)
    if callable(close):
        close()


def serve(runtime, settings, grid_side=None) -> int:
    import uvicorn

    from api.app import create_app
    from vpp.runtime.scheduler import CycleScheduler

    app = create_app(settings, runtime)
    scheduler = CycleScheduler(runtime, settings.misfire_grace_s)
    # What a cycle still computes here (reading the plant, storing) is CPU-bound Python:
    # hand the GIL to the API's event loop more often than every 5 ms (the default).
    sys.setswitchinterval(0.0005)

    log.info(
        "serving on http://%s:%d (docs at /docs, health at /health); database %s",
        settings.host,
        settings.port,
        runtime.engine.url.render_as_string(hide_password=True),
    )
    if not os.environ.get("VPP_ADMIN_KEY"):
        log.info("no VPP_ADMIN_KEY: create keys with 'vpp db create-key --name NAME --role ROLE'")
    scheduler.start()
    adapters = None
    try:
        if grid_side is not None:  # the grid-side adapters feed the runtime's DR path
            from vpp.gridside.manager import start as start_grid_side

            adapters = start_grid_side(runtime, grid_side)
        # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes requests, returns.
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        if adapters is not None:
            adapters.stop()  # before the cycles stop: no event arrives to a closed runtime
        scheduler.shutdown()  # finish (or give up on) the running cycle cleanly
        for part in (runtime.planner, runtime.controller, runtime.driver):
            close = getattr(part, "close", None)
            if callable(close):
                close()
    return 0


def _summary(runtime, cur) -> str:
    if cur is None:
        return "no cycle ran (shutting down)"
    r = cur.plan
    sp = cur.setpoints_kw
    lines = [
        f"park-vpp run --once: {runtime.site.name}",
        f"cycle {cur.cycle_id} (plan v{cur.version}) at {cur.at.isoformat(timespec='minutes')}:"
        f" {r.controller} {r.status}" + (f", fallback {cur.fallback}" if cur.fallback else ""),
        f"planned import now {max(float(r.p_net_kw[0]), 0):,.0f} kW, horizon peak "
        f"{float(r.p_net_kw.max()):,.0f} kW; planned cost {r.objective_cost_cny:,.0f} CNY over "
        f"the horizon, penalty {r.objective_penalty:,.0f} (weights of relaxed constraints, "
        f"not money)",
        f"setpoints sent: {len(sp)} devices; stored in "
        f"{runtime.engine.url.render_as_string(hide_password=True)}",
    ]
    kinds: dict[str, float] = {}
    for name, p in sp.items():
        k = r.assets[name].kind if name in r.assets else "other"
        kinds[k] = kinds.get(k, 0.0) + p
    lines += [f"  {k:<12} {v:10,.1f} kW" for k, v in sorted(kinds.items())]
    return "\n".join(lines)
