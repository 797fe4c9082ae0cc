"""Every plan names who gave way and why (:mod:`controllers.give_way`), with the DR events
by name: the plan layer knows the events' windows, the controllers only the caps.

Pure computation, called by :mod:`vpp.plan.cycle` for every plan and by the simulation for
its records.
"""

from __future__ import annotations

from collections.abc import Iterable

from controllers import give_way
from controllers.problem import DispatchProblem, DispatchResult
from vpp.park.model import DemandResponseEvent, Horizon
from vpp.plan.dr_targets import DR_ACTIVE


def dr_event_ids(events: Iterable[DemandResponseEvent], horizon: Horizon) -> tuple[str, ...]:
    """Per step of ``horizon``, the confirmed or active DR events whose window holds there,
    joined by ``+`` (``""`` where none): the events :func:`vpp.plan.dr_targets.dr_limits`
    makes the caps and floors of."""
    times = horizon.times()
    out = [""] * horizon.n
    for e in events:
        if e.status not in DR_ACTIVE:
            continue
        for k, t in enumerate(times):
            if any(w.start <= t < w.end for w in e.windows):
                ids = out[k].split("+") if out[k] else []
                out[k] = "+".join(ids if e.event_id in ids else [*ids, e.event_id])
    return tuple(out)


def explain_plan(
    problem: DispatchProblem, result: DispatchResult, events: Iterable[DemandResponseEvent]
) -> DispatchResult:
    """``result`` with the reason of every relaxation an asset gave way by
    (:func:`controllers.give_way.explain`); a plan shifted from an earlier interval keeps its
    own (its steps are not this horizon's)."""
    if result.status == "shifted":
        return result
    return give_way.explain(problem, result, dr_event_ids(events, problem.horizon))


def notes(
    problem: DispatchProblem, result: DispatchResult, events: Iterable[DemandResponseEvent]
) -> list[give_way.GiveWayNote]:
    """Who gave way in ``result`` and why (:func:`controllers.give_way.give_way`), DR events
    named; none for a shifted plan."""
    if result.status == "shifted":
        return []
    return give_way.give_way(problem, result, dr_event_ids(events, problem.horizon))
