"""Cycles on the interval boundaries (:00, :15, :30, :45 by default) with APScheduler.

One job fires at every boundary of the (possibly simulated) clock: ``max_instances=1`` and
``coalesce=True`` so two cycles never overlap and missed runs collapse into one, with a
misfire grace time. Event-driven re-solves are one-off jobs of their own that wait for the
runtime's lock, so a re-solve asked for during a cycle runs right after it.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from vpp.runtime.service import Runtime

log = logging.getLogger(__name__)


def next_boundary(t: datetime, step: timedelta) -> datetime:
    """The first boundary at or after ``t`` (boundaries are multiples of ``step`` since the
    Unix epoch, which are the local quarter hours in every zone with a whole-hour offset)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    k = math.ceil((t - epoch) / step - 1e-9)
    return epoch + k * step


def nearest_boundary(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + round((t - epoch) / step) * step


class CycleScheduler:
    """Runs ``runtime`` on the boundaries of ``runtime.clock`` (a clock with ``now()``,
    ``speed`` and ``real_seconds(timedelta)``)."""

    def __init__(self, runtime: Runtime, misfire_grace_s: float = 60.0):
        self.runtime = runtime
        self.clock = runtime.clock
        self.step = timedelta(minutes=runtime.site.dispatch.step_minutes)
        self.grace_s = max(1, math.ceil(misfire_grace_s))
        self.sched = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self.grace_s},
        )

    def start(self, run_now: bool = True) -> None:
        """Start the boundary job; ``run_now`` also runs a first cycle at once (a fresh
        start should not wait up to an interval for its first plan)."""
        sim_now = self.clock.now()
        first = next_boundary(sim_now, self.step)
        delay_s = self.clock.real_seconds(first - sim_now)
        period_s = self.clock.real_seconds(self.step)
        start = datetime.now(UTC) + timedelta(seconds=delay_s)
        self.sched.add_job(
            self._tick,
            IntervalTrigger(seconds=period_s, start_date=start, timezone=UTC),
            id="cycle",
            name="control cycle on the interval boundary",
        )
        self.runtime.on_resolve = self.resolve
        self.sched.start()
        if run_now:
            self.resolve("start")
        log.info(
            "scheduler: first boundary %s (in %.1f s), then every %.1f s (speed %g)",
            first.isoformat(timespec="minutes"),
            delay_s,
            period_s,
            self.clock.speed,
        )

    def _tick(self) -> None:
        now = self.clock.now()
        self._run("schedule", nearest_boundary(now, self.step).astimezone(now.tzinfo))

    def resolve(self, reason: str) -> None:
        """Run a cycle as soon as possible (replaces a re-solve still waiting)."""
        self.sched.add_job(
            self._run,
            "date",
            args=[reason, None],
            id="resolve",
            replace_existing=True,
            name=f"re-solve: {reason}",
        )

    def _run(self, trigger: str, at: datetime | None) -> None:
        try:
            self.runtime.run_cycle(trigger=trigger, at=at)
        except Exception:
            log.exception("cycle failed; the next boundary tries again")

    def shutdown(self, timeout_s: float = 60.0) -> None:
        """Stop firing, then let the running cycle finish (or give up after ``timeout_s``)."""
        self.sched.pause()
        finished = self.runtime.close(timeout_s)
        self.sched.shutdown(wait=finished)
        log.info("scheduler stopped%s", "" if finished else " (a cycle was still running)")
