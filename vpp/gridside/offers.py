"""What the grid side offers and reports: the park's flexibility per interval and the figures
a dispatch centre or a VTN is sent, all from the plan in force.

Pure computation on the plan's problem and result. The offer is exactly
:func:`vpp.accounting.flexibility.envelope` (what ``GET /api/v1/flexibility`` serves): the
VENs report it, the IEC 104 outstation sends its current interval, and a set-point or an
event is judged against it (:func:`judge`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult
from vpp.accounting import dr_contract
from vpp.accounting.flexibility import envelope, uncontrolled_net_kw
from vpp.gridside.signals import MappingContext
from vpp.park.model import DemandResponseEvent, DrWindow


@dataclass(frozen=True)
class Offer:
    """Per interval of the plan's horizon (``times``, ``step_s``): the plan's park import
    (``plan_p_net_kw``), the lowest and highest import the park can hold in that interval
    (``p_import_min_kw``, ``p_import_max_kw``) and the baseline the DR limits are set on
    (``baseline_kw``). kW, load convention (+ import)."""

    times: tuple[datetime, ...]
    step_s: float
    plan_p_net_kw: np.ndarray
    p_import_min_kw: np.ndarray
    p_import_max_kw: np.ndarray
    baseline_kw: np.ndarray
    plan_version: int | None = None

    @property
    def up_kw(self) -> np.ndarray:
        """Flexibility upwards (more import than planned), kW >= 0."""
        return np.maximum(self.p_import_max_kw - self.plan_p_net_kw, 0.0)

    @property
    def down_kw(self) -> np.ndarray:
        """Flexibility downwards (less import than planned), kW >= 0."""
        return np.maximum(self.plan_p_net_kw - self.p_import_min_kw, 0.0)

    def index(self, at: datetime) -> int | None:
        """The interval holding ``at`` (None outside the horizon)."""
        k = int(np.floor((at - self.times[0]).total_seconds() / self.step_s))
        return k if 0 <= k < len(self.times) else None

    def mask(self, start: datetime, end: datetime) -> np.ndarray:
        """The intervals that overlap ``[start, end)``."""
        t0 = np.array([(t - start).total_seconds() for t in self.times])
        return (t0 + self.step_s > 0) & (t0 < (end - start).total_seconds())


def offer(problem: DispatchProblem, plan: DispatchResult, version: int | None = None) -> Offer:
    """The offer of the plan in force (``problem`` and ``plan`` of the service's current)."""
    env = envelope(problem, plan)
    base = (
        np.asarray(problem.dr_baseline_kw, dtype=float)
        if problem.dr_baseline_kw is not None
        else uncontrolled_net_kw(problem)
    )
    return Offer(
        tuple(problem.horizon.times()),
        problem.horizon.step.total_seconds(),
        np.asarray(plan.p_net_kw, dtype=float),
        env.p_import_min_kw,
        env.p_import_max_kw,
        base,
        version,
    )


@dataclass(frozen=True)
class Judgement:
    """Whether the park can deliver: ``ok``, why (``reason``), and whether it could be
    judged at all (``judged``: False when no interval of the call lies in the horizon)."""

    ok: bool
    reason: str
    judged: bool = True


def judge(
    event: DemandResponseEvent,
    problem: DispatchProblem,
    plan: DispatchResult,
    margin_frac: float = 0.0,
) -> Judgement:
    """Whether the envelope holds ``event`` (:func:`vpp.accounting.dr_contract.coverage`, the
    rule ``dr_policy: when_covered`` uses) over the part of its windows inside the plan's
    horizon. A call reaching beyond the horizon is judged on what the horizon holds (the
    coverage rule alone says "cannot be judged", which would opt out of every day-ahead call);
    a call wholly beyond it is not judged."""
    h = problem.horizon
    clipped = tuple(
        DrWindow(max(w.start, h.start), min(w.end, h.end))
        for w in event.windows
        if w.end > h.start and w.start < h.end
    )
    if not clipped:
        return Judgement(True, f"no interval before {h.end.isoformat()} (the horizon)", False)
    cut = dataclasses.replace(event, windows=clipped)
    c = dr_contract.coverage(cut, problem, plan, margin_frac)
    beyond = "" if clipped == event.windows else " (the part inside the plan's horizon)"
    return Judgement(c.covered, c.reason + beyond)


def setpoint_judgement(
    p_set_kw: float, off: Offer, start: datetime, end: datetime, tol_kw: float = 1e-3
) -> Judgement:
    """Whether a set-point of the park's total import (kW) lies inside the offer in every
    interval of ``[start, end)`` that the horizon holds."""
    m = off.mask(start, end)
    if not m.any():
        return Judgement(False, "the set-point's hold lies outside the plan's horizon", False)
    lo, hi = off.p_import_min_kw[m], off.p_import_max_kw[m]
    times = [t for t, x in zip(off.times, m, strict=True) if x]
    if (p_set_kw < lo - tol_kw).any():
        k = int(np.argmax(lo - p_set_kw))
        return Judgement(
            False,
            f"{p_set_kw:g} kW is below the park's lowest import {lo[k]:.1f} kW at "
            f"{times[k].isoformat(timespec='minutes')}",
        )
    if (p_set_kw > hi + tol_kw).any():
        k = int(np.argmax(p_set_kw - hi))
        return Judgement(
            False,
            f"{p_set_kw:g} kW is above the park's highest import {hi[k]:.1f} kW at "
            f"{times[k].isoformat(timespec='minutes')}",
        )
    return Judgement(True, f"within [{lo.max():.1f}, {hi.min():.1f}] kW over the hold")


def battery_soc_frac(problem: DispatchProblem) -> float | None:
    """The park's aggregate battery state of charge (0-1): stored energy over capacity of
    every battery and PEDF building battery, as measured at the plan's start."""
    e = sum(b.e_init_kwh for b in problem.batteries) + sum(p.e_init_kwh for p in problem.pedfs)
    cap = sum(b.spec.e_kwh for b in problem.batteries)
    cap += sum(p.spec.battery.e_kwh for p in problem.pedfs)
    return None if cap <= 0 else float(e / cap)


def down_flex_kw(port, start: datetime, end: datetime) -> float:
    """The park's downward flexibility over ``[start, end)`` (kW, >= 0): the least, over the
    window's intervals, of the plan's baseline less the offer's lowest import; 0 without a
    plan or an interval of the window on its horizon. ``port``: the service
    (:class:`vpp.gridside.intake.ServicePort`)."""
    cur = port.current
    if cur is None or cur.problem is None:
        return 0.0
    off = offer(cur.problem, cur.plan, cur.version)
    m = off.mask(start, end)
    if not m.any():
        return 0.0
    return float(max((off.baseline_kw[m] - off.p_import_min_kw[m]).min(), 0.0))


def mapping_context(port, config, issuer: str) -> MappingContext:
    """What the signal mapping rule needs (:class:`vpp.gridside.signals.MappingContext`) for
    a VEN with ``config`` (``level_kw``, ``contract_type``, ``programs``,
    ``confirm_lead_minutes``) on the park of ``port``; SIMPLE levels read the flexibility of
    the plan in force when the call is mapped (:func:`down_flex_kw`)."""
    site = port.site
    conn = site.connection
    return MappingContext(
        import_limit_kw=float(min(conn.import_max_kw, conn.transformer_p_max_kw)),
        down_flex_kw=lambda start, end: down_flex_kw(port, start, end),
        level_kw=config.level_kw,
        contract_type=config.contract_type,
        programs=dict(config.programs),
        confirm_lead_minutes=config.confirm_lead_minutes,
        issuer=issuer,
        tz=site.location.tz,
    )
