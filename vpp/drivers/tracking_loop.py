"""The field driver's local loop: the park meter held to the cycle's :class:`TrackingTarget`
between cycles, by moving the batteries as the meter's MQTT readings arrive.

The computation is :func:`controllers.tracking.correct`; this module only decides *when*
it runs and *what* goes out, and keeps the record of it:

- :meth:`TrackingLoop.set_target` (the runtime, after ``apply``): the interval's target;
  None, or an interval already over, stops tracking (the batteries keep the cycle's
  setpoints).
- :meth:`TrackingLoop.on_reading` (the MQTT ingest thread): a park-meter reading inside the
  target's interval, neither older than the last one used nor far from the driver's clock,
  gives the wanted setpoints at once (cheap, pure) with ``battery_now_kw`` what each battery
  was last sent in this interval (its planned setpoint at first). The write itself is
  scheduled on the driver's event loop; while one is in flight only the newest wanted
  setpoints are kept and sent after it (coalescing).
- The writer (on the event loop) writes a battery only when its setpoint moves by more than
  :data:`controllers.tracking.DEADBAND_KW`, clamps it to the battery's room again, and
  skips a battery whose device is faulted (its share of the correction is then not taken
  by the others: the others keep exactly what :func:`correct` gave them, which is within
  their own rooms; the meter is simply held less well). The device's own limits are the
  write path's (:mod:`vpp.drivers.limits`, clipped and counted there).
- :meth:`TrackingLoop.supersede` (``apply``, before anything of the new cycle is sent) drops
  the interval's state and its pending setpoints and bumps an epoch;
  :meth:`TrackingLoop.quiesce` (first thing of the fan-out, on the event loop) waits for a
  tracked write already in flight to end (bounded by that write's own time-out). A tracked
  write checks the epoch on the event loop right before it starts, with no await in
  between. So once ``apply`` of interval k+1 has started, no correction of interval k
  starts, and the one that had started is over before the fan-out writes anything: the
  device ends on the new cycle's setpoint. (The in-flight write is waited for, not
  cancelled: a Modbus write cannot be taken back once on the wire, and a cancelled one
  closes the connection, after which a gateway could still carry it out late.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controllers import tracking
from controllers.tracking import TrackingTarget

log = logging.getLogger(__name__)

MAX_AHEAD_S = 30.0  # a reading further ahead of the driver's clock is not believed
MAX_AGE_S = 60.0  # a reading older than this (driver's clock) no longer describes the meter


@dataclass
class IntervalRecord:
    """What the loop did over one interval (``FieldDriver.tracking_status()``)."""

    start: datetime
    end: datetime
    corrections: int = 0  # battery setpoints written by the loop
    last_correction_kw: dict[str, float] = field(default_factory=dict)  # as accepted
    last_reading_ts: datetime | None = None
    last_reading_kw: float | None = None  # the park meter's net import (+)
    readings_used: int = 0
    readings_ignored: int = 0  # stale, out of order, or far in the future
    skipped_faulted: set[str] = field(default_factory=set)  # batteries left out
    write_failure: str | None = None  # the last failed write, if any

    def as_dict(self) -> dict:
        ts, kw = self.last_reading_ts, self.last_reading_kw
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "corrections": self.corrections,
            "last_correction_kw": {k: round(v, 3) for k, v in self.last_correction_kw.items()},
            "last_reading_ts": None if ts is None else ts.isoformat(),
            "last_reading_kw": None if kw is None else round(kw, 3),
            "readings_used": self.readings_used,
            "readings_ignored": self.readings_ignored,
            "skipped_faulted": sorted(self.skipped_faulted),
            "write_failure": self.write_failure,
        }


@dataclass
class _Interval:
    target: TrackingTarget
    epoch: int
    record: IntervalRecord
    now_kw: dict[str, float]  # what each battery was last sent in this interval


def fresh(t: TrackingTarget, ts: datetime, last_ts: datetime | None, now: datetime) -> bool:
    """A reading at ``ts`` may steer the batteries: inside the target's interval, newer
    than the last one used (``last_ts``), neither older than :data:`MAX_AGE_S` nor more
    than :data:`MAX_AHEAD_S` ahead of the driver's clock ``now``."""
    if not t.active(ts) or (last_ts is not None and ts <= last_ts):
        return False
    return now - timedelta(seconds=MAX_AGE_S) <= ts <= now + timedelta(seconds=MAX_AHEAD_S)


# write(name, p_kw, cycle_start) -> the kW the device accepted; raises on failure.
Write = Callable[[str, float, datetime], Awaitable[float]]


class TrackingLoop:
    """The loop's state and its writer (see the module docstring).

    Parameters
    ----------
    write : async callable
        ``write(battery, p_kw, cycle_start)``: the driver's guarded Modbus write with its
        bookkeeping; returns the accepted setpoint (kW, load convention), raises on failure.
    usable : callable
        ``usable(battery)``: its device is reachable and not faulted.
    clock : callable
        The driver's clock (tz-aware now).
    soon : callable
        Schedules a coroutine on the driver's event loop (from any thread).
    """

    def __init__(
        self,
        write: Write,
        usable: Callable[[str], bool],
        clock: Callable[[], datetime],
        soon: Callable[[Awaitable], None],
    ):
        self._write, self._usable, self._clock, self._soon = write, usable, clock, soon
        self._lock = threading.Lock()
        self._epoch = 0
        self._cur: _Interval | None = None
        self._previous: IntervalRecord | None = None
        self._pending: tuple[int, dict[str, float]] | None = None
        self._busy = False
        self._task: asyncio.Task | None = None

    # ----------------------------------------------------------------- any thread
    def set_target(self, at: datetime, target: TrackingTarget | None) -> None:
        """Track ``target`` from now on (None, or an interval over at ``at``: stop)."""
        with self._lock:
            self._retire()
            if target is None or target.end <= at or not target.batteries:
                return
            rec = IntervalRecord(target.start, target.end)
            now = {b.name: b.planned_kw for b in target.batteries}
            self._cur = _Interval(target, self._epoch, rec, now)

    def supersede(self) -> None:
        """A new cycle's setpoints are about to go out: drop the interval, bump the epoch."""
        with self._lock:
            self._epoch += 1
            self._retire()

    def _retire(self) -> None:
        if self._cur is not None:
            self._previous = self._cur.record
        self._cur, self._pending = None, None

    def on_reading(self, ts: datetime, p_kw: float | None) -> bool:
        """A park-meter reading (kW net import, + import); True when it was used."""
        if p_kw is None or not math.isfinite(p_kw):
            return False
        with self._lock:
            cur = self._cur
            if cur is None:
                return False
            t, rec = cur.target, cur.record
            if not fresh(t, ts, rec.last_reading_ts, self._clock()):
                rec.readings_ignored += 1
                return False
            rec.last_reading_ts, rec.last_reading_kw = ts, float(p_kw)
            rec.readings_used += 1
            wanted = tracking.correct(t, float(p_kw), dict(cur.now_kw))
            self._pending = (cur.epoch, wanted)
            if self._busy:
                return True  # the writer takes the newest after the one in flight
            self._busy = True
        self._start_writer()
        return True

    def _start_writer(self) -> None:
        try:
            self._soon(self._writer())
        except Exception:  # the event loop is gone (closing): nothing more is written
            with self._lock:
                self._busy, self._pending = False, None
            log.warning("tracking: the driver's event loop is not running: correction dropped")

    def status(self) -> dict:
        """JSON-ready: the interval tracked now (with its target) and the one before."""
        with self._lock:
            cur = self._cur
            return {
                "active": None
                if cur is None
                else {**cur.record.as_dict(), "target": cur.target.as_dict()},
                "previous": None if self._previous is None else self._previous.as_dict(),
                "write_in_flight": self._busy,
            }

    # ----------------------------------------------------------------- the event loop
    async def quiesce(self) -> None:
        """Wait for a tracked write in flight to end (after :meth:`supersede`); its own
        guard bounds the wait. Nothing further of the old interval is written after it."""
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.wait({task})

    async def _writer(self) -> None:
        self._task = asyncio.current_task()
        try:
            while True:
                with self._lock:
                    job, self._pending = self._pending, None
                    if job is None:
                        self._busy = False
                        return
                await self._send(*job)
        except BaseException:
            with self._lock:
                again = self._pending is not None and self._pending[0] == self._epoch
                self._busy = again
            if again:  # a reading of the new interval came in while this one unwound
                self._start_writer()
            raise

    def _next_write(self, epoch: int, name: str, p_kw: float) -> tuple[_Interval, float] | None:
        """The setpoint to write for ``name`` now, or None (superseded, deadband, faulted)."""
        with self._lock:
            cur = self._cur
            if cur is None or cur.epoch != epoch or self._epoch != epoch:
                return None
            if abs(p_kw - cur.now_kw.get(name, p_kw)) <= tracking.DEADBAND_KW:
                return None
            if not self._usable(name):
                cur.record.skipped_faulted.add(name)
                return None
            room = next(b for b in cur.target.batteries if b.name == name)
            return cur, min(max(p_kw, room.lo_kw), room.hi_kw)

    async def _send(self, epoch: int, wanted: dict[str, float]) -> None:
        for name, p_kw in wanted.items():
            nxt = self._next_write(epoch, name, p_kw)
            if nxt is None:
                continue
            cur, p = nxt
            # Checked and started with no await in between: apply(k+1) bumps the epoch
            # first, then its fan-out waits for this write (quiesce) before its own.
            try:
                sent_kw = await self._write(name, p, cur.target.start)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                with self._lock:
                    cur.record.write_failure = f"{name}: {exc}"
                log.warning("tracking: %s: correction to %.1f kW not delivered: %s", name, p, exc)
                continue
            with self._lock:  # written: recorded, even if the interval just ended
                first = cur.record.corrections == 0
                cur.now_kw[name] = sent_kw
                cur.record.corrections += 1
                cur.record.last_correction_kw[name] = sent_kw
                reading = cur.record.last_reading_kw
            if first:
                log.info(
                    "tracking: interval %s: first correction, %s to %.1f kW (meter %.1f kW)",
                    cur.target.start.isoformat(),
                    name,
                    sent_kw,
                    math.nan if reading is None else reading,
                )
