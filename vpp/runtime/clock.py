"""The runtime's clocks: wall-clock time or a simulated clock running faster, and a manual
clock that moves only when told (tests, ``vpp run --once``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time, or a simulated clock running ``speed`` times faster from ``start``."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0):
        self.speed = speed
        self._t0_real = time.monotonic()
        self._t0 = start or datetime.now(UTC)
        if self._t0.tzinfo is None:
            raise ValueError("Clock start must be timezone-aware")

    def now(self) -> datetime:
        return self._t0 + timedelta(seconds=(time.monotonic() - self._t0_real) * self.speed)

    def real_seconds(self, sim: timedelta) -> float:
        """Wall-clock seconds that ``sim`` of simulated time takes."""
        return sim.total_seconds() / self.speed


class ManualClock:
    """A clock that moves only when told (tests, ``--once``)."""

    def __init__(self, start: datetime, speed: float = 1.0):
        self._now, self.speed = start, speed

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at

    def real_seconds(self, sim: timedelta) -> float:
        return sim.total_seconds() / self.speed
