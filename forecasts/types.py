"""The small types every forecaster speaks: measured history in, quantiles on a horizon out.

The interface the runtime (:mod:`vpp.plan.cycle`) and the simulation call
---------------------------------------------------------------------
A forecaster has two separate steps so that the runtime can refit daily and predict every
interval:

``fit(history)``
    learn from a :class:`Series` of measured history (kW, interval averages, regular grid).
``predict(horizon, recent) -> QuantileForecast``
    forecast the intervals of ``horizon`` from ``recent``, the latest measurements, which
    must end at or before ``horizon.start`` (a forecaster never sees the future; the check
    is :func:`check_no_future`).

Both forecasters (:class:`forecasts.pv.PvForecaster`, :class:`forecasts.load.LoadForecaster`)
also offer ``fit_many`` / ``predict_many`` that share one model across many series (targets
normalised by each series' scale), which is how a park with 50 meters stays under 0.2 s a
prediction. Powers are positive kW: PV is the array's AC generation, a load its consumption;
the dispatch applies the load-convention sign of :mod:`vpp.park.model`.

Pure computation: no files, no network, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from vpp.park.model import Horizon

QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Series:
    """Measured values on a regular grid: ``values_kw[k]`` is the average over interval ``k``
    of ``horizon`` (so ``horizon.n == len(values_kw)``). Missing values are NaN.

    ``temp_c`` is an optional air temperature (deg C) on the same grid; it may run past the
    values (the measured temperature, then a forecast for the intervals to predict).
    """

    horizon: Horizon
    values_kw: np.ndarray
    temp_c: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values_kw, dtype=float)
        if values.ndim != 1 or values.shape[0] != self.horizon.n:
            raise ValueError(
                f"Series: values_kw has shape {values.shape}, horizon has {self.horizon.n} steps"
            )
        object.__setattr__(self, "values_kw", values)
        if self.temp_c is not None:
            temp = np.asarray(self.temp_c, dtype=float)
            if temp.ndim != 1 or temp.shape[0] < values.shape[0]:
                raise ValueError(
                    f"Series: temp_c shape {temp.shape} is shorter than values {values.shape}"
                )
            object.__setattr__(self, "temp_c", temp)

    @property
    def end(self) -> datetime:
        """End of the last interval: the earliest issue time this history allows."""
        return self.horizon.end

    def tail(self, n: int) -> Series:
        """The last ``n`` intervals (all of them when shorter)."""
        n = min(n, self.horizon.n)
        start = self.horizon.at(self.horizon.n - n)
        first = self.horizon.n - n
        temp = None if self.temp_c is None else self.temp_c[first:]
        return Series(Horizon(start, self.horizon.step, n), self.values_kw[-n:], temp)


@dataclass(frozen=True)
class QuantileForecast:
    """P10, P50 and P90 (kW) for every interval of ``horizon``; ordered p10 <= p50 <= p90."""

    horizon: Horizon
    p10_kw: np.ndarray
    p50_kw: np.ndarray
    p90_kw: np.ndarray

    def __post_init__(self) -> None:
        for name in ("p10_kw", "p50_kw", "p90_kw"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != (self.horizon.n,):
                raise ValueError(
                    f"QuantileForecast.{name}: shape {arr.shape} != ({self.horizon.n},)"
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"QuantileForecast.{name}: non-finite values")
            object.__setattr__(self, name, arr)
        if np.any(self.p10_kw > self.p50_kw + 1e-9) or np.any(self.p50_kw > self.p90_kw + 1e-9):
            raise ValueError("QuantileForecast: quantiles must be ordered p10 <= p50 <= p90")

    @classmethod
    def from_unsorted(
        cls, horizon: Horizon, q10: np.ndarray, q50: np.ndarray, q90: np.ndarray
    ) -> QuantileForecast:
        """Build from three quantile estimates that may cross (sorted per interval)."""
        stacked = np.sort(np.vstack([q10, q50, q90]), axis=0)
        return cls(horizon, stacked[0], stacked[1], stacked[2])

    def band_kw(self, risk_frac: float) -> tuple[np.ndarray, np.ndarray]:
        """Low and high planning values: P50 moved towards P10/P90 by ``risk_frac`` (0-1).

        ``risk_frac`` 0 plans on P50, 1 on the full P10-P90 band (see
        :attr:`vpp.park.model.DispatchSettings.risk_frac`).
        """
        r = float(np.clip(risk_frac, 0.0, 1.0))
        low = self.p50_kw - r * (self.p50_kw - self.p10_kw)
        high = self.p50_kw + r * (self.p90_kw - self.p50_kw)
        return low, high


class Forecaster(Protocol):
    """What the backtest harness, the runtime and the simulation need from a forecaster."""

    def fit(self, history: Series) -> Forecaster: ...

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast: ...


def check_no_future(recent: Series, horizon: Horizon) -> None:
    """Raise ``ValueError`` when ``recent`` reaches past ``horizon.start`` (a leak)."""
    if recent.end > horizon.start:
        raise ValueError(
            f"history ends at {recent.end.isoformat()}, after the issue time "
            f"{horizon.start.isoformat()}: a forecast may only use data before it is issued"
        )
    if recent.horizon.step != horizon.step:
        raise ValueError(f"history step {recent.horizon.step} != horizon step {horizon.step}")
