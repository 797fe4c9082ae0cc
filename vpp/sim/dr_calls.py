"""The park's side of the DR calls in a closed-loop run (:mod:`vpp.sim.closed_loop`).

* **Confirmation.** A pre-agreed (mandatory) event is confirmed when it is announced. An
  invitation is judged by the plan at announcement: the cycle's plan is made with it
  confirmed and declining free of any penalty, and the dispatch's own choice between
  following it and not (:mod:`controllers.dr_choice`) says whether it pays; the park
  confirms it if so and declines it otherwise (status DECLINED: the settlement and the KPIs
  count it as declined, not as failed). An invitation whose windows are not on the plan's
  horizon yet is judged in the first cycle that sees them (until then it is not honoured);
  a controller that makes no such choice (rule, uncontrolled) confirms every call.
* **Feedback.** Each cycle, what every called event delivered so far on the realised park
  import against the plan's own baseline (:func:`vpp.accounting.dr_progress.progress`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from controllers.problem import DispatchResult
from vpp.accounting import dr_progress
from vpp.accounting.dr_history import DailyBaselines
from vpp.park.model import DemandResponseEvent, DrContractType, DrStatus
from vpp.park.state import DrProgress

# Makes the plan at ``at`` for the given events (the cycle's own plan, nothing applied).
TrialPlan = Callable[[tuple[DemandResponseEvent, ...]], DispatchResult]


def visible_events(
    events: Iterable[DemandResponseEvent],
    at: datetime,
    decided: dict[str, DrStatus] | None = None,
) -> tuple[DemandResponseEvent, ...]:
    """Events announced by ``at`` and not over, as the park has answered them.

    Without ``decided`` every one is confirmed (status CONFIRMED). With it, an event it
    names takes that status (a declined one is left out), a pre-agreed one is confirmed,
    and an invitation not yet answered stays announced (the plan does not honour it).
    """
    out = []
    for e in events:
        if e.status in (DrStatus.DECLINED, DrStatus.CANCELLED):
            continue
        if e.announce_time is not None and e.announce_time > at:
            continue
        if all(w.end <= at for w in e.windows):
            continue
        status = DrStatus.CONFIRMED
        if decided is not None:
            status = decided.get(e.event_id, _unanswered(e))
        if status is DrStatus.DECLINED:
            continue
        out.append(replace(e, status=status))
    return tuple(out)


def _unanswered(e: DemandResponseEvent) -> DrStatus:
    if e.contract_type is DrContractType.PRE_AGREED:
        return DrStatus.CONFIRMED
    return DrStatus.ANNOUNCED


class DrCalls:
    """Answers to the run's DR calls and the realised meter they are tracked on.

    Parameters
    ----------
    events : the run's DR events.
    baselines : the DR baselines the plan stands on (the settlement's method).
    start : the run's first interval; step : the interval.
    """

    def __init__(
        self,
        events: Iterable[DemandResponseEvent],
        baselines: DailyBaselines,
        start: datetime,
        step: timedelta,
    ):
        self.events = tuple(events)
        self.baselines = baselines
        self.start, self.step = start, step
        self.decided: dict[str, DrStatus] = {}
        self.import_kw: list[float] = []  # realised park import per run interval
        self.says: dict[str, str] = {}  # per judged invitation, what the plan said

    def visible(self, at: datetime, trial: TrialPlan) -> tuple[DemandResponseEvent, ...]:
        """The events the plan at ``at`` honours; invitations announced by now and on the
        horizon are judged first (``trial`` makes the plan that judges them)."""
        seen = visible_events(self.events, at, self.decided)
        pending = {e.event_id for e in seen if e.status is DrStatus.ANNOUNCED}
        if not pending:
            return seen
        # Declining an invitation costs nothing: judged with no non-performance penalty.
        judged = tuple(
            replace(e, status=DrStatus.CONFIRMED, nonperformance_cny_per_kwh=0.0)
            if e.event_id in pending
            else e
            for e in seen
        )
        result = trial(judged)
        planned = set(result.dr_decisions) | {e.event_id for e in judged if _on_horizon(e, result)}
        for event_id in pending & planned:
            d = result.dr_decisions.get(event_id)
            self.decided[event_id] = (
                DrStatus.DECLINED if d is not None and not d.followed else DrStatus.CONFIRMED
            )
            self.says[event_id] = d.says if d is not None else "confirmed (no choice made)"
        return visible_events(self.events, at, self.decided)

    def meter(self, import_kw: float) -> None:
        """The realised park import of the interval just run."""
        self.import_kw.append(float(import_kw))

    def progress(
        self, at: datetime, events: Iterable[DemandResponseEvent]
    ) -> dict[str, DrProgress]:
        """What each of ``events`` delivered so far on the realised import (intervals before
        the run are unmetered); empty when no window has begun or there is no baseline.

        Each past interval is attributed among *every* event the park answered that covers
        it, those whose windows are over included (as the settlement attributes them): an
        interval of an earlier, stricter event that has ended is that event's, not the
        delivery of an overlapping one still running."""
        events = tuple(events)
        past = dr_progress.past_horizon(events, at, self.step)
        if past is None:
            return {}
        ids = {e.event_id for e in events}
        ended = tuple(
            e
            for e in self._answered_by(at)
            if e.event_id not in ids and any(w.end > past.start for w in e.windows)
        )
        try:
            base = self.baselines.on(past)
        except ValueError:
            return {}
        metered = np.full(past.n, np.nan)
        for k, t in enumerate(past.times()):
            i = round((t - self.start) / self.step)
            if 0 <= i < len(self.import_kw):
                metered[k] = self.import_kw[i]
        got = dr_progress.progress(events + ended, past, metered, base)
        return {k: v for k, v in got.items() if k in ids}

    def _answered_by(self, at: datetime) -> tuple[DemandResponseEvent, ...]:
        """The events announced by ``at`` that the park took (confirmed or pre-agreed),
        windows over or not; declined, cancelled and unanswered ones are left out."""
        out = []
        for e in self.events:
            if e.status in (DrStatus.DECLINED, DrStatus.CANCELLED):
                continue
            if e.announce_time is not None and e.announce_time > at:
                continue
            status = self.decided.get(e.event_id, _unanswered(e))
            if status is DrStatus.CONFIRMED:
                out.append(replace(e, status=status))
        return tuple(out)

    def answered(self) -> tuple[DemandResponseEvent, ...]:
        """The run's events with the park's answers: declined invitations DECLINED."""
        return tuple(
            replace(e, status=DrStatus.DECLINED)
            if self.decided.get(e.event_id) is DrStatus.DECLINED
            else e
            for e in self.events
        )


def _on_horizon(e: DemandResponseEvent, result: DispatchResult) -> bool:
    h = result.horizon
    return any(w.end > h.start and w.start < h.end for w in e.windows)
