"""Load forecasts per building or feeder: calendar, temperature and lags into quantile boosting.

Model
-----
One row per (issue time, lead time). Features: lead time, time of day, day of week, the kind
of the target day (workday, weekend, Chinese public holiday, working weekend), day of year,
air temperature at the target when the history carries one, the last value and the last
hour's mean, the value one day and one week before the target (when known at issue time),
the same time on the last three days of the same kind (workday-like or rest-day-like) before
the issue day, and day-level means. Targets are divided by each series' scale (95th
percentile of its history), so one :class:`~forecasts.quantile_model.QuantileModel` serves
many series. Series with less than ``min_history_days`` of history fall back to a seasonal
naive forecast (mean of the last same-kind days) with an empirical band.

Usage (see :mod:`forecasts.types` for the contract)::

    fc = LoadForecaster().fit_many(histories)           # daily, one Series per meter
    out = fc.predict_many(horizon, recents)             # every interval, same order
    out[0].p10_kw, out[0].p50_kw, out[0].p90_kw         # arrays on ``horizon``

Pure computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from forecasts.calendar_features import Grid, lookup, recent_mean, same_kind_days
from forecasts.quantile_model import QuantileModel, sample_leads
from forecasts.types import QuantileForecast, Series, check_no_future
from vpp.park.model import Horizon, ParkCalendar

FEATURES = (
    "lead_h",
    "tod_h",
    "dow",
    "kind",
    "doy_sin",
    "doy_cos",
    "temp_c",
    "last",
    "last_hour_mean",
    "lag_1d",
    "lag_1w",
    "same_kind_1",
    "same_kind_mean3",
    "level_1d",
    "level_same_kind",
)
_KIND_COL = FEATURES.index("kind")
_DOY_COLS = [FEATURES.index("doy_sin"), FEATURES.index("doy_cos")]


def _day_sums(values: np.ndarray, spd: int, slot0: int) -> tuple[np.ndarray, np.ndarray]:
    """Per local day: sum of finite values and their count (day 0 = day of position 0)."""
    n_days = (len(values) + slot0) // spd + 1
    padded = np.full(n_days * spd, np.nan)
    padded[slot0 : slot0 + len(values)] = values
    days = padded.reshape(n_days, spd)
    return np.nansum(days, axis=1), np.sum(np.isfinite(days), axis=1)


def load_features(
    y: np.ndarray,
    temp_c: np.ndarray | None,
    grid: Grid,
    known_end: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    """Feature rows (see :data:`FEATURES`) for targets ``target`` given data before ``known_end``.

    Parameters
    ----------
    y : normalised load (scale-free), one value per grid position; NaN where missing.
    temp_c : air temperature (deg C) per position, may extend beyond ``y`` (a forecast); or None.
    grid : where position 0 sits in local time.
    known_end : per row, the number of leading positions of ``y`` the forecaster may read.
    target : per row, the position being forecast (``>= known_end``).
    """
    spd = grid.steps_per_day
    step_h = grid.step.total_seconds() / 3600.0
    t_day = grid.day_index(target)
    i_day = grid.day_index(np.maximum(known_end - 1, 0))
    slot = grid.slot(target)
    n_days = int(max(t_day.max(), i_day.max())) + 1
    kinds = grid.day_kinds(0, n_days)
    doy = grid.day_of_year(0, n_days)[t_day]
    dow = (grid.start.date().weekday() + t_day) % 7
    temp = np.full(len(target), np.nan)
    if temp_c is not None:
        ok = target < len(temp_c)
        temp[ok] = temp_c[target[ok]]
    same = same_kind_days(kinds, i_day, t_day, 3)
    same_vals = np.stack(
        [np.where(d >= 0, lookup(y, d * spd + slot - grid.slot0, known_end), np.nan) for d in same]
    )
    count = np.sum(np.isfinite(same_vals), axis=0)
    same_mean = np.where(count > 0, np.nansum(same_vals, axis=0) / np.maximum(count, 1), np.nan)
    sums, counts = _day_sums(y, spd, grid.slot0)
    day_mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    level_same = np.where(same[0] >= 0, day_mean[np.clip(same[0], 0, len(day_mean) - 1)], np.nan)
    cols = [
        (target - known_end) * step_h,
        slot * step_h,
        dow,
        kinds[t_day],
        np.sin(2 * np.pi * doy / 365.25),
        np.cos(2 * np.pi * doy / 365.25),
        temp,
        lookup(y, known_end - 1, known_end),
        recent_mean(y, known_end, max(1, round(1.0 / step_h))),
        lookup(y, target - spd, known_end),
        lookup(y, target - 7 * spd, known_end),
        same_vals[0],
        same_mean,
        recent_mean(y, known_end, spd),
        level_same,
    ]
    return np.column_stack(cols).astype(float)


def seasonal_naive_kw(y: np.ndarray, grid: Grid, known_end: int, target: np.ndarray) -> np.ndarray:
    """Mean of the last three same-kind days at the target's time of day (the fallback P50);
    falls back to the value one day earlier, then to the last known value."""
    ke = np.full(len(target), known_end)
    x = load_features(y, None, grid, ke, target)
    p50 = x[:, FEATURES.index("same_kind_mean3")]
    for alt in ("lag_1d", "last"):
        p50 = np.where(np.isfinite(p50), p50, x[:, FEATURES.index(alt)])
    return np.nan_to_num(p50)


def _scale_of(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 1.0
    s = float(np.percentile(np.abs(finite), 95))
    return s if s > 1e-9 else 1.0


@dataclass
class LoadForecaster:
    """Quantile load forecaster for one or many series (see module docstring).

    Parameters
    ----------
    max_lead_steps : longest lead time trained for (steps); predictions beyond reuse it.
    max_rows : training rows over all series (subsampled (issue, lead) pairs).
    min_history_days : below this, a series uses the seasonal-naive fallback.
    fit_threads : OpenMP threads for fitting (None: all cores). One by default: the refit
        runs beside the runtime, and on a busy machine one thread was faster than two.
    seed : seed of the row sampling and the boosting.
    calendar : the park's own holidays and make-up working days (None: the package's).
    season_min_days : the day of the year is a feature only when the longest history fitted
        spans at least this many days (0: always, the default). Fitted on four weeks it can
        name single days: on May the model took 2 June for the last days of May and forecast
        an office's 07:00 at a third of its load. ``bench/short_fit.py`` measures both ways
        on the closed loop's 28-day fits (issue #13); the default stays until one wins.
    """

    max_lead_steps: int = 192
    max_rows: int = 240_000
    rows_per_series: int = 40_000
    min_history_days: int = 14
    seed: int = 0
    fit_threads: int | None = 1
    calendar: ParkCalendar | None = None
    season_min_days: int = 0
    seasonal: bool = True  # whether the fitted model reads the day of the year
    model: QuantileModel | None = None
    scales: list[float] = field(default_factory=list)
    fallback_band: list[tuple[float, float]] = field(default_factory=list)
    uses_model: list[bool] = field(default_factory=list)

    def fit(self, history: Series) -> LoadForecaster:
        """Fit on one series (the forecaster then predicts that series)."""
        return self.fit_many([history])

    def fit_many(self, histories: Sequence[Series]) -> LoadForecaster:
        """Fit one shared model on many series; ``predict_many`` takes them in the same order."""
        if not histories:
            raise ValueError("LoadForecaster.fit_many: no series given")
        rng = np.random.default_rng(self.seed)
        per_series = max(1000, min(self.rows_per_series, self.max_rows // len(histories)))
        self.scales, self.fallback_band, self.uses_model = [], [], []
        span_days = max(h.horizon.n * h.horizon.step.total_seconds() / 86400.0 for h in histories)
        self.seasonal = span_days >= self.season_min_days
        blocks: list[tuple[np.ndarray, ...]] = []
        for h in histories:
            scale = _scale_of(h.values_kw)
            self.scales.append(scale)
            y = h.values_kw / scale
            grid = Grid(h.horizon.start, h.horizon.step, self.calendar)
            enough = h.horizon.n >= self.min_history_days * grid.steps_per_day
            self.uses_model.append(enough)
            self.fallback_band.append(_naive_band(y, grid))
            if enough:
                blocks.append(self._rows(y, h.temp_c, grid, per_series, rng))
        self.model = None
        if blocks:
            X, target, lead_h, order = (np.concatenate(b) for b in zip(*blocks, strict=True))
            self.model = QuantileModel(
                seed=self.seed, fit_threads=self.fit_threads, categorical=(_KIND_COL,)
            )
            self.model.fit(X, target, lead_h, order)
        return self

    def _rows(self, y, temp_c, grid: Grid, n_rows: int, rng) -> tuple[np.ndarray, ...]:
        spd = grid.steps_per_day
        first = 8 * spd
        if len(y) - first < spd:
            first = spd
        known_end = rng.integers(first, len(y), size=n_rows)
        target = known_end + sample_leads(rng, n_rows, self.max_lead_steps)
        keep = target < len(y)
        known_end, target = known_end[keep], target[keep]
        keep = np.isfinite(y[target])
        known_end, target = known_end[keep], target[keep]
        X = self._features(y, temp_c, grid, known_end, target)
        return X, y[target], X[:, 0], known_end / len(y)

    def _features(self, y, temp_c, grid: Grid, known_end, target) -> np.ndarray:
        X = load_features(y, temp_c, grid, known_end, target)
        if not self.seasonal:
            X[:, _DOY_COLS] = 0.0
        return X

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        """Forecast the single fitted series (``fit``) over ``horizon``."""
        return self.predict_many(horizon, [recent])[0]

    def predict_many(self, horizon: Horizon, recents: Sequence[Series]) -> list[QuantileForecast]:
        """Forecast every series fitted by ``fit_many`` (same order) over ``horizon``.

        Each ``recents[i]`` holds the latest measurements of series ``i`` (at least the last
        eight days for all features) and must end at or before ``horizon.start``.
        ``recents[i].temp_c`` may extend past its values by ``horizon.n`` steps: a temperature
        forecast.
        """
        if len(recents) != len(self.scales):
            raise ValueError(f"predict_many: {len(recents)} series, fitted {len(self.scales)}")
        rows, owners, leads = [], [], []
        naive: dict[int, QuantileForecast] = {}
        for i, rec in enumerate(recents):
            check_no_future(rec, horizon)
            y = rec.values_kw / self.scales[i]
            grid = Grid(rec.horizon.start, rec.horizon.step, self.calendar)
            known_end = rec.horizon.n
            target = grid.position_of(horizon.start) + np.arange(horizon.n)
            if not self.uses_model[i] or self.model is None:
                naive[i] = self._naive(horizon, y, grid, known_end, target, i)
                continue
            temp = rec.temp_c
            ke = np.full(horizon.n, known_end)
            X = self._features(y, temp, grid, ke, target)
            rows.append(X)
            owners.append(i)
            leads.append(X[:, 0])
        out: dict[int, QuantileForecast] = dict(naive)
        if rows:
            q = self.model.predict(np.vstack(rows), np.concatenate(leads))
            for n, i in enumerate(owners):
                part = q[:, n * horizon.n : (n + 1) * horizon.n] * self.scales[i]
                out[i] = QuantileForecast(horizon, part[0], part[1], part[2])
        return [out[i] for i in range(len(recents))]

    def _naive(self, horizon, y, grid, known_end, target, i) -> QuantileForecast:
        p50 = seasonal_naive_kw(y, grid, known_end, target)
        lo, hi = self.fallback_band[i]
        s = self.scales[i]
        return QuantileForecast(horizon, (p50 + lo) * s, p50 * s, (p50 + hi) * s)


def _naive_band(y: np.ndarray, grid: Grid) -> tuple[float, float]:
    """P10 and P90 of the one-day-ahead error of the previous day (normalised units)."""
    spd = grid.steps_per_day
    err = y[spd:] - y[:-spd] if len(y) > spd else np.array([])
    err = err[np.isfinite(err)]
    if err.size < 20:
        return (-0.2, 0.2)
    lo, hi = np.percentile(err, [10, 90])
    return (min(float(lo), 0.0), max(float(hi), 0.0))
