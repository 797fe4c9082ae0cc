"""Cycles on the interval boundaries (:00, :15, :30, :45 by default) with APScheduler.

One job fires at every boundary of the (possibly simulated) clock (``coalesce=True``: missed
runs collapse into one, with a misfire grace time). It does not run the cycle itself: it hands
the boundary to a :class:`TriggerQueue`, as every event-driven re-solve does (a DR event, a
confirmation, a manual cycle, telemetry far from the plan). The queue's one worker thread runs
the cycles one at a time; whatever arrives while one runs collapses into one pending re-solve
that starts as soon as it ends (coalesced, never dropped; the reasons joined with ``+`` are the
cycle's trigger). Each request gets a ticket, and a caller may wait (bounded) for the cycle
that follows it: the API's DR routes answer with the plan that follows the change.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
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


class TriggerQueue:
    """Coalesced cycle requests, run one at a time by one worker thread.

    Parameters
    ----------
    run : callable
        ``run(trigger, at)`` runs one cycle (``at``: the boundary for a scheduled cycle,
        None for now); an exception is logged and the queue goes on.
    """

    def __init__(self, run: Callable[[str, datetime | None], None]):
        self._run = run
        self._cond = threading.Condition()
        self._reasons: list[str] = []  # pending, in order of arrival, each once
        self._at: datetime | None = None  # the boundary of a pending scheduled cycle
        self._asked = 0  # tickets handed out
        self._done = 0  # tickets whose cycle has ended (run, failed or dropped at stop)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.running: str | None = None  # the trigger of the cycle running now

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vpp-cycles", daemon=True)
        self._thread.start()

    def submit(self, reason: str, at: datetime | None = None) -> int:
        """Ask for a cycle; the ticket to :meth:`wait` on. Requests made while a cycle runs
        (or before one starts) share the next cycle."""
        with self._cond:
            if reason not in self._reasons:
                self._reasons.append(reason)
            if at is not None:
                self._at = at
            self._asked += 1
            self._cond.notify_all()
            return self._asked

    def wait(self, ticket: int, timeout_s: float) -> bool:
        """Block until the cycle that serves ``ticket`` has ended; False after ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= ticket, timeout_s)

    @property
    def pending(self) -> tuple[str, ...]:
        with self._cond:
            return tuple(self._reasons)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Run no further cycle; pending requests are dropped (their waiters return)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._cond:
            self._done = self._asked
            self._cond.notify_all()

    def _take(self) -> tuple[str, datetime | None, int] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._stop or self._reasons)
            if self._stop:
                return None
            trigger = "+".join(self._reasons)
            at = self._at if "schedule" in self._reasons else None
            self._reasons, self._at = [], None
            self.running = trigger
            return trigger, at, self._asked

    def _loop(self) -> None:
        while (job := self._take()) is not None:
            trigger, at, upto = job
            try:
                self._run(trigger, at)
            except Exception:
                log.exception("cycle (%s) failed; the next trigger tries again", trigger)
            with self._cond:
                self.running = None
                self._done = max(self._done, upto)
                self._cond.notify_all()


class CycleScheduler:
    """Runs ``runtime`` on the boundaries of ``runtime.clock`` (a clock with ``now()``,
    ``speed`` and ``real_seconds(timedelta)``)."""

    def __init__(self, runtime: Runtime, misfire_grace_s: float = 60.0):
        self.runtime = runtime
        self.clock = runtime.clock
        self.step = timedelta(minutes=runtime.site.dispatch.step_minutes)
        self.grace_s = max(1, math.ceil(misfire_grace_s))
        self.queue = TriggerQueue(self._run)
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
        self.sched.add_job(  # wall-clock seconds, whatever the simulated clock's speed
            self._heartbeat,
            IntervalTrigger(seconds=self.runtime.settings.lease_heartbeat_s, timezone=UTC),
            id="lease-heartbeat",
            name="renew the writer lease",
        )
        self.runtime.on_resolve = self.resolve
        self.runtime.await_resolve = self.queue.wait
        self.queue.start()
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

    def _heartbeat(self) -> None:
        """Renew the writer lease between cycles (a lost one is logged by the lease)."""
        try:
            self.runtime.lease.renew()
        except Exception:
            log.exception("writer lease heartbeat failed; the next one tries again")

    def _tick(self) -> None:
        now = self.clock.now()
        self.queue.submit("schedule", nearest_boundary(now, self.step).astimezone(now.tzinfo))

    def resolve(self, reason: str) -> int:
        """Run a cycle as soon as possible: at once when idle, else right after the running
        one (with every other request made meanwhile); the ticket to wait on."""
        return self.queue.submit(reason)

    def _run(self, trigger: str, at: datetime | None) -> None:
        self.runtime.run_cycle(trigger=trigger, at=at)

    def shutdown(self, timeout_s: float = 60.0) -> None:
        """Stop firing, then let the running cycle finish (or give up after ``timeout_s``)."""
        self.sched.pause()
        finished = self.runtime.close(timeout_s)
        self.queue.stop(timeout_s if finished else 0.1)
        self.sched.shutdown(wait=finished)
        log.info("scheduler stopped%s", "" if finished else " (a cycle was still running)")
