"""What the park can offer a utility, computed from a dispatch problem and its plan.

Pure computation. ``envelope`` gives, per interval of the horizon, the lowest and highest park
import the VPP can hold *in that interval* given the planned state of its storage (each
interval on its own: holding the extreme in one interval changes what the next can do).
``expected_delivery`` tells a utility what the plan delivers for a DR event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult
from vpp.accounting import dr_baseline
from vpp.park.model import DemandResponseEvent, DrDirection, DrTerms, dr_terms


def uncontrolled_net_kw(problem: DispatchProblem) -> np.ndarray:
    """Park import with storage idle, nothing curtailed and no EV charging (kW per interval)."""
    net = np.zeros(problem.n)
    for b in problem.base_loads:
        net += b.p_kw
    for c in problem.curtailables:
        net += c.baseline_kw
    for p in problem.pv:
        net -= p.p_available_kw
    for pe in problem.pedfs:
        net += pe.base_kw + pe.flex_baseline_kw - pe.pv_available_kw
    return net


@dataclass(frozen=True)
class Envelope:
    p_import_min_kw: np.ndarray
    p_import_max_kw: np.ndarray


def _battery_range(spec, e_kwh: np.ndarray | None, dt_h: float, n: int):
    hi = np.full(n, spec.p_charge_max_kw)
    lo = np.full(n, -spec.p_discharge_max_kw)
    if e_kwh is not None:
        e = np.asarray(e_kwh[:n], dtype=float)
        hi = np.minimum(hi, np.maximum(spec.e_max_kwh - e, 0.0) / (spec.eta_charge * dt_h))
        lo = np.maximum(lo, -np.maximum(e - spec.e_min_kwh, 0.0) * spec.eta_discharge / dt_h)
    return lo, hi


def held_kw(plan: DispatchResult) -> dict[str, np.ndarray]:
    """The plan's held assets (``AssetSchedule.held``, set by the same hold the setpoints
    get) with what they are sent (kW per interval): they offer no flexibility."""
    return {n: np.asarray(s.p_kw, dtype=float) for n, s in plan.assets.items() if s.held}


def envelope(problem: DispatchProblem, plan: DispatchResult) -> Envelope:
    """Per-interval min and max park import (kW), within the connection limits. A held
    asset (stale telemetry, :func:`held_kw`) counts at what it is sent, in both bounds."""
    n, dt = problem.n, problem.dt_h
    held = held_kw(plan)
    lo = np.zeros(n)
    hi = np.zeros(n)
    for b in problem.base_loads:
        lo += b.p_kw
        hi += b.p_kw
    for name in _own_assets(problem) & held.keys():  # PEDF members: with their building
        lo += held[name]
        hi += held[name]
    for c in (c for c in problem.curtailables if c.spec.name not in held):
        lo += c.baseline_kw * (1.0 - c.spec.curtail_max_frac)
        hi += c.baseline_kw
    for p in (p for p in problem.pv if p.spec.name not in held):
        avail = np.minimum(p.p_available_kw, p.spec.inverter_kw)
        lo -= avail
        hi -= 0.0 if p.spec.curtailable else avail
    for b in (b for b in problem.batteries if b.spec.name not in held):
        sched = plan.assets.get(b.spec.name)
        b_lo, b_hi = _battery_range(b.spec, None if sched is None else sched.e_kwh, dt, n)
        lo += b_lo
        hi += b_hi
    lo_pe, hi_pe = _pedf_range(problem, plan, held)
    lo += lo_pe
    hi += hi_pe
    for ch in (c for c in problem.ev_chargers if c.spec.name not in held):
        p_max = np.zeros(n)
        for s in ch.sessions:
            p_max[s.arrival_k : s.departure_k] = min(ch.spec.p_max_kw, s.p_max_kw)
        hi += p_max
        lo -= p_max if ch.spec.v2g else 0.0
    for sh in (s for s in problem.shiftables if s.spec.name not in held):
        for w in sh.windows:
            hi[w.start_k : w.end_k] += sh.spec.p_max_kw
    imp_max = np.asarray(problem.import_max_kw, dtype=float)
    exp_max = np.asarray(problem.export_max_kw, dtype=float)
    hi = np.clip(hi, -exp_max, imp_max)
    lo = np.clip(lo, -exp_max, hi)
    return Envelope(lo, hi)


def _own_assets(problem: DispatchProblem) -> set[str]:
    """The controllable assets that are not part of a PEDF building."""
    groups = (problem.pv, problem.batteries, problem.ev_chargers)
    groups += (problem.shiftables, problem.curtailables)
    return {x.spec.name for g in groups for x in g}


def _pedf_range(
    problem: DispatchProblem, plan: DispatchResult, held: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The PEDF buildings' exchange range (kW): within the converter limit around the
    planned exchange; a building held, or whose battery is, stays at its planned exchange."""
    n = problem.n
    lo, hi = np.zeros(n), np.zeros(n)
    for pe in problem.pedfs:
        sched = plan.assets.get(pe.spec.name)
        exch = np.asarray(sched.p_kw, dtype=float) if sched is not None else np.zeros(n)
        if pe.spec.name in held or pe.spec.battery.name in held:
            lo, hi = lo + exch, hi + exch
            continue
        lo += np.maximum(exch - 2 * pe.spec.converter_kw, -pe.spec.converter_kw)
        hi += np.minimum(exch + 2 * pe.spec.converter_kw, pe.spec.converter_kw)
    return lo, hi


UNCONTROLLED = "forecast_uncontrolled"  # the baseline when the problem carries none


def expected_delivery(
    event: DemandResponseEvent,
    problem: DispatchProblem,
    plan: DispatchResult,
    defaults: DrTerms | None = None,
) -> dict:
    """What the plan delivers for ``event`` over the part of its windows inside the horizon.

    Against the baseline the plan's DR limits were set on (``DispatchProblem.dr_baseline_kw``,
    its method in ``baseline_method``; the uncontrolled forecast when the problem has none):
    mean response (kW, positive = in the asked direction), the plan's highest (peak shaving)
    or lowest (valley filling) import, whether the target is met, and the settlement's own
    figures on the plan (``plan_*``: requested and delivered kWh, ratio, null when nothing is
    asked, effective, compensation in CNY under the event's terms or ``defaults``)."""
    times = problem.horizon.times()
    mask = np.array([any(w.start <= t < w.end for w in event.windows) for t in times])
    if not mask.any():
        return {"intervals_in_horizon": 0}
    if problem.dr_baseline_kw is not None:  # the baseline the plan's DR limits were set on
        base_all, method = (
            np.asarray(problem.dr_baseline_kw, dtype=float),
            problem.dr_baseline_method,
        )
    else:
        base_all, method = uncontrolled_net_kw(problem), UNCONTROLLED
    base = base_all[mask]
    net = np.asarray(plan.p_net_kw)[mask]
    shaving = event.direction is DrDirection.PEAK_SHAVING
    response = (base - net) if shaving else (net - base)
    d = dr_baseline.delivery(event, base, net, problem.dt_h)  # the settlement's own rules
    c = dr_baseline.compensation(d, dr_terms(event, defaults))
    out = {
        "intervals_in_horizon": int(mask.sum()),
        "plan_version_controller": plan.controller,
        "baseline_method": method or UNCONTROLLED,
        "plan_requested_kwh": round(d.requested_kwh, 3),
        "plan_delivered_kwh": round(d.delivered_kwh, 3),
        "plan_delivery_ratio": None if d.ratio is None else round(d.ratio, 4),
        "plan_effective": d.effective,
        "plan_compensation_cny": round(c.total_cny, 2),
        "baseline_mean_kw": round(float(base.mean()), 3),
        "response_mean_kw": round(float(response.mean()), 3),
        "response_min_kw": round(float(response.min()), 3),
        "target_kw": event.target_kw,
        "import_max_kw": round(float(net.max()), 3),
        "import_min_kw": round(float(net.min()), 3),
    }
    if shaving and event.import_cap_kw is not None:
        out["meets_target"] = bool(net.max() <= event.import_cap_kw + 1e-3)
    else:
        lo_band = event.effective_band_frac[0] * event.target_kw
        out["meets_target"] = bool(response.min() >= lo_band - 1e-3)
    return out
