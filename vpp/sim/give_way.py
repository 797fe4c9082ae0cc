"""Who gave way in one closed-loop cycle: what the plan said, and what the park then did.

One :class:`GiveWayRecord` per cycle (``CycleRecord.give_way``), for the KPIs
(:mod:`vpp.accounting.shortfalls`): the plan's notes of who gave way and why
(:mod:`vpp.plan.give_way`), the curtailment the park carried out in the interval with the
limits at their bound in the plan's first step, and the shiftable windows that closed at the
interval's end with the energy they got. Read from the simulated park's public records, after
the interval was applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from controllers.give_way import GiveWayNote, curtailment_causes
from vpp.park.model import DemandResponseEvent, Horizon, ShiftableLoad, window_start
from vpp.plan import give_way
from vpp.plan.cycle import CycleReport

TOL_KW = 1e-3  # curtailment below this is rounding


@dataclass(frozen=True)
class Curtailed:
    """A curtailable load curtailed in the interval: ``kw`` realised (baseline - served),
    ``causes`` the labels of the limits at their bound in the plan's first step (empty: the
    plan curtailed it for its cost)."""

    load: str
    kw: float
    causes: tuple[str, ...] = ()


@dataclass(frozen=True)
class WindowOutcome:
    """A shiftable load's window that closed: ``requested_kwh`` its energy, ``done_kwh`` what
    the park ran in it; ``whole`` False when it opened before the run (partly uncontrolled)."""

    load: str
    start: datetime
    end: datetime
    requested_kwh: float
    done_kwh: float
    whole: bool = True

    @property
    def short_kwh(self) -> float:
        return max(self.requested_kwh - self.done_kwh, 0.0)


@dataclass(frozen=True)
class GiveWayRecord:
    """Who gave way in one cycle (the module docstring)."""

    notes: tuple[GiveWayNote, ...] = ()
    curtailed: tuple[Curtailed, ...] = ()
    windows: tuple[WindowOutcome, ...] = ()


def record(report: CycleReport, park, events: Iterable[DemandResponseEvent] = ()) -> GiveWayRecord:
    """The cycle's record, after ``park`` (a :class:`~vpp.sim.simulated_park.SimulatedPark`)
    applied its interval.

    Parameters
    ----------
    report : CycleReport
        The cycle's plan.
    park : SimulatedPark
        The park, its interval at ``report.at`` applied.
    events : iterable of DemandResponseEvent
        The DR events the plan honoured (to name them).
    """
    events = tuple(events)
    p, r = report.solved, report.result  # the AC loop's rows included: they give way too
    notes = tuple(give_way.notes(p, r, events))
    return GiveWayRecord(notes, _curtailed(report, park, events), _windows(report.at, park))


def _curtailed(report: CycleReport, park, events: tuple) -> tuple[Curtailed, ...]:
    p, r = report.solved, report.result
    planned = curtailment_causes(p, r, 0, give_way.dr_event_ids(events, p.horizon))
    if not planned:
        return ()
    truth = park.truth(Horizon(report.at, p.horizon.step, 1))
    out = []
    for name, causes in planned.items():
        served = float(park.asset_power(name)[-1]) + float(park.asset_unserved_kw(name)[-1])
        kw = float(truth[name][0]) - served
        if kw > TOL_KW:
            out.append(Curtailed(name, kw, tuple(c.label for c in causes)))
    return tuple(out)


def window_end(spec: ShiftableLoad, start: datetime) -> datetime:
    """End of the window occurrence of ``spec`` that starts at ``start`` (local, tz-aware)."""
    end = datetime.combine(start.date(), spec.window_end, tzinfo=start.tzinfo)
    return end if end > start else end + timedelta(days=1)


def _windows(at: datetime, park) -> tuple[WindowOutcome, ...]:
    """The shiftable windows that close at the end of the interval starting at ``at``."""
    out = []
    nxt = at + park.step
    for spec in park.site.assets.shiftable_loads:
        start = window_start(spec, at.astimezone(park.tz))
        if start is None or window_end(spec, start) > nxt:
            continue
        first = max(start, park.start) if park.start is not None else start
        steps = max(round((nxt - first) / park.step), 0)
        ran = park.asset_power(spec.name)[-steps:] if steps else []
        done = float(sum(ran)) * park.dt_h
        whole = park.start is None or start >= park.start
        out.append(
            WindowOutcome(spec.name, start, window_end(spec, start), spec.e_kwh, done, whole)
        )
    return tuple(out)
