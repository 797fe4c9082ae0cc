"""What the simulated park did to its network: an AC power flow of the power each bus actually
drew, every interval of a run, whatever the planner used.

The planner's AC check (``--grid``) validates the *plan* on the *forecast*; when the forecast
is wrong, the park draws something else. This module runs the park's pandapower model on the
realised bus powers (:meth:`vpp.sim.simulated_park.SimulatedPark.bus_p_kw`) and reports the
violations by element, the worst loading and the voltage range: the figures the KPIs give as
the park's own, beside the plan's ``plan_grid_violation_steps``.

Reactive power follows the network model's rule (:mod:`vpp.grid.network`): base, curtailable
and shiftable loads consume at the configured inductive power factor; PV inverters,
batteries, EV chargers and PEDF converters run at unity power factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from vpp.grid import unbalanced
from vpp.grid.network import GridModel, GridOptions, GridReport, tan_phi
from vpp.park.model import Site


@dataclass
class RealisedGrid:
    """A run's realised network figures; ``checked`` is False when the park has no network."""

    checked: bool
    note: str = ""
    violation_steps: int | None = None
    by_element: list[dict] = field(default_factory=list)
    trafo_loading_max_percent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    line_loading_max_percent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v_min_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v_max_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))


def has_network(site: Site) -> bool:
    nw = site.network
    return bool(nw.transformers or nw.lines or nw.pandapower_json or nw.simbench_code)


def inductive_q_kvar(site: Site, asset_p_kw, buses: Sequence[str], pf: float) -> dict:
    """Reactive power per bus (kvar) of the realised consumption: the park's base,
    curtailable and shiftable loads outside PEDF buildings at ``pf``, everything else at 1.

    ``asset_p_kw(name)`` gives one asset's realised power per interval (kW).
    """
    tan = tan_phi(pf)
    a = site.assets
    out: dict[str, np.ndarray] = {}
    for x in [*a.base_loads, *a.curtailable_loads, *a.shiftable_loads]:
        if x.bus in buses:
            q = np.maximum(asset_p_kw(x.name), 0.0) * tan
            out[x.bus] = out.get(x.bus, 0.0) + q
    return out


@dataclass(frozen=True)
class AppliedPlans:
    """What the applied plans meant for each bus, interval by interval (kW): the plan's own
    bus power for the interval it was applied to, and the forecast-error margin it kept
    (``up``: more import than planned; ``down``: less). Buses a plan did not name are 0."""

    bus_p_kw: dict[str, np.ndarray]
    error_up_kw: dict[str, np.ndarray]
    error_down_kw: dict[str, np.ndarray]


def check(
    site: Site,
    bus_p_kw: dict[str, np.ndarray],
    asset_p_kw,
    times: Sequence[datetime],
    plans: AppliedPlans | None = None,
) -> RealisedGrid:
    """AC power flow of the realised bus powers over every interval of the run; with
    ``plans``, each violated element says why (:func:`explain`)."""
    if not has_network(site):
        return RealisedGrid(
            checked=False,
            note="no network configured (transformers, lines or a study network): "
            "only the connection limits are checked",
        )
    options = GridOptions()
    model = GridModel.from_site(site, options)
    q = inductive_q_kvar(site, asset_p_kw, model.buses, options.load_power_factor)
    known = {b: v for b, v in bus_p_kw.items() if b in model.buses}
    q_known = {b: v for b, v in q.items() if b in known}
    report = model.validate(known, q_known)
    per_phase = unbalanced.applies(site)
    phase_only: set[tuple[str, str, int]] = set()
    if per_phase:
        phase_only = _check_phases(site, report, asset_p_kw, len(times), options)
    done = summarise(report, times)
    if per_phase:
        done.note = "unbalanced three-phase flow (runpp_3ph) checked every interval"
    if phase_only:
        done.note += f"; {len({k[2] for k in phase_only})} interval(s) over a limit on a phase only"
    if plans is not None and report.violations:
        planned = {b: np.asarray(plans.bus_p_kw.get(b, np.zeros_like(v))) for b, v in known.items()}
        near = {t.name: [t.lv_bus] for t in site.network.transformers}
        near |= {b: [b] for b in known}  # a bus's voltage: the bus itself first
        explain(
            done, report, model.validate(planned, q_known), known, plans, times, near, phase_only
        )
    return done


def _check_phases(site: Site, report: GridReport, asset_p_kw, n: int, options: GridOptions):
    """The unbalanced flow of every realised interval folded into the balanced ``report``
    (its violations and its per-interval worst figures: the worst phase); returns the
    ``(element, kind, step)`` over a limit on a phase only."""
    phase = unbalanced.PhaseCheck(site, options.load_power_factor)
    schedules = {name: np.asarray(asset_p_kw(name), dtype=float) for name in phase.loads}
    found = phase.check(schedules, report, list(range(n)), report.limits)
    unbalanced.fold(report, found)
    for arr, by_step, pick in (
        (report.trafo_loading_max_percent, found.trafo_loading_max_percent, max),
        (report.line_loading_max_percent, found.line_loading_max_percent, max),
        (report.vm_min_pu, found.vm_min_pu, min),
        (report.vm_max_pu, found.vm_max_pu, max),
    ):
        for t, x in by_step.items():
            if t < len(arr):
                arr[t] = pick(float(arr[t]), x)
    return {(v.element, v.kind, v.step) for v in found.violations}


def explain(
    done: RealisedGrid,
    real: GridReport,
    planned: GridReport,
    real_bus_kw: dict[str, np.ndarray],
    plans: AppliedPlans,
    times: Sequence[datetime],
    near: dict[str, list[str]] | None = None,
    phase_only: set[tuple[str, str, int]] = frozenset(),
) -> None:
    """Say, for each element the park overloaded, why no plan kept it within its limit: each
    row of ``done.by_element`` gains ``intervals_<cause>`` counts and ``why_worst`` (a sentence
    on its worst interval).

    Interval by interval: ``plan`` when the applied plan itself, drawn exactly, would break
    the limit (the planner did not check the network, or relaxed the limit because the
    inflexible load alone exceeds it); otherwise ``forecast_error``: the park drew other than
    planned, and the bus that strayed most is named with its deviation and the margin the plan
    kept there (``beyond_margin`` when the deviation exceeded it: a risk level set higher
    would have covered it at a price; within it, the row's linearisation fell short).
    ``near`` names, per element, the buses to look at first (a transformer's LV bus); where
    none of them strayed, every bus is considered. ``phase_unbalance``: the interval's
    violation is on one phase only (``phase_only``, from the unbalanced flow), the balanced
    figure being within the limit.
    """
    near = near or {}
    plan_bad = {(v.element, v.kind, v.step) for v in planned.violations}
    for row in done.by_element:
        key = (row["element"], row["kind"])
        steps = sorted({v.step for v in real.violations if (v.element, v.kind) == key})
        causes = {"plan": 0, "forecast_error_beyond_margin": 0, "forecast_error_within_margin": 0}
        if phase_only:
            causes["phase_unbalance"] = 0
        worst_text = ""
        for t in steps:
            if (*key, t) in phase_only:
                causes["phase_unbalance"] += 1
                if times[t].isoformat() == row["worst_at"]:
                    worst_text = "over its limit on one phase; the balanced loading was within it"
                continue
            if (*key, t) in plan_bad:
                causes["plan"] += 1
                continue
            local = {b: real_bus_kw[b] for b in near.get(key[0], []) if b in real_bus_kw}
            bus, dev, margin = _strayed_most(local or real_bus_kw, plans, t)
            if not bus:
                bus, dev, margin = _strayed_most(real_bus_kw, plans, t)
            beyond = abs(dev) > margin + 1e-6
            causes[
                "forecast_error_beyond_margin" if beyond else "forecast_error_within_margin"
            ] += 1
            if bus and times[t].isoformat() == row["worst_at"]:
                drew = float(real_bus_kw[bus][t])
                worst_text = (
                    f"{bus} drew {drew:,.0f} kW against {drew - dev:,.0f} kW planned "
                    f"({dev:+,.0f} kW; the plan kept a margin of {margin:,.0f} kW there)"
                )
        if not worst_text and causes["plan"]:
            worst_text = "the applied plan itself breaks the limit"
        row.update({f"intervals_{k}": v for k, v in causes.items()})
        row["why_worst"] = worst_text


def _strayed_most(real_bus_kw, plans: AppliedPlans, t: int) -> tuple[str, float, float]:
    """The bus whose realised power strayed most from the plan at interval ``t``, by how much
    (kW, + drew more) and the margin the plan kept there in that direction (kW)."""
    best = ("", 0.0, 0.0)
    for bus, real in real_bus_kw.items():
        dev = float(real[t]) - float(plans.bus_p_kw.get(bus, np.zeros(len(real)))[t])
        if abs(dev) > abs(best[1]):
            side = plans.error_up_kw if dev > 0 else plans.error_down_kw
            best = (bus, dev, float(side.get(bus, np.zeros(len(real)))[t]))
    return best


def summarise(report: GridReport, times: Sequence[datetime]) -> RealisedGrid:
    """Violations by element (intervals, worst value and when) and the per-interval figures."""
    steps: dict[tuple[str, str], set[int]] = {}
    for v in report.violations:
        steps.setdefault((v.element, v.kind), set()).add(v.step)
    rows = []
    for (element, kind), worst in sorted(report.worst().items()):
        rows.append(
            {
                "element": element,
                "kind": kind,
                "intervals": len(steps[(element, kind)]),
                "worst": _finite(worst.value),
                "limit": _finite(worst.limit),
                "worst_at": times[worst.step].isoformat(),
            }
        )
    return RealisedGrid(
        checked=True,
        violation_steps=len({v.step for v in report.violations}),
        by_element=rows,
        trafo_loading_max_percent=report.trafo_loading_max_percent,
        line_loading_max_percent=report.line_loading_max_percent,
        v_min_pu=report.vm_min_pu,
        v_max_pu=report.vm_max_pu,
    )


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
