"""One control interval: state -> forecast -> prepare -> dispatch -> validate -> publish.

The same function runs in the service (a real clock, the plant driver), in ``vpp dispatch``
(one interval, nothing published) and in the offline simulation (a simulated clock and the
simulated park). The parts are injected behind small interfaces, so each can be replaced by a
test double or a field adapter.

Fallbacks when the optimiser fails: the last valid plan shifted to now, then the rule-based
controller. Whatever plan is used, :func:`controllers.safety.clamp` bounds every setpoint and
:func:`controllers.invariants.check` records any broken invariant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import numpy as np

from controllers import invariants, safety, tracking
from controllers.baselines import RuleController
from controllers.problem import Controller, DispatchProblem, DispatchResult
from controllers.session_power import SESSION_KEY, with_session_power
from controllers.tracking import TrackingTarget
from vpp.park.model import DemandResponseEvent, Horizon, Site
from vpp.park.series import PostedSeries
from vpp.park.state import DrProgress, Forecasts, PlantState
from vpp.plan import give_way, prepare

log = logging.getLogger(__name__)


class PlantDriver(Protocol):
    """The park's devices, simulated or real (OCPP, Modbus/SunSpec adapters implement this)."""

    def read_state(self, at: datetime) -> PlantState: ...

    def apply(self, at: datetime, setpoints_kw: dict[str, float]) -> None: ...


class Forecaster(Protocol):
    def forecast(self, site: Site, horizon: Horizon, state: PlantState) -> Forecasts: ...


# Wraps controller.dispatch, e.g. with AC power-flow validation and correction (vpp.grid.loop).
DispatchFn = Callable[[Controller, DispatchProblem], tuple[DispatchResult, object | None]]


def plain_dispatch(controller: Controller, problem: DispatchProblem) -> tuple[DispatchResult, None]:
    return controller.dispatch(problem), None


@dataclass
class CycleReport:
    at: datetime
    horizon: Horizon
    problem: DispatchProblem
    result: DispatchResult
    setpoints_kw: dict[str, float]
    clamps: list[safety.Clamp]
    violations: list[str]
    controller: str
    fallback: str | None = None  # None | "last_plan" | "rule"
    errors: list[str] = field(default_factory=list)
    grid: object | None = None  # the network report when a validator ran
    timings_s: dict[str, float] = field(default_factory=dict)
    forecasts: Forecasts | None = None  # what the problem was built from
    # What the local loop holds at the park meter over the first interval (None: no battery
    # may move); the driver runs it when the park's dispatch says so (vpp.sim, vpp.runtime).
    tracking: TrackingTarget | None = None

    @property
    def solved(self) -> DispatchProblem:
        """The problem the plan solved: ``problem`` with the AC loop's network rows."""
        return solved_problem(self.problem, self.grid)


def solved_problem(problem: DispatchProblem, grid: object | None) -> DispatchProblem:
    """``problem`` with the network rows the AC loop's kept dispatch solved (its report's
    ``rows``); ``problem`` itself without a loop or rows."""
    rows = tuple(getattr(grid, "rows", ()) or ())
    return replace(problem, network=rows) if rows else problem


def tracking_for(site: Site, report: CycleReport) -> TrackingTarget | None:
    """The cycle's tracking target for the driver: None unless the park tracks its meter
    (``dispatch.grid_point_tracking``) and a controller is in charge (the baseline
    "uncontrolled" does nothing between cycles, as it does nothing in them)."""
    if not site.dispatch.grid_point_tracking or report.controller == "uncontrolled":
        return None
    return report.tracking


def shift_plan(plan: DispatchResult, horizon: Horizon) -> DispatchResult | None:
    """The last plan moved to start at ``horizon.start`` (its tail held), or None if too old."""
    k = round((horizon.start - plan.horizon.start) / plan.horizon.step)
    if k < 0 or k >= plan.horizon.n or plan.horizon.step != horizon.step:
        return None

    def mv(a: np.ndarray) -> np.ndarray:
        tail = np.repeat(a[-1:], k) if k else a[:0]
        return np.concatenate([a[k:], tail])[: horizon.n]

    assets = {
        name: replace(s, p_kw=mv(s.p_kw), e_kwh=None if s.e_kwh is None else mv(s.e_kwh[:-1]))
        for name, s in plan.assets.items()
    }
    return replace(
        plan,
        horizon=horizon,
        p_net_kw=mv(plan.p_net_kw),
        assets=assets,
        bus_p_kw={b: mv(v) for b, v in plan.bus_p_kw.items()},
        status="shifted",
        messages=[*plan.messages, f"last plan shifted by {k} intervals"],
    )


def run_cycle(
    site: Site,
    at: datetime,
    driver: PlantDriver,
    forecaster: Forecaster,
    controller: Controller,
    dr_events: Iterable[DemandResponseEvent] = (),
    last_plan: DispatchResult | None = None,
    dispatch_fn: DispatchFn = plain_dispatch,
    publish: bool = True,
    dr_baseline_kw: np.ndarray | None = None,
    dr_progress: Mapping[str, DrProgress] | None = None,
) -> CycleReport:
    """Run one interval at ``at``; publish the first interval's setpoints to ``driver``.

    ``dr_progress``: what each called DR event delivered so far on the park meter
    (:func:`vpp.accounting.dr_progress.progress`), put into the state the driver reads (a
    driver that does not meter the park leaves it empty); the plan re-aims from it."""
    t0 = time.perf_counter()
    state = driver.read_state(at)
    if dr_progress is not None:
        state = replace(state, dr_progress=dict(dr_progress))
    state_s = time.perf_counter() - t0
    rep = plan_cycle(
        site, at, state, forecaster, controller, dr_events, last_plan, dispatch_fn, dr_baseline_kw
    )
    t0 = time.perf_counter()
    if publish:
        driver.apply(at, rep.setpoints_kw)
    rep.timings_s = {"state_s": state_s, **rep.timings_s, "publish_s": time.perf_counter() - t0}
    rep.timings_s["total_s"] = sum(v for k, v in rep.timings_s.items() if k != "total_s")
    return rep


def plan_cycle(
    site: Site,
    at: datetime,
    state: PlantState,
    forecaster: Forecaster,
    controller: Controller,
    dr_events: Iterable[DemandResponseEvent] = (),
    last_plan: DispatchResult | None = None,
    dispatch_fn: DispatchFn = plain_dispatch,
    dr_baseline_kw: np.ndarray | None = None,
    posted: PostedSeries | None = None,
) -> CycleReport:
    """The computation of one interval from a measured ``state``: forecast, prepare,
    dispatch (with the fallbacks), invariants and the safety clamp. No I/O: the service runs
    it in a worker process. ``posted``: price and factor rows posted to the service (read
    from the store), over the park file's series."""
    t: dict[str, float] = {}
    dr_events = tuple(dr_events)
    problem, forecasts = _problem(site, at, state, forecaster, dr_events, dr_baseline_kw, t, posted)
    t0 = time.perf_counter()
    result, grid, used, fallback, errors = _dispatch(controller, problem, last_plan, dispatch_fn)
    t["dispatch_s"] = time.perf_counter() - t0
    # Who gave way, and why: against the problem the plan solved, the AC loop's rows included.
    result = give_way.explain_plan(solved_problem(problem, grid), result, dr_events)
    return _finish(at, state, problem, forecasts, result, grid, used, fallback, errors, t)


def fallback_cycle(
    site: Site,
    at: datetime,
    state: PlantState,
    forecaster: Forecaster,
    error: str,
    dr_events: Iterable[DemandResponseEvent] = (),
    last_plan: DispatchResult | None = None,
    dr_baseline_kw: np.ndarray | None = None,
    posted: PostedSeries | None = None,
) -> CycleReport:
    """The interval without the optimiser (its process died or overran, ``error`` says
    how): the last plan shifted to now, else the rule-based controller."""
    t: dict[str, float] = {}
    dr_events = tuple(dr_events)
    problem, forecasts = _problem(site, at, state, forecaster, dr_events, dr_baseline_kw, t, posted)
    t0 = time.perf_counter()
    result, used, fallback = fallback_plan(problem, last_plan)
    t["dispatch_s"] = time.perf_counter() - t0
    result = give_way.explain_plan(problem, result, dr_events)
    return _finish(at, state, problem, forecasts, result, None, used, fallback, [error], t)


def _problem(site, at, state, forecaster, dr_events, dr_baseline_kw, t, posted=None):
    horizon = prepare.horizon_for(site, at)
    t0 = time.perf_counter()
    forecasts = forecaster.forecast(site, horizon, state)
    t["forecast_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    problem = prepare.build_problem(
        site, horizon, state, forecasts, dr_events, dr_baseline_kw, now=at, posted=posted
    )
    # Stale assets are planned as they will be held, not steered (controllers.safety.pinned).
    problem = safety.pinned(problem, state.stale_assets)
    t["prepare_s"] = time.perf_counter() - t0
    return problem, forecasts


def _finish(at, state, problem, forecasts, result, grid, used, fallback, errors, t):
    t0 = time.perf_counter()
    violations = invariants.check(problem, result) if result.status != "shifted" else []
    if violations:
        # The invariants hold the MPC to account; a baseline's plan (rule, uncontrolled)
        # breaks the minimum run of shiftable loads by design, 1,460 lines a bench run.
        level = logging.WARNING if used == "mpc" else logging.DEBUG
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        log.log(level, "invariant broken by %s: %s%s", used, violations[0], more)
    setpoints, clamps = safety.clamp(
        problem,
        result.setpoints_kw(0),
        0,
        state.stale_assets,
        plan_bus_kw={b: float(v[0]) for b, v in result.bus_p_kw.items() if len(v)},
        plan_net_kw=float(result.p_net_kw[0]) if len(result.p_net_kw) else None,
    )
    result = hold_plan(problem, result, state.stale_assets)
    result = with_session_power(problem, result)  # kW per EV session, as well as per charger
    held = frozenset(n for n, s in result.assets.items() if s.held)
    target = tracking.target(
        problem, result, setpoints, safety.limits_kw(problem, 0), state.stale_assets | held
    )
    notes = [*prepare.assumption_notes(state.assumptions), *problem.notes]
    result.messages += [m for m in notes if m not in result.messages]
    t["validate_s"] = time.perf_counter() - t0
    t["total_s"] = sum(t.values())
    return CycleReport(
        at,
        problem.horizon,
        problem,
        result,
        setpoints,
        clamps,
        violations,
        used,
        fallback,
        errors,
        grid,
        t,
        forecasts,
        target,
    )


_HELD_ZERO_DETAIL = ("curtail_kw", "p_to_car_kw")  # a held asset curtails and charges nothing


def hold_plan(
    problem: DispatchProblem, result: DispatchResult, hold: frozenset[str]
) -> DispatchResult:
    """The plan as it is carried out when the assets of ``hold`` are held at their safe
    setpoint (:func:`controllers.safety.held_reasons`, the same hold the setpoints get):
    each held schedule is what it is sent over the whole horizon, flagged ``held`` with the
    reason; the park's and the buses' net import and the PEDF exchanges follow. The
    objective stays the dispatch's (a message says so). Earlier flags (a shifted plan) are
    cleared: ``held`` is this interval's.

    Parameters
    ----------
    problem : DispatchProblem
        The interval's problem.
    result : DispatchResult
        The dispatch (or fallback) plan.
    hold : frozenset of str
        Assets whose telemetry is stale.

    Returns
    -------
    DispatchResult
        ``result`` itself when nothing is held or flagged, else a copy with the holds.
    """
    held = {n: r for n, r in safety.held_reasons(problem, hold).items() if n in result.assets}
    if not held and not any(s.held for s in result.assets.values()):
        return result
    pedf_of = {m: pe.spec.name for pe in problem.pedfs for m in _pedf_members(pe)}
    assets = {n: replace(s, held="") if s.held else s for n, s in result.assets.items()}
    net = np.asarray(result.p_net_kw, dtype=float).copy()
    bus_p = {b: np.asarray(v, dtype=float).copy() for b, v in result.bus_p_kw.items()}
    for name, reason in held.items():
        old = assets[name]
        p_kw = safety.held_schedule_kw(problem, name)
        delta = p_kw - np.asarray(old.p_kw, dtype=float)
        assets[name] = _held_schedule(old, p_kw, reason)
        building = pedf_of.get(name)
        if building in held:
            continue  # the building's exchange is held as a whole
        if building is not None:
            agg = assets[building]
            assets[building] = replace(agg, p_kw=np.asarray(agg.p_kw, dtype=float) + delta)
        net += delta
        if old.bus in bus_p:
            bus_p[old.bus] += delta
    note = (
        f"held at the safe setpoint ({safety.HELD_STALE}): {', '.join(held)}; the objective "
        "is the dispatch's, before the hold"
    )
    messages = [*result.messages, note] if held else list(result.messages)
    return replace(result, p_net_kw=net, assets=assets, bus_p_kw=bus_p, messages=messages)


def _pedf_members(pe) -> list[str]:
    names = [pe.spec.battery.name, pe.spec.pv.name]
    return names + ([pe.spec.flexible_load.name] if pe.spec.flexible_load else [])


def _held_schedule(s, p_kw: np.ndarray, reason: str):
    """``s`` held at ``p_kw``: storage keeps its energy (a held battery is sent 0 kW), no
    curtailment or charging in its detail."""
    detail = {k: v for k, v in s.detail.items() if not k.startswith(SESSION_KEY)}
    for k in _HELD_ZERO_DETAIL:
        if k in detail:
            detail[k] = np.zeros_like(np.asarray(detail[k], dtype=float))
    if "p_charge_kw" in detail:
        detail["p_charge_kw"] = np.maximum(p_kw, 0.0)
    if "p_discharge_kw" in detail:
        detail["p_discharge_kw"] = np.maximum(-p_kw, 0.0)
    e_kwh = None if s.e_kwh is None else np.full(len(s.e_kwh), float(s.e_kwh[0]))
    return replace(s, p_kw=p_kw, e_kwh=e_kwh, detail=detail, held=reason)


def _dispatch(
    controller: Controller,
    problem: DispatchProblem,
    last_plan: DispatchResult | None,
    dispatch_fn: DispatchFn,
) -> tuple[DispatchResult, object | None, str, str | None, list[str]]:
    errors: list[str] = []
    try:
        result, grid = dispatch_fn(controller, problem)
        if result.ok:
            return result, grid, controller.name, None, errors
        errors.append(f"{controller.name}: status {result.status}")
    except Exception as exc:
        log.exception("dispatch by %s failed", controller.name)
        errors.append(f"{controller.name}: {type(exc).__name__}: {exc}")
    result, used, fallback = fallback_plan(problem, last_plan)
    return result, None, used, fallback, errors


def fallback_plan(
    problem: DispatchProblem, last_plan: DispatchResult | None
) -> tuple[DispatchResult, str, str]:
    """The last valid plan shifted to the problem's horizon, else the rule-based
    controller's: ``(result, controller name, "last_plan" | "rule")``."""
    if last_plan is not None:
        shifted = shift_plan(last_plan, problem.horizon)
        if shifted is not None:
            return shifted, last_plan.controller, "last_plan"
    rule = RuleController()
    return rule.dispatch(problem), rule.name, "rule"
