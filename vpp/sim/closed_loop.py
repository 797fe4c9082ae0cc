"""Closed-loop simulation: a controller against the simulated park, every interval, for days.

Each interval ``at`` (a simulated clock):

1. the DR events announced by ``at`` are confirmed by the park and handed to the cycle;
2. :func:`vpp.plan.cycle.run_cycle` (the service's own cycle function) reads the park's state,
   forecasts from the measured history only (:mod:`vpp.plan.history_forecasters`; reading the
   future raises :class:`~vpp.plan.history_forecasters.LeakError`), prepares, dispatches
   (optionally through the AC network check of :mod:`vpp.grid.loop`), validates and clamps;
3. only the first interval of the plan is applied (receding horizon), as device commands
   (:func:`device_commands`), and the park's physics advance one step;
4. the interval's measurements join the history.

``simulate(site, start, days, ...)`` returns a :class:`SimResult` with the realised time
series, the cycle records and the KPIs (:mod:`vpp.accounting.kpis`). Deterministic for a given
seed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from controllers import dr_rows, relaxations
from controllers.baselines import CONTROLLERS
from controllers.ev_schedulers import CONTROLLERS as EV_CONTROLLERS
from controllers.mpc import MpcController
from controllers.problem import Controller
from vpp.accounting import dr_baseline, kpis, limits, tenants
from vpp.accounting.counterfactual import uncontrolled_flex_kw
from vpp.accounting.dr_history import DailyBaselines
from vpp.grid.flow import blas_single_thread
from vpp.park.calendar import is_workday
from vpp.park.carbon_factors import series_ef_kg_per_kwh
from vpp.park.model import DemandResponseEvent, Horizon, Site
from vpp.park.series import FALLBACK
from vpp.park.tariff import series_prices_cny_per_kwh
from vpp.plan.cycle import CycleReport, plain_dispatch, plan_cycle, run_cycle, tracking_for
from vpp.plan.history_forecasters import MeasuredHistory, asset_names, make_forecaster
from vpp.plan.prepare import horizon_for
from vpp.sim import give_way, realised
from vpp.sim.dr_calls import DrCalls
from vpp.sim.realised import RealisedGrid
from vpp.sim.simulated_park import SimOptions, SimulatedPark

CONTROLLER_NAMES = ("mpc", "rule", "uncontrolled", "edf", "llf")


def make_controller(name: str) -> Controller:
    if name == "mpc":
        return MpcController()
    if name in CONTROLLERS:
        return CONTROLLERS[name]()
    if name in EV_CONTROLLERS:
        return EV_CONTROLLERS[name]()
    raise ValueError(f"unknown controller {name!r}; expected one of {CONTROLLER_NAMES}")


@dataclass
class CycleRecord:
    """What one cycle decided, for the KPIs and the time series."""

    at: datetime
    controller: str
    fallback: str | None
    errors: int
    cycle_s: float
    dr_cap_kw: float
    dr_floor_kw: float
    dr_baseline_kw: float
    grid_violation: bool | None  # None = not validated
    # The plan's own figures: its penalty part (weights of relaxed constraints, not money)
    # and the relaxations a decision could have avoided, at or above the alarm tolerance.
    plan_penalty: float = 0.0
    plan_relaxations: int = 0
    # Who gave way: the plan's notes (which asset, how much, why) and what the park then did
    # (curtailment, shiftable windows closed), for the KPIs' shortfall lists.
    give_way: give_way.GiveWayRecord | None = None
    # The applied plan's power per bus for this interval and the forecast-error margins it
    # kept there (kW): what the realised AC check compares the park's draw with.
    plan_bus_kw: dict[str, float] = field(default_factory=dict)
    bus_error_up_kw: dict[str, float] = field(default_factory=dict)
    bus_error_down_kw: dict[str, float] = field(default_factory=dict)
    # The plan's DR choice per event it weighed or followed (controllers.dr_choice):
    # event id -> (followed, what the decision says).
    dr_decisions: dict[str, tuple[bool, str]] = field(default_factory=dict)


@dataclass
class SimResult:
    site: Site
    controller: str
    forecast: str
    seed: int
    horizon: Horizon  # the run: one interval per cycle
    series: dict[str, np.ndarray]  # timeseries.csv columns (kW, kWh, CNY, kg) per interval
    cycles: list[CycleRecord]
    sessions: list  # SessionOutcome of every departed session
    settlements: list[dr_baseline.Settlement]  # DR events settled on the realised import
    events: tuple[DemandResponseEvent, ...]
    grid: bool  # the planner validated each dispatch with the AC power flow
    realised_grid: RealisedGrid  # AC power flow of what each bus actually drew
    battery_e_start_kwh: dict[str, float]
    battery_e_end_kwh: dict[str, float]
    demand_prorate: bool = True
    # Per month (YYYY-MM), the peak import of the meter history before the run in that month
    # (the park without the VPP): the month's peak so far, which the plan and the bill start from.
    month_peak_before_kw: dict[str, float] = field(default_factory=dict)
    kpis: dict = field(default_factory=dict)
    wall_s: float = 0.0
    # The realised power of each EV session per interval (SimulatedPark.session_power).
    session_power: list[dict] = field(default_factory=list)
    # A park with tenant sub-meters (vpp.park.meters): each meter's accounts over the run
    # (vpp.accounting.tenants.TenantReport.to_dict, realised), and what each bus drew and
    # the PV each generated (kW per interval, keys "<bus>" and "<bus>:pv").
    tenants: dict = field(default_factory=dict)
    bus_series_kw: dict[str, np.ndarray] = field(default_factory=dict)


def device_commands(report: CycleReport) -> dict[str, float]:
    """The setpoints a driver receives: a PV limit and a load cap only where the plan curtails
    (a limit at the forecast would curtail whatever the forecast missed); no base loads."""
    sp = dict(report.setpoints_kw)
    p = report.problem
    pv = [(x.spec.name, x.p_available_kw[0]) for x in p.pv]
    pv += [(pe.spec.pv.name, pe.pv_available_kw[0]) for pe in p.pedfs]
    for name, avail in pv:
        if name in sp and sp[name] <= -avail + 1e-3:
            sp.pop(name)
    cur = [(c.spec.name, c.baseline_kw[0]) for c in p.curtailables]
    cur += [
        (pe.spec.flexible_load.name, pe.flex_baseline_kw[0])
        for pe in p.pedfs
        if pe.spec.flexible_load
    ]
    for name, base in cur:
        if name in sp and sp[name] >= base - 1e-3:
            sp.pop(name)
    for b in p.base_loads:
        sp.pop(b.name, None)
    for pe in p.pedfs:
        sp.pop(pe.spec.base_load.name, None)
    return sp


def _uncontrolled_import_kw(
    truth: dict[str, np.ndarray], site: Site, horizon: Horizon, seed: int
) -> np.ndarray:
    """The park's import without the VPP (the meter history before the start): loads - PV,
    EVs charging at full power from arrival until served, shiftable loads at full power from
    their window's opening (the ``uncontrolled`` controller's behaviour)."""
    pv, loads = asset_names(site)
    net = sum(truth[n] for n in loads) - sum(truth[n] for n in pv)
    net = net + uncontrolled_flex_kw(site, horizon, seed)
    return np.maximum(net, 0.0)


def simulate(
    site: Site,
    start: datetime,
    days: float,
    controller: str | Controller = "mpc",
    forecast: str = "naive",
    seed: int = 0,
    dr_events: Iterable[DemandResponseEvent] | None = None,
    grid: bool = False,
    options: SimOptions | None = None,
    history_days: int | None = None,
    progress: bool = False,
    demand_prorate: bool = True,
) -> SimResult:
    """Run ``controller`` in closed loop against the simulated park.

    Parameters
    ----------
    site : the park (its ``dispatch`` settings give the step and the horizon).
    start : first interval (tz-aware).
    days : length of the run (days; may be fractional).
    controller : "mpc" | "rule" | "uncontrolled", or a controller object.
    forecast : "naive" | "model" | "perfect" (:mod:`vpp.plan.history_forecasters`).
    seed : seed of the park's randomness (loads, EV sessions, stale readings).
    dr_events : DR calls (default: the site's ``dr_events``).
    grid : validate and correct every dispatch with the AC power flow (:mod:`vpp.grid.loop`).
    history_days : measured history before the start (default 14, or 36 for "model").
    demand_prorate : pro-rate a partly covered month's demand charge (:mod:`vpp.accounting.bill`).

    Whatever ``grid`` says, the power each bus actually drew goes through an AC power flow
    after the run (:mod:`vpp.sim.realised`): the KPIs' network figures are the park's.
    """
    wall0 = time.perf_counter()
    step = timedelta(minutes=site.dispatch.step_minutes)
    n_steps = round(timedelta(days=days) / step)
    if n_steps < 1:
        raise ValueError("days: the run must cover at least one interval")
    ctrl = make_controller(controller) if isinstance(controller, str) else controller
    events = tuple(site.dr_events if dr_events is None else dr_events)
    park = SimulatedPark(site, seed=seed, start=start, options=options)
    e_start = dict(park.battery_e_kwh)
    hist_days = history_days if history_days is not None else (36 if forecast == "model" else 14)
    history, baselines, before = _prime_history(site, park, start, step, hist_days, events)
    park.start_month_peak(start, before.get(_month_of(start, site), 0.0))
    fc = make_forecaster(forecast, site, park, history, seed)
    dispatch_fn = _grid_dispatch(site) if grid else plain_dispatch
    loop = _Loop(site, park, fc, ctrl, events, baselines, history, dispatch_fn, grid)
    loop.dr = DrCalls(events, baselines, start, step)  # answers and meters the DR calls
    steps = range(n_steps)
    if progress:
        from tqdm import tqdm

        # disable=None: no bar when the output is not a terminal (logs, CI).
        steps = tqdm(steps, desc=f"simulate {ctrl.name}", unit="cycle", smoothing=0.1, disable=None)
    # One cycle after another on small matrices: BLAS threads only contend with the solver
    # (with --grid they burnt a third more CPU than the wall time for no gain).
    with blas_single_thread():
        for i in steps:
            loop.step(start + i * step)
    cycles = loop.cycles
    run = Horizon(start, step, n_steps)
    series = _series(site, park, run, cycles)
    series.update(limits.group_series(site, park.asset_power))  # limit groups, realised
    events = loop.dr.answered()  # declined invitations are no calls: not settled
    settlements = dr_baseline.settle_run(
        events, run, series["import_kw"], baselines.on(run), site.dr_defaults
    )
    grid_done = _realised_grid(site, park, run, series, loop.cycles)
    result = SimResult(
        site=site,
        controller=ctrl.name,
        forecast=forecast,
        seed=seed,
        horizon=run,
        series=series,
        cycles=cycles,
        sessions=park.sessions_done(),
        settlements=settlements,
        events=events,
        grid=grid,
        realised_grid=grid_done,
        battery_e_start_kwh=e_start,
        battery_e_end_kwh=dict(park.battery_e_kwh),
        demand_prorate=demand_prorate,
        month_peak_before_kw=before,
        session_power=park.session_power(),
    )
    result.kpis = kpis.compute(result)
    if site.metering.meters:
        _tenant_accounts(result, park, seed)
    result.wall_s = time.perf_counter() - wall0
    return result


def _tenant_accounts(result: SimResult, park: SimulatedPark, seed: int) -> None:
    """Each sub-meter's accounts from what its buses drew in the run (realised), against the
    same buses without the VPP on the run's true loads and PV (vpp.accounting.tenants)."""
    site, run = result.site, result.horizon
    bus = park.bus_p_kw()
    pv_names = [x.name for x in site.assets.pv_arrays]
    pv_names += [pe.pv.name for pe in site.assets.pedf_buildings]
    pv = tenants.pv_by_bus_kw(site, {x: park.asset_power(x) for x in pv_names}, run.n)
    base = tenants.no_vpp_bus_kw(site, run, park.truth(run), seed=seed)
    rep = tenants.tenant_report(site, run, bus, pv, base, prorate=result.demand_prorate)
    result.tenants = rep.to_dict()
    result.kpis["tenants"] = result.tenants
    result.bus_series_kw = {**bus, **{f"{b}:pv": v for b, v in pv.items()}}


def _plan_at_buses(report: CycleReport) -> dict[str, dict[str, float]]:
    """The first interval of the applied plan, per bus, and its forecast-error margins."""
    p, res = report.problem, report.result
    up, down = p.bus_error_kw()
    return {
        "plan_bus_kw": {b: float(np.asarray(v)[0]) for b, v in res.bus_p_kw.items()},
        "bus_error_up_kw": {b: float(up[i, 0]) for i, b in enumerate(p.buses)},
        "bus_error_down_kw": {b: float(down[i, 0]) for i, b in enumerate(p.buses)},
    }


def _applied_plans(cycles: list[CycleRecord]) -> realised.AppliedPlans:
    def series(field_name: str) -> dict[str, np.ndarray]:
        buses = sorted({b for c in cycles for b in getattr(c, field_name)})
        return {b: np.array([getattr(c, field_name).get(b, 0.0) for c in cycles]) for b in buses}

    return realised.AppliedPlans(
        series("plan_bus_kw"), series("bus_error_up_kw"), series("bus_error_down_kw")
    )


def _realised_grid(
    site: Site, park: SimulatedPark, run: Horizon, series: dict, cycles: list[CycleRecord]
) -> RealisedGrid:
    """The AC power flow of what each bus drew over the run (each violated element saying
    why, against the applied plans); its per-interval figures join ``series`` when the park
    has a network."""
    plans = _applied_plans(cycles)
    with blas_single_thread():
        done = realised.check(site, park.bus_p_kw(), park.asset_power, run.times(), plans)
    if done.checked:
        series["trafo_loading_max_percent"] = done.trafo_loading_max_percent
        series["line_loading_max_percent"] = done.line_loading_max_percent
        series["v_min_pu"] = done.v_min_pu
        series["v_max_pu"] = done.v_max_pu
    return done


class _Loop:
    """One closed-loop step at a time: cycle, apply, measure, remember."""

    def __init__(self, site, park, fc, ctrl, events, baselines, history, dispatch_fn, grid):
        self.site, self.park, self.fc, self.ctrl = site, park, fc, ctrl
        self.events, self.baselines, self.history = events, baselines, history
        self.dispatch_fn, self.grid = dispatch_fn, grid
        self.step_td = timedelta(minutes=site.dispatch.step_minutes)
        self.tz = ZoneInfo(site.location.tz)
        pv_names, load_names = asset_names(site)
        self.measured = [*pv_names, *load_names]
        self.cycles: list[CycleRecord] = []
        self.last_plan = None
        self.day_import: list[float] = []
        self.dr: DrCalls  # set by simulate (it knows the run's start)

    def _trial(self, at: datetime, events) -> object:
        """The plan at ``at`` for ``events``, nothing applied (judges an invitation)."""
        state = replace(self.park.read_state(at), dr_progress=self.dr.progress(at, events))
        base_kw = self.baselines.on(horizon_for(self.site, at))
        rep = plan_cycle(
            self.site, at, state, self.fc, self.ctrl, events, self.last_plan,
            self.dispatch_fn, base_kw,
        )  # fmt: skip
        return rep.result

    def step(self, at: datetime) -> None:
        t0 = time.perf_counter()
        visible = self.dr.visible(at, lambda events: self._trial(at, events))
        base_kw = self.baselines.on(horizon_for(self.site, at)) if visible else None
        report = run_cycle(
            self.site, at, self.park, self.fc, self.ctrl, visible, self.last_plan,
            self.dispatch_fn, False, base_kw, self.dr.progress(at, visible),
        )  # fmt: skip
        self.park.apply(at, device_commands(report), tracking_for(self.site, report))
        cycle_s = time.perf_counter() - t0
        truth = self.park.truth(Horizon(at, self.step_td, 1))
        self.history.append(at, {n: float(truth[n][0]) for n in self.measured})
        self._meter(at)
        if report.result.ok and report.fallback is None:
            self.last_plan = report.result
        p = dr_rows.as_followed(report.problem, report.result)  # the DR limits it held
        self.cycles.append(
            CycleRecord(
                at=at,
                controller=report.controller,
                fallback=report.fallback,
                errors=len(report.errors),
                cycle_s=cycle_s,
                dr_cap_kw=float(p.dr_max()[0]),
                dr_floor_kw=float(p.dr_min()[0]),
                dr_baseline_kw=float(base_kw[0]) if base_kw is not None else float("nan"),
                grid_violation=_grid_violation(report) if self.grid else None,
                plan_penalty=float(report.result.objective_penalty),
                plan_relaxations=sum(
                    1 for r in report.result.relaxed if r.avoidable and not relaxations.is_small(r)
                ),
                give_way=give_way.record(report, self.park, visible),
                dr_decisions={
                    k: (bool(d.followed), d.says) for k, d in report.result.dr_decisions.items()
                },
                **_plan_at_buses(report),
            )
        )

    def _meter(self, at: datetime) -> None:
        """Collect the day's metered import; a complete day joins the DR baseline history."""
        self.day_import.append(self.park.last("import_kw"))
        self.dr.meter(self.park.last("import_kw"))
        end = (at + self.step_td).astimezone(self.tz)
        if end.hour == 0 and end.minute == 0:
            if len(self.day_import) == self.baselines.spd:
                self.baselines.add_day(at.astimezone(self.tz).date(), np.array(self.day_import))
            self.day_import = []


def _prime_history(
    site: Site,
    park: SimulatedPark,
    start: datetime,
    step: timedelta,
    days: int,
    events: tuple[DemandResponseEvent, ...],
) -> tuple[MeasuredHistory, DailyBaselines, dict[str, float]]:
    """Measured history of the ``days`` before ``start`` (the park's stored meter data), the
    daily import the DR baselines start from (the park without the VPP), and the peak import
    of that history in the month of ``start`` (``{"YYYY-MM": kW}``; a lower bound of the
    month-to-date peak when the month began before the history)."""
    pv_names, load_names = asset_names(site)
    tz = ZoneInfo(site.location.tz)
    local = start.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    h0 = midnight - timedelta(days=days)
    history = MeasuredHistory(h0, step, [*pv_names, *load_names])
    pre = Horizon(h0, step, round((start - h0) / step))
    truth = park.truth(pre)
    history.extend({n: truth[n] for n in history.names})
    workday = functools.partial(is_workday, calendar=site.calendar)
    baselines = DailyBaselines(site.location.tz, step, events, workday)
    spd = baselines.spd
    imp = _uncontrolled_import_kw(truth, site, pre, park.seed)
    for d in range(days):
        baselines.add_day(
            (midnight - timedelta(days=days - d)).date(), imp[d * spd : (d + 1) * spd]
        )
    month = _month_of(start, site)
    same = [i for i, t in enumerate(pre.times()) if _month_of(t, site) == month]
    before = {month: float(np.max(imp[same]))} if same else {}
    return history, baselines, before


def _month_of(t: datetime, site: Site) -> str:
    local = t.astimezone(ZoneInfo(site.location.tz))
    return f"{local.year:04d}-{local.month:02d}"


def _grid_dispatch(site: Site):
    from vpp.grid import unbalanced
    from vpp.grid.loop import RowMemory, dispatch_ac_feasible
    from vpp.grid.network import GridModel

    model = GridModel.from_site(site)
    memory = RowMemory()
    phase = unbalanced.PhaseCheck(site) if unbalanced.applies(site) else None

    def fn(controller: Controller, problem):
        return dispatch_ac_feasible(
            controller, problem, model, max_rounds=2, memory=memory, phase=phase
        )

    return fn


def _grid_violation(report: CycleReport) -> bool | None:
    loop = report.grid
    if loop is None:
        return None
    final = loop.final
    return any(v.step == 0 for v in final.violations)


def _series(
    site: Site, park: SimulatedPark, run: Horizon, cycles: list[CycleRecord]
) -> dict[str, np.ndarray]:
    rec = park.records()
    dt = run.dt_h
    # Realised: billed at the series as known when the run ends (a cleared price, else the
    # latest forecast), else the TOU price; the same rule for the factor (vpp.park.series).
    end = run.start + run.n * run.step
    price, price_exp, price_cover = series_prices_cny_per_kwh(
        site.tariff, run, end, site.calendar, refuse=False
    )
    ef, ef_cover = series_ef_kg_per_kwh(site.carbon, run, end, refuse=False)
    a = site.assets
    cap = sum(b.e_kwh for b in [*a.batteries, *(p.battery for p in a.pedf_buildings)])
    out = dict(rec)
    out["battery_soc_frac"] = rec["battery_e_kwh"] / cap if cap > 0 else np.zeros(run.n)
    # Curtailed by the controller; PV the park could neither use nor export is spilled apart.
    out["pv_curtailed_kw"] = rec["pv_available_kw"] - rec["pv_used_kw"] - rec["pv_spilled_kw"]
    out["dr_cap_kw"] = np.array([c.dr_cap_kw for c in cycles])
    out["dr_floor_kw"] = np.array([c.dr_floor_kw for c in cycles])
    out["dr_baseline_kw"] = np.array([c.dr_baseline_kw for c in cycles])
    out["price_cny_per_kwh"] = price
    out["export_price_cny_per_kwh"] = price_exp
    out["ef_kg_per_kwh"] = ef
    # 1 where the interval's price (factor) came from the series, 0 where it fell back.
    out["price_from_series"] = np.array([x != FALLBACK for x in price_cover.source], dtype=float)
    out["ef_from_series"] = np.array([x != FALLBACK for x in ef_cover.source], dtype=float)
    out["co2_kg"] = rec["import_kw"] * ef * dt
    out["energy_cost_cny"] = (rec["import_kw"] * price - rec["export_kw"] * price_exp) * dt
    out["cycle_ms"] = np.array([c.cycle_s * 1000.0 for c in cycles])
    out["fallback"] = np.array([0.0 if c.fallback is None else 1.0 for c in cycles])
    return out
