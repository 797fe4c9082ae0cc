"""Forecasts in closed loop: the measured history the park has reported, guarded against the
future, and the forecasters that read it (a :class:`vpp.plan.cycle.Forecaster` each).

:class:`MeasuredHistory` keeps, per asset, the values measured up to now (kW interval
averages: PV available, loads and load baselines). Its clock is set to the decision time
before each forecast; asking it for an interval that ends after that time raises
:class:`LeakError`. That makes leakage a failure, not a silent optimism: a forecaster that
peeks at the future makes the simulation (and its test) fail.

Forecasters, by ``kind`` in :func:`make_forecaster`:

``perfect``
    The park's truth on the horizon (an oracle; it does not read the history).
``naive``
    Seasonal naive for loads (the same interval on the last day of the same kind, workday or
    rest day, within a week), corrected by the last interval's error decaying over the next
    hours; P10/P90 from last week's week-lag errors. PV: the clear-sky AC power times the
    clear-sky index of the last full day; P10/P90 from the index's spread over a week.
``model``
    :class:`forecasts.load.LoadForecaster` and :class:`forecasts.pv.PvForecaster`, fitted on
    the history before the start and predicting P10/P50/P90 from the latest eight days.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from forecasts.types import Series
from vpp.park.calendar import is_workday
from vpp.park.model import Horizon, MarginBands, ParkCalendar, PvArray, Site
from vpp.park.pv_physics import clear_sky_ac_kw
from vpp.park.state import Forecasts, PlantState

FORECASTS = ("perfect", "naive", "model")
PERSISTENCE_RHO = 0.9  # per interval: the last error halves in about 1.6 hours
Z90 = 1.2816  # standard normal 90th percentile


class LeakError(RuntimeError):
    """A forecaster asked for data measured at or after the decision time."""


def asset_names(site: Site) -> tuple[list[str], list[str]]:
    """(PV array names, load names) that need a forecast, PEDF members included."""
    a = site.assets
    pv = [p.name for p in a.pv_arrays] + [p.pv.name for p in a.pedf_buildings]
    loads = [b.name for b in a.base_loads] + [c.name for c in a.curtailable_loads]
    loads += [p.base_load.name for p in a.pedf_buildings]
    loads += [p.flexible_load.name for p in a.pedf_buildings if p.flexible_load]
    return pv, loads


def pv_specs(site: Site) -> dict[str, PvArray]:
    a = site.assets
    return {p.name: p for p in [*a.pv_arrays, *(x.pv for x in a.pedf_buildings)]}


class MeasuredHistory:
    """Measured per-asset series on a regular grid from ``start``, readable only before ``now``.

    Parameters
    ----------
    start : first interval (tz-aware).
    step : interval length.
    names : the assets measured.
    """

    def __init__(self, start: datetime, step: timedelta, names: list[str]):
        self.start, self.step = start, step
        self.names = list(names)
        self._data: dict[str, list[float]] = {n: [] for n in names}
        self.now: datetime | None = None  # decision time; None = unguarded

    @property
    def end(self) -> datetime:
        """End of the last measured interval."""
        n = len(next(iter(self._data.values()))) if self._data else 0
        return self.start + n * self.step

    def extend(self, values: dict[str, np.ndarray]) -> None:
        """Append measured intervals (same length for every asset)."""
        for n in self.names:
            self._data[n].extend(np.asarray(values[n], dtype=float).tolist())

    def append(self, at: datetime, values: dict[str, float]) -> None:
        """Append one measured interval starting at ``at`` (must follow the last one)."""
        if at != self.end:
            raise ValueError(f"history: interval {at} does not follow {self.end}")
        for n in self.names:
            self._data[n].append(float(values[n]))

    def _index(self, t: datetime) -> int:
        return round((t - self.start) / self.step)

    def window(self, name: str, start: datetime, n: int) -> np.ndarray:
        """Values of ``name`` on ``n`` intervals from ``start``; NaN where not measured.

        Raises :class:`LeakError` when the window ends after the decision time ``now``.
        """
        end = start + n * self.step
        if self.now is not None and end > self.now:
            raise LeakError(
                f"forecaster asked for {name} up to {end.isoformat()}, after the decision "
                f"time {self.now.isoformat()}"
            )
        data = self._data[name]
        i0 = self._index(start)
        out = np.full(n, np.nan)
        lo, hi = max(i0, 0), min(i0 + n, len(data))
        if hi > lo:
            out[lo - i0 : hi - i0] = data[lo:hi]
        return out

    def series(self, name: str, days: int) -> Series:
        """The last ``days`` days before ``now`` (or the end) as a :class:`Series`."""
        end = self.now or self.end
        n = round(timedelta(days=days) / self.step)
        start = end - n * self.step
        return Series(Horizon(start, self.step, n), self.window(name, start, n))


class HistoryModel(Protocol):
    """A forecaster that reads only :class:`MeasuredHistory`."""

    source: str

    def predict(self, site: Site, horizon: Horizon, history: MeasuredHistory) -> Forecasts: ...


class HistoryForecaster:
    """The :class:`vpp.plan.cycle.Forecaster` of the closed loop: sets the history's clock to the
    decision time, then asks the model."""

    def __init__(self, model: HistoryModel, history: MeasuredHistory):
        self.model, self.history = model, history

    def forecast(self, site: Site, horizon: Horizon, state: PlantState) -> Forecasts:
        self.history.now = min(horizon.start, state.at)
        return self.model.predict(site, horizon, self.history)


class PerfectForecaster:
    """The truth of a :class:`~vpp.sim.simulated_park.SimulatedPark` on the horizon."""

    source = "perfect"

    def __init__(self, park):
        self.park = park

    def forecast(self, site: Site, horizon: Horizon, state: PlantState) -> Forecasts:
        return Forecasts(self.park.truth(horizon), source="perfect")


class _ClearSky:
    """Clear-sky AC power of each array, cached per local day."""

    def __init__(self, site: Site, step: timedelta):
        self.site, self.step = site, step
        self.tz = ZoneInfo(site.location.tz)
        self.spd = round(timedelta(days=1) / step)
        self._cache: dict[tuple[str, date], np.ndarray] = {}

    def _fill(self, pv: PvArray, days: list[date]) -> None:
        """Compute the missing ``days`` in one pvlib pass."""
        missing = sorted(d for d in set(days) if (pv.name, d) not in self._cache)
        if not missing:
            return
        if len(self._cache) > 64 * 8:
            self._cache.clear()
        first, n_days = missing[0], (missing[-1] - missing[0]).days + 1
        start = datetime.combine(first, time(0), tzinfo=self.tz)
        times = pd.date_range(start + self.step / 2, periods=self.spd * n_days, freq=self.step)
        arr = clear_sky_ac_kw(times, self.site.location, pv)
        for i in range(n_days):
            self._cache[(pv.name, first + timedelta(days=i))] = arr[
                i * self.spd : (i + 1) * self.spd
            ]

    def on(self, pv: PvArray, start: datetime, n: int) -> np.ndarray:
        local = start.astimezone(self.tz)
        d0 = local.date()
        k0 = round((local - datetime.combine(d0, time(0), tzinfo=self.tz)) / self.step)
        days = [d0 + timedelta(days=i) for i in range((k0 + n + self.spd - 1) // self.spd)]
        self._fill(pv, days)
        arr = np.concatenate([self._cache[(pv.name, d)] for d in days])
        return arr[k0 : k0 + n]


class NaiveModel:
    """Seasonal naive loads and clear-sky-index persistence for PV (see module docstring)."""

    source = "naive"

    def __init__(self, site: Site):
        self.step = timedelta(minutes=site.dispatch.step_minutes)
        self.clear = _ClearSky(site, self.step)
        self.tz = ZoneInfo(site.location.tz)
        self.calendar = site.calendar
        self._bands: dict[tuple[str, date], tuple[float, float]] = {}

    def predict(self, site: Site, horizon: Horizon, history: MeasuredHistory) -> Forecasts:
        pv_names, loads = asset_names(site)
        specs = pv_specs(site)
        now = history.now or horizon.start
        # One interval before the horizon: the seasonal value of the last measured interval,
        # whose error is carried into the first intervals (smart persistence, decaying).
        ext = Horizon(horizon.start - self.step, self.step, horizon.n + 1)
        lags = self._lags(ext, now)
        decay = PERSISTENCE_RHO ** np.arange(1, horizon.n + 1)
        p10: dict[str, np.ndarray] = {}
        p50: dict[str, np.ndarray] = {}
        p90: dict[str, np.ndarray] = {}
        for name in loads:
            season = self._seasonal(history, name, ext, lags)
            last = history.window(name, now - self.step, 1)[0]
            err = last - season[0] if np.isfinite(last) else 0.0
            p = np.maximum(season[1:] + err * decay, 0.0)
            lo, hi = self._band(history, name, now)
            p50[name], p10[name], p90[name] = p, np.maximum(p + lo, 0.0), p + hi
        day = timedelta(days=1)
        n_day = round(day / self.step)
        for name in pv_names:
            spec = specs[name]
            past = history.window(name, now - day * 7, n_day * 7).reshape(7, n_day)
            cs_past = self.clear.on(spec, now - day * 7, n_day * 7).reshape(7, n_day)
            k_days = np.array(
                [
                    np.nansum(past[i]) / max(float(np.sum(cs_past[i][np.isfinite(past[i])])), 1e-9)
                    for i in range(7)
                ]
            )
            k = float(np.clip(k_days[-1], 0.0, 1.0))
            sd = float(np.std(k_days))
            cs = self.clear.on(spec, horizon.start, horizon.n)
            p50[name] = k * cs
            p10[name] = np.clip(k - Z90 * sd, 0.0, 1.0) * cs
            p90[name] = np.clip(k + Z90 * sd, k, 1.0) * cs
        return Forecasts(p50, p10, p90, source=self.source)

    def _band(self, history: MeasuredHistory, name: str, now: datetime) -> tuple[float, float]:
        """P10 and P90 (kW) of the week-lag error over the last week, cached per local day."""
        key = (name, now.astimezone(self.tz).date())
        if key not in self._bands:
            if len(self._bands) > 4096:
                self._bands.clear()
            n = round(timedelta(days=7) / self.step)
            y = history.window(name, now - 2 * n * self.step, 2 * n)
            err = y[n:] - y[:n]
            err = err[np.isfinite(err)]
            if err.size < 20:
                self._bands[key] = (0.0, 0.0)
            else:
                lo, hi = np.percentile(err, [10, 90])
                self._bands[key] = (min(float(lo), 0.0), max(float(hi), 0.0))
        return self._bands[key]

    def _lags(self, horizon: Horizon, now: datetime) -> np.ndarray:
        """For each interval, up to three candidate lags in days (0 = none): the last day of
        the same kind (workday or rest day) whose interval is already measured, looked for
        over the whole two weeks held (after a nine-day Spring Festival holiday the last
        workday is ten days back: a week earlier was a holiday, and forecasting the first
        workday from it left the PEDF campus's loads 40 % low), then a week and two weeks
        earlier."""
        out = np.zeros((horizon.n, 3), dtype=int)
        for k, t in enumerate(horizon.times()):
            local = t.astimezone(self.tz)
            kind = _workday(local.date(), self.calendar)
            cands = [
                d
                for d in range(1, SAME_KIND_MAX_LAG_DAYS + 1)
                if t - timedelta(days=d) + self.step <= now
                and _workday((local - timedelta(days=d)).date(), self.calendar) == kind
            ]
            fallback = [d for d in (7, 14) if t - timedelta(days=d) + self.step <= now]
            row = (cands[:1] + fallback)[:3]
            out[k, : len(row)] = row
        return out

    def _seasonal(
        self, history: MeasuredHistory, name: str, horizon: Horizon, lags: np.ndarray
    ) -> np.ndarray:
        base = now_floor(horizon, history) - timedelta(days=14)
        n = round(timedelta(days=14) / self.step)
        week = history.window(name, base, n)
        k0 = round((horizon.start - base) / self.step)
        spd = round(timedelta(days=1) / self.step)
        pos = k0 + np.arange(horizon.n)[:, None] - lags * spd
        ok = (lags > 0) & (pos >= 0) & (pos < n)
        vals = np.where(ok, week[np.clip(pos, 0, n - 1)], np.nan)
        out = np.zeros(horizon.n)
        for j in range(vals.shape[1] - 1, -1, -1):  # the first usable candidate wins
            out = np.where(np.isfinite(vals[:, j]), vals[:, j], out)
        return out


SAME_KIND_MAX_LAG_DAYS = 13  # the seasonal window holds 14 days before now


@functools.lru_cache(maxsize=4096)
def _workday(d: date, calendar: ParkCalendar | None = None) -> bool:
    return is_workday(d, calendar)


def now_floor(horizon: Horizon, history: MeasuredHistory) -> datetime:
    """The decision time (the end of what may be read)."""
    return history.now or horizon.start


class ModelForecasts:
    """The forecasts package's quantile forecasters, fitted on the history before the start."""

    source = "model"

    def __init__(self, site: Site, history: MeasuredHistory, fit_days: int = 28, seed: int = 0):
        from forecasts.load import LoadForecaster
        from forecasts.pv import PvForecaster

        self.pv_names, self.loads = asset_names(site)
        specs = pv_specs(site)
        self.recent_days = 8
        # A park without PV (a garage) or without forecast loads has no model for them.
        self.load = None
        if self.loads:
            self.load = LoadForecaster(
                seed=seed, max_rows=60_000, rows_per_series=6_000, calendar=site.calendar
            )
            self.load.fit_many([history.series(n, fit_days) for n in self.loads])
        self.pv = None
        if self.pv_names:
            self.pv = PvForecaster(
                [(specs[n], site.location) for n in self.pv_names],
                seed=seed,
                max_rows=60_000,
                rows_per_series=8_000,
                calendar=site.calendar,
            )
            self.pv.fit_many([history.series(n, fit_days) for n in self.pv_names])

    def predict(self, site: Site, horizon: Horizon, history: MeasuredHistory) -> Forecasts:
        recent = {n: history.series(n, self.recent_days) for n in [*self.loads, *self.pv_names]}
        p10: dict[str, np.ndarray] = {}
        p50: dict[str, np.ndarray] = {}
        p90: dict[str, np.ndarray] = {}
        for names, model in ((self.loads, self.load), (self.pv_names, self.pv)):
            if not names:
                continue
            for n, q in zip(
                names, model.predict_many(horizon, [recent[x] for x in names]), strict=True
            ):
                p10[n], p50[n], p90[n] = q.p10_kw, q.p50_kw, q.p90_kw
        return Forecasts(p50, p10, p90, source=self.source)


_FITTED: dict[tuple, ModelForecasts] = {}


def make_forecaster(kind: str, site: Site, park, history: MeasuredHistory, seed: int = 0):
    """A :class:`vpp.plan.cycle.Forecaster` of ``kind`` (one of :data:`FORECASTS`); with
    ``dispatch.margin_bands: measured`` (the default) its band is calibrated on its own
    measured error (:class:`vpp.plan.calibrated.CalibratedForecaster`)."""
    if kind == "perfect":
        return PerfectForecaster(park)
    if kind == "naive":
        fc = HistoryForecaster(NaiveModel(site), history)
    elif kind == "model":
        key = (site.name, site.source_file, history.start, history.end, seed)
        if key not in _FITTED:  # runs of the same days (compare) share one fit
            _FITTED.clear()
            _FITTED[key] = ModelForecasts(site, history, seed=seed)
        fc = HistoryForecaster(_FITTED[key], history)
    else:
        raise ValueError(f"unknown forecast kind {kind!r}; expected one of {FORECASTS}")
    if site.dispatch.margin_bands is MarginBands.MEASURED:
        from vpp.plan.calibrated import CalibratedForecaster, history_measured

        return CalibratedForecaster.for_site(site, fc, history_measured(history))
    return fc


# ------------------------------------------------------------------------------------------
# The service: forecasts from the telemetry it stored
# ------------------------------------------------------------------------------------------
class TelemetryHistory:
    """Interval means of telemetry readings per asset on the park's grid (intervals of
    ``step`` counted from the Unix epoch), as PV available (kW >= 0: minus the reported power,
    so a curtailed interval reads low) and loads (kW as reported). Readings arrive in any
    order; each one is added once."""

    def __init__(self, pv_names: list[str], load_names: list[str], step: timedelta):
        self.step_s = step.total_seconds()
        self.pv = set(pv_names)
        self.names = [*pv_names, *load_names]
        self._sum: dict[str, dict[int, float]] = {n: {} for n in self.names}
        self._count: dict[str, dict[int, int]] = {n: {} for n in self.names}

    def add(self, assets: list[str], ts_s: np.ndarray, p_kw: np.ndarray) -> None:
        """Readings: asset names, Unix seconds, kW (load convention, NaN = no value)."""
        k_all = np.floor(np.asarray(ts_s, dtype=float) / self.step_s).astype(np.int64)
        for asset, k, p in zip(assets, k_all.tolist(), np.asarray(p_kw).tolist(), strict=True):
            sums = self._sum.get(asset)
            if sums is None or p != p:  # not forecast here, or NaN
                continue
            sums[k] = sums.get(k, 0.0) + (max(-p, 0.0) if asset in self.pv else p)
            self._count[asset][k] = self._count[asset].get(k, 0) + 1

    def drop_before(self, t: datetime) -> None:
        """Forget the intervals before ``t``."""
        k0 = int(t.timestamp() // self.step_s)
        for n in self.names:
            for k in [k for k in self._sum[n] if k < k0]:
                del self._sum[n][k], self._count[n][k]

    def means(self, name: str, start: datetime, n: int) -> np.ndarray:
        """Mean kW of ``name`` on ``n`` intervals from ``start``; NaN where none was read."""
        k0 = round(start.timestamp() / self.step_s)
        sums, counts = self._sum[name], self._count[name]
        return np.array([sums[k] / counts[k] if k in sums else np.nan for k in range(k0, k0 + n)])


class TelemetryForecaster:
    """A :class:`vpp.plan.cycle.Forecaster` for the service: the ``naive`` model
    (:class:`NaiveModel`) on the measured history of every asset with at least ``min_days``
    of telemetry (``min_coverage`` of its intervals read); the ``fallback`` forecaster (the
    configured profiles) for the others, e.g. all of them on a fresh database, and the
    members of PEDF buildings, which report only the building's exchange.

    ``read_new(since)`` gives the readings stored since its last call, from ``since`` on
    for the first (asset names, Unix seconds, kW): the I/O stays with the caller.
    """

    def __init__(
        self,
        site: Site,
        read_new,
        fallback,
        days: int = 15,
        min_days: int = 7,
        min_coverage: float = 0.9,
    ):
        self.read_new, self.fallback = read_new, fallback
        self.days, self.min_days, self.min_coverage = days, min_days, min_coverage
        self.step = timedelta(minutes=site.dispatch.step_minutes)
        pv, loads = asset_names(site)
        self.history = TelemetryHistory(pv, loads, self.step)
        self.model = NaiveModel(site)
        self.measured: list[str] = []  # the assets of the last forecast that used history

    def forecast(self, site: Site, horizon: Horizon, state: PlantState) -> Forecasts:
        now = min(horizon.start, state.at)
        step_s = self.step.total_seconds()
        now = datetime.fromtimestamp((now.timestamp() // step_s) * step_s, now.tzinfo)
        start = now - timedelta(days=self.days)
        self.history.add(*self.read_new(start))
        self.history.drop_before(start)
        n = round((now - start) / self.step)
        recent = round(timedelta(days=self.min_days) / self.step)
        grid = {name: self.history.means(name, start, n) for name in self.history.names}
        self.measured = [
            name for name, v in grid.items() if np.isfinite(v[-recent:]).mean() >= self.min_coverage
        ]
        base = self.fallback.forecast(site, horizon, state)
        if not self.measured:
            return base
        history = MeasuredHistory(start, self.step, self.history.names)
        history.extend(grid)
        history.now = now
        fc = self.model.predict(site, horizon, history)
        keep = set(self.measured)

        def merged(ours: dict, theirs: dict) -> dict:
            return {
                **{k: v for k, v in theirs.items() if k not in keep},
                **{k: v for k, v in ours.items() if k in keep},
            }

        return Forecasts(
            merged(fc.p50, base.p50),
            merged(fc.p10, base.p10),
            merged(fc.p90, base.p90),
            source=f"telemetry ({len(keep)} of {len(self.history.names)} assets)",
        )
