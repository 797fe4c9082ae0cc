"""Adapters between the service and a plant that advances in whole intervals.

A stepped simulator (:class:`vpp.sim.simulated_park.SimulatedPark`: one ``apply`` = one
interval of physics) and a service that may publish several times in an interval (a DR
event or a telemetry surprise re-solves at once) meet in :class:`SteppedPlant`: the last
setpoints published in an interval are the ones its physics uses, and the step runs when a
later interval's state is read. Intervals without a cycle (a misfire) hold the last
setpoints, as a real device would. The local loop on the park meter (:meth:`track`,
:mod:`controllers.tracking`) runs in the interval its target is for, on the interval's
realised net import (the simulated park's model of it); an interval without a cycle holds
the setpoints and does not track.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from controllers.tracking import TrackingTarget
from vpp.park.model import PARK_METER
from vpp.park.state import PlantState
from vpp.plan.cycle import PlantDriver


def floor_to(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + math.floor((t - epoch) / step + 1e-9) * step


class SteppedPlant:
    """A :class:`vpp.plan.cycle.PlantDriver` over a stepped simulator; also offers the realised
    values of every completed interval as telemetry (``telemetry(at)``)."""

    def __init__(self, inner: PlantDriver, step: timedelta):
        self.inner, self.step = inner, step
        self._pending: tuple[datetime, dict[str, float]] | None = None
        self._tracking: TrackingTarget | None = None
        self._unsent: list[dict[str, Any]] = []
        self._last_stale: frozenset[str] = frozenset()

    def read_state(self, at: datetime) -> PlantState:
        self.flush(at)
        state = self.inner.read_state(at)
        self._last_stale = frozenset(state.stale_assets)
        return state

    def apply(self, at: datetime, setpoints_kw: dict[str, float]) -> None:
        k = floor_to(at, self.step)
        self.flush(k)
        self._pending = (k, dict(setpoints_kw))
        self._tracking = None  # a new plan: the cycle says what to track (track)

    def track(self, at: datetime, target: TrackingTarget | None) -> None:
        """Hold the park meter at ``target`` over its interval (None: stop)."""
        self._tracking = target

    def flush(self, at: datetime) -> None:
        """Run the physics of every interval that ended by ``at``."""
        if self._pending is None:
            return
        k, sp = self._pending
        now = floor_to(at, self.step)
        while k < now:
            t = self._tracking if self._tracking is not None and self._tracking.active(k) else None
            if t is not None:
                self.inner.apply(k, sp, t)
            else:
                self.inner.apply(k, sp)
            self._collect(k)
            k += self.step
        self._pending = (k, sp)

    def _collect(self, k: datetime) -> None:
        records = getattr(self.inner, "records", None)
        if records is None:
            return
        net = records()["net_kw"]
        self._unsent.append({"asset": PARK_METER, "ts": k, "p_kw": float(net[-1])})
        for name in self.inner.site.assets.names():
            if name in self._last_stale:
                continue  # a late or missing reading, as the simulated park reports it
            p = self.inner.asset_power(name)
            e = getattr(self.inner, "battery_e_kwh", {}).get(name)
            self._unsent.append({"asset": name, "ts": k, "p_kw": float(p[-1]), "e_kwh": e})

    def telemetry(self, at: datetime) -> list[dict[str, Any]]:
        """Readings of the intervals completed since the last call."""
        out, self._unsent = self._unsent, []
        return out

    def realised(self) -> tuple[list[datetime], dict[str, Any]]:
        """Times and realised records of the inner simulator (for tests and reports)."""
        return self.inner.times(), self.inner.records()
