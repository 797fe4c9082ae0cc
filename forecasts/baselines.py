"""Reference forecasters the models must beat: persistence, seasonal naive, smart persistence.

Each follows the :class:`forecasts.types.Forecaster` protocol and returns a point forecast as a
degenerate quantile forecast (P10 = P50 = P90). Pure computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forecasts.calendar_features import Grid
from forecasts.pv import _ClearSkyCache, _energy_ratio, _index
from forecasts.types import QuantileForecast, Series, check_no_future
from vpp.park.model import Horizon, Location, PvArray


def _targets(horizon: Horizon, recent: Series) -> np.ndarray:
    grid = Grid(recent.horizon.start, recent.horizon.step)
    return grid.position_of(horizon.start) + np.arange(horizon.n)


def _point(horizon: Horizon, p_kw: np.ndarray) -> QuantileForecast:
    p = np.nan_to_num(np.asarray(p_kw, dtype=float))
    return QuantileForecast(horizon, p, p, p)


@dataclass
class Persistence:
    """The last measured value, for every lead time."""

    def fit(self, history: Series) -> Persistence:
        return self

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        check_no_future(recent, horizon)
        finite = recent.values_kw[np.isfinite(recent.values_kw)]
        last = finite[-1] if finite.size else 0.0
        return _point(horizon, np.full(horizon.n, last))


@dataclass
class SeasonalNaive:
    """The value one period earlier (``period_steps``: 96 = a day, 672 = a week at 15 min),
    stepping back whole periods until the value is known at issue time."""

    period_steps: int = 672

    def fit(self, history: Series) -> SeasonalNaive:
        return self

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        check_no_future(recent, horizon)
        target = _targets(horizon, recent)
        known = recent.horizon.n
        periods = (target - known) // self.period_steps + 1
        pos = target - periods * self.period_steps
        ok = (pos >= 0) & (pos < known)
        p = np.zeros(horizon.n)
        p[ok] = recent.values_kw[pos[ok]]
        return _point(horizon, p)


@dataclass
class SmartPersistence:
    """PV: the last hour's clear-sky index times the clear-sky AC power at each lead time.

    When the last hour is too dark to tell (night, dawn), the index of the last day is used.
    """

    pv: PvArray
    location: Location
    _cache: _ClearSkyCache | None = field(default=None, repr=False)

    def fit(self, history: Series) -> SmartPersistence:
        return self

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        check_no_future(recent, horizon)
        if self._cache is None:
            self._cache = _ClearSkyCache(self.pv, self.location)
        grid = Grid(recent.horizon.start, recent.horizon.step)
        target = _targets(horizon, recent)
        cs = self._cache.get(recent.horizon.start, recent.horizon.step, int(target[-1]) + 1)
        known = np.array([recent.horizon.n])
        y = recent.values_kw
        limit = self.pv.inverter_kw
        per_hour = max(1, round(1.0 / horizon.dt_h))
        k = _energy_ratio(y, cs[: len(y)], known, per_hour, limit)[0]
        if not np.isfinite(k):
            k = _energy_ratio(y, cs[: len(y)], known, grid.steps_per_day, limit)[0]
        if not np.isfinite(k):
            k_all = _index(y, cs[: len(y)], limit)
            k = float(np.nanmean(k_all)) if np.isfinite(k_all).any() else 0.0
        return _point(horizon, min(k, 1.0) * cs[target])
