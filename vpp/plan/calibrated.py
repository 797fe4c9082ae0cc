"""A forecaster whose P10/P90 come from its own measured error (:mod:`forecasts.error_bands`).

:class:`CalibratedForecaster` wraps any :class:`vpp.plan.cycle.Forecaster`. Every cycle it
first reads what was measured since the last cycle (``measured(start, n)``: the interval means
of every forecast asset on ``n`` intervals from ``start``, NaN where nothing was read; the
closed loop reads its :class:`~vpp.plan.history_forecasters.MeasuredHistory`, the service its
stored telemetry), matches it against the forecasts it issued, then asks the inner forecaster
and returns its P50 with the calibrated band. The margins of every limit (``risk_frac``) are
then taken from what the forecaster has really missed by at the buses concerned, bias
included, and the service's profile forecaster, which states no band, gets one as soon as a
day of telemetry is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from forecasts.error_bands import ErrorBands
from vpp.park.model import Horizon, Site
from vpp.park.state import Forecasts, PlantState
from vpp.plan.history_forecasters import TelemetryHistory, asset_names

MAX_CATCH_UP = timedelta(days=2)  # after a gap, at most this much measured past is matched

Measured = Callable[[datetime, int], dict[str, np.ndarray]]


class CalibratedForecaster:
    """``inner`` with the band of its measured error on the assets ``pv_names`` and
    ``load_names`` (intervals of ``step``); see the module docstring."""

    def __init__(
        self,
        inner,
        measured: Measured,
        step: timedelta,
        pv_names: list[str],
        load_names: list[str],
        window_days: float = 7.0,
    ):
        self.inner, self._measured, self.step = inner, measured, step
        self.names = [*pv_names, *load_names]
        self.bands = ErrorBands(
            step.total_seconds(), window_days=window_days, nonneg_zero=frozenset(pv_names)
        )
        self._observed_to: datetime | None = None  # measurements matched up to here

    @classmethod
    def for_site(cls, site: Site, inner, measured: Measured) -> CalibratedForecaster:
        pv, loads = asset_names(site)
        step = timedelta(minutes=site.dispatch.step_minutes)
        return cls(inner, measured, step, pv, loads, site.dispatch.margin_window_days)

    @property
    def source(self) -> str:
        return f"{getattr(self.inner, 'source', 'forecast')}+calibrated"

    def _floor(self, t: datetime) -> datetime:
        s = self.step.total_seconds()
        return datetime.fromtimestamp((t.timestamp() // s) * s, t.tzinfo)

    def _catch_up(self, now: datetime) -> None:
        start = self._observed_to or now - MAX_CATCH_UP
        start = max(start, now - MAX_CATCH_UP)
        n = round((now - start) / self.step)
        if n <= 0:
            return
        values = self._measured(start, n)
        t0 = start.timestamp()
        step_s = self.step.total_seconds()
        for name in self.names:
            v = values.get(name)
            if v is None:
                continue
            for i, x in enumerate(np.asarray(v, dtype=float).tolist()):
                if x == x:  # not NaN
                    self.bands.observe(name, t0 + i * step_s, x)
        self._observed_to = now

    def __getattr__(self, name: str):
        # Everything else is the inner forecaster's (e.g. TelemetryForecaster.measured).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _hindcast(self, site: Site, now: datetime) -> None:
        """A forecaster that reads no measurement (``replayable``: the configured profiles)
        says the same for an interval whenever it is asked: what it would have said over
        the stored past is asked once, and each measured interval's error counts for every
        lead time, so that the band is calibrated from the first cycle on."""
        start = now - MAX_CATCH_UP
        n = round(MAX_CATCH_UP / self.step)
        past = self.inner.forecast(site, Horizon(start, self.step, n), PlantState(at=start))
        values = self._measured(start, n)
        t0, step_s = start.timestamp(), self.step.total_seconds()
        for name in self.names:
            v, p = values.get(name), past.p50.get(name)
            if v is None or p is None:
                continue
            if len(p):
                self.bands.note_scale(name, float(np.max(np.abs(p))))
            for i, (x, f) in enumerate(zip(np.asarray(v, float).tolist(), p.tolist(), strict=True)):
                if x == x:
                    self.bands.observe_replayed(name, t0 + i * step_s, f, x)
        self._observed_to = now

    def forecast(self, site: Site, horizon: Horizon, state: PlantState) -> Forecasts:
        now = self._floor(min(horizon.start, state.at))
        if self._observed_to is None and getattr(self.inner, "replayable", False):
            self._hindcast(site, now)
        self._catch_up(now)
        fc = self.inner.forecast(site, horizon, state)
        self.bands.issue(horizon.start.timestamp(), fc.p50)
        return self.bands.calibrate(fc)


def history_measured(history) -> Measured:
    """``measured`` from a :class:`~vpp.plan.history_forecasters.MeasuredHistory`."""

    def measured(start: datetime, n: int) -> dict[str, np.ndarray]:
        history.now = start + n * history.step  # the decision time: nothing later is read
        return {name: history.window(name, start, n) for name in history.names}

    return measured


def telemetry_measured(site: Site, read_new) -> Measured:
    """``measured`` from stored telemetry: ``read_new(since)`` gives the readings stored since
    its last call (asset names, Unix seconds, kW), as for
    :class:`~vpp.plan.history_forecasters.TelemetryForecaster`."""
    pv, loads = asset_names(site)
    step = timedelta(minutes=site.dispatch.step_minutes)
    hist = TelemetryHistory(pv, loads, step)

    def measured(start: datetime, n: int) -> dict[str, np.ndarray]:
        hist.add(*read_new(start))
        hist.drop_before(start - MAX_CATCH_UP)
        return {name: hist.means(name, start, n) for name in hist.names}

    return measured
