"""The computation of a control cycle, apart from the service that measures and stores.

A planner takes what the service read from the plant (:class:`PlanRequest`: the time, the
plant state, the DR events, the plan in force) and gives back the cycle's report with the
parts the store writes already made (:class:`PlanOutcome`): forecasts, the problem, the
dispatch with its fallbacks and AC validation, the safety clamp, and the plan and forecasts
encoded as JSON. The service then only stores and publishes.

:class:`InlinePlanner` computes in the caller's process (tests, ``vpp run --once``);
:class:`vpp.runtime.planner_process.ProcessPlanner` runs an :class:`InlinePlanner` built from a
:class:`PlannerSpec` in a long-lived worker process, so the cycle's Python work never holds
the API process's GIL.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine

from controllers.problem import Controller, DispatchResult
from vpp.accounting import flexibility
from vpp.park.model import DemandResponseEvent, DrStatus, DrTerms, Site
from vpp.park.series import PostedSeries
from vpp.park.state import Forecasts, PlantState
from vpp.plan.cycle import CycleReport, DispatchFn, Forecaster, plain_dispatch, plan_cycle
from vpp.store import repo
from vpp.store.codec import EncodedJson, encode_json
from vpp.store.db import make_engine

log = logging.getLogger(__name__)

AC_MAX_ROUNDS = 3  # re-solves the AC validation may add (vpp.grid.loop default)
MAX_VIOLATIONS_STORED = 50


@dataclass(frozen=True)
class PlanRequest:
    """What the service measured at the start of the interval at ``at``."""

    at: datetime
    state: PlantState
    dr_events: tuple[DemandResponseEvent, ...] = ()
    last_plan: DispatchResult | None = None
    # The GB/T 37016-style baseline over the horizon from the stored meter history (the
    # method the settlement uses); None when the history has no similar day: the plan then
    # uses its forecast baseline and says so (vpp.plan.prepare.PLAN_BASELINE).
    dr_baseline_kw: np.ndarray | None = None
    # Price and emission-factor rows posted to the service for the horizon (from the store).
    posted: PostedSeries | None = None


@dataclass
class CycleParts:
    """What the store writes for a cycle besides what only the service knows (trigger,
    wall-clock times, EV sessions)."""

    plan: EncodedJson  # DispatchResult.to_json_dict(), encoded
    relaxed: list[dict[str, Any]]
    forecasts: dict[str, dict[str, EncodedJson | None]]
    forecast_source: str
    network_violations: list[str]  # described; at most MAX_VIOLATIONS_STORED
    network_violation_count: int = 0
    dr_expected: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PlanOutcome:
    """The cycle's report (without the network report, summarised in ``parts``)."""

    report: CycleReport
    parts: CycleParts


class Planner(Protocol):
    def plan(self, req: PlanRequest) -> PlanOutcome: ...


class InlinePlanner:
    """Plans in the calling process with the given forecaster, controller and dispatch
    function (:func:`vpp.plan.cycle.plan_cycle`)."""

    def __init__(
        self,
        site: Site,
        forecaster: Forecaster,
        controller: Controller,
        dispatch_fn: DispatchFn = plain_dispatch,
    ):
        self.site, self.forecaster = site, forecaster
        self.controller, self.dispatch_fn = controller, dispatch_fn

    def plan(self, req: PlanRequest) -> PlanOutcome:
        rep = plan_cycle(
            self.site,
            req.at,
            req.state,
            self.forecaster,
            self.controller,
            req.dr_events,
            req.last_plan,
            self.dispatch_fn,
            req.dr_baseline_kw,
            req.posted,
        )
        return outcome(rep, req.dr_events, self.site.dr_defaults)


def outcome(
    rep: CycleReport, dr_events: Iterable[DemandResponseEvent], dr_defaults: DrTerms | None = None
) -> PlanOutcome:
    """The report with its stored parts made; the network report itself is dropped.
    ``dr_defaults``: the park's DR compensation terms (``Site.dr_defaults``)."""
    return PlanOutcome(replace(rep, grid=None), cycle_parts(rep, dr_events, dr_defaults))


def cycle_parts(
    rep: CycleReport, dr_events: Iterable[DemandResponseEvent], dr_defaults: DrTerms | None = None
) -> CycleParts:
    r = rep.result
    found = network_violations(rep.grid)
    fc = rep.forecasts
    return CycleParts(
        plan=encode_json(r.to_json_dict()),
        relaxed=[x.to_json_dict() for x in r.relaxed],
        forecasts=forecasts_json(fc),
        forecast_source=fc.source if fc else "none",
        network_violations=[
            f"network: {v.kind} at {v.element}, step {v.step}: {v.value:.3f} (limit {v.limit:.3f})"
            for v in found[:MAX_VIOLATIONS_STORED]
        ],
        network_violation_count=len(found),
        dr_expected={
            e.event_id: flexibility.expected_delivery(e, rep.problem, r, dr_defaults)
            for e in dr_events
            if e.status in (DrStatus.ANNOUNCED, DrStatus.CONFIRMED, DrStatus.ACTIVE)
        },
    )


def network_violations(grid: object | None) -> list:
    """The violations of a network report (a GridReport, or the final one of a LoopReport)."""
    if grid is None:
        return []
    found = getattr(grid, "violations", None)
    if found is None and hasattr(grid, "final"):
        found = getattr(grid.final, "violations", None)
    return list(found or ())


def forecasts_json(fc: Forecasts | None) -> dict[str, dict[str, EncodedJson | None]]:
    """Each asset's P50 / P10 / P90 series (kW, 3 decimals), encoded for the store."""
    if fc is None:
        return {}

    def arr(a):
        return None if a is None else encode_json(np.round(np.asarray(a, float), 3).tolist())

    return {
        a: {"p50": arr(v), "p10": arr(fc.p10.get(a)), "p90": arr(fc.p90.get(a))}
        for a, v in fc.p50.items()
    }


# ------------------------------------------------------------------------------------------
# Building a planner from a picklable description (what a worker process receives)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannerSpec:
    """How to build a planner: the park, ``"module:Name"`` factories of the controller
    (called without arguments) and of the forecaster (called with the spec: see
    :data:`FORECASTERS`), whether plans are AC-validated, and the database (for a forecaster
    that reads the stored telemetry)."""

    site: Site
    controller: str = "controllers.mpc:MpcController"
    forecaster: str = "vpp.runtime.planner:profile_forecaster"
    ac_validation: bool = True
    database_url: str | None = None

    def time_limit_s(self) -> float:
        """The longest a cycle may take: every solve the AC validation allows at the
        solver's time limit, and a minute for the rest."""
        return self.site.dispatch.time_limit_s * (AC_MAX_ROUNDS + 1) + 60.0


def load(factory: str) -> Any:
    """The object named ``"module:Name"``."""
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


def build_planner(spec: PlannerSpec) -> InlinePlanner:
    return InlinePlanner(
        spec.site,
        load(spec.forecaster)(spec),
        load(spec.controller)(),
        make_dispatch_fn(spec.site, spec.ac_validation),
    )


def profile_forecaster(spec: PlannerSpec) -> Forecaster:
    """The configured load and PV profiles (``vpp.park.profiles``), with the band of their
    measured error (:func:`calibrated`)."""
    from vpp.park.profiles import ProfileForecaster

    return calibrated(spec, ProfileForecaster())


def telemetry_forecaster(spec: PlannerSpec) -> Forecaster:
    """Forecasts from the telemetry stored in ``spec.database_url`` (read incrementally),
    the configured profiles where an asset's history is too short
    (:class:`vpp.plan.history_forecasters.TelemetryForecaster`), with the band of their
    measured error (:func:`calibrated`)."""
    from vpp.park.profiles import ProfileForecaster
    from vpp.plan.history_forecasters import TelemetryForecaster, asset_names

    if spec.database_url is None:
        raise ValueError("the telemetry forecaster needs the database URL")
    names = [n for group in asset_names(spec.site) for n in group]
    read_new = telemetry_reader(make_engine(spec.database_url), names)
    return calibrated(spec, TelemetryForecaster(spec.site, read_new, ProfileForecaster()))


def calibrated(spec: PlannerSpec, inner: Forecaster) -> Forecaster:
    """``inner`` with its P10/P90 calibrated on its error against the stored telemetry
    (:class:`vpp.plan.calibrated.CalibratedForecaster`), when ``dispatch.margin_bands`` is
    ``measured`` and a database is known; ``inner`` itself otherwise. The configured profiles
    state no band, so without this the service's margins are zero whatever ``risk_frac``."""
    from vpp.park.model import MarginBands
    from vpp.plan.calibrated import CalibratedForecaster, telemetry_measured
    from vpp.plan.history_forecasters import asset_names

    d = spec.site.dispatch
    if d.margin_bands is not MarginBands.MEASURED or spec.database_url is None:
        return inner
    names = [n for group in asset_names(spec.site) for n in group]
    read_new = telemetry_reader(make_engine(spec.database_url), names)
    measured = telemetry_measured(spec.site, read_new)
    return CalibratedForecaster.for_site(spec.site, inner, measured)


def telemetry_reader(engine: Engine, assets: list[str]):
    """``read_new(since)``: the readings of ``assets`` stored since the last call (on the
    first, those from ``since`` on) as asset names, Unix seconds, kW. Incremental by row id:
    a reading committed after one with a higher id (concurrent writers) can be missed."""
    last_id = 0

    def read_new(since: datetime):
        nonlocal last_id
        with engine.connect() as conn:
            got = repo.telemetry_after(conn, last_id, since if last_id == 0 else None, assets)
        last_id = got[0]
        return got[1:]

    return read_new


FORECASTERS = {
    "profiles": "vpp.runtime.planner:profile_forecaster",
    "telemetry": "vpp.runtime.planner:telemetry_forecaster",
}


def make_dispatch_fn(site: Site, enabled: bool) -> DispatchFn:
    """AC power-flow validation and correction around the controller, when available; the
    network rows that bind are carried to the next cycle (:class:`vpp.grid.loop.RowMemory`),
    which is one reason to keep the planner in one long-lived process."""
    if not enabled:
        return plain_dispatch
    try:
        from vpp.grid.loop import RowMemory, dispatch_ac_feasible
        from vpp.grid.network import GridModel
    except ImportError:
        log.warning("network validation unavailable (vpp.grid.network); plans are not AC-checked")
        return plain_dispatch
    from vpp.grid import unbalanced

    grid = GridModel.from_site(site)
    memory = RowMemory()  # binding network rows carried from cycle to cycle
    phase = unbalanced.PhaseCheck(site) if unbalanced.applies(site) else None

    def dispatch(controller, problem):
        return dispatch_ac_feasible(
            controller, problem, grid, max_rounds=AC_MAX_ROUNDS, memory=memory, phase=phase
        )

    return dispatch
