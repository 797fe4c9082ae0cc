"""PV forecasts: pvlib clear-sky physics times a learned clear-sky index, as quantiles.

Model
-----
1. Physics (:mod:`vpp.park.pv_physics`): solar position, Ineichen clear sky with pvlib's
   shipped Linke turbidity and altitude, Hay-Davies transposition, SAPM cell temperature,
   PVWatts DC and the inverter limit give the array's clear-sky AC power ``cs_kw`` at the
   middle of every interval. It is cached per array on whole days.
2. Clear-sky index ``k = measured / cs_kw`` learned from the plant's own measurements: a
   quantile model (:class:`~forecasts.quantile_model.QuantileModel`) whose features are the
   lead time, solar time, day of year, how high the sun is, the last index, the last hour's
   index (smart persistence), the index one day earlier, the previous day's mean index and a
   climatology of the index by month and hour learned from the history. The boosting learns
   how to blend persistence (short leads) into climatology (long leads).
3. Weather feed (optional): with a :class:`Weather` forecast for the history (archived
   forecasts) and for the horizon, its GHI (or cloud cover) and air temperature run through
   the same physics, and their index ``k_nwp`` becomes one more feature.
4. Output ``clip(k_q, 0, 1) * cs_kw``: never above the clear-sky AC limit, zero at night.

One model serves many arrays (the index has no unit); ``fit_many`` / ``predict_many`` take
one history per array in the order of ``sites``. Pure computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pvlib

from forecasts.calendar_features import Grid, lookup, recent_mean
from forecasts.quantile_model import QuantileModel, sample_leads
from forecasts.types import QuantileForecast, Series, check_no_future
from vpp.park.model import Horizon, Location, ParkCalendar, PvArray
from vpp.park.pv_physics import ac_power_kw, clear_sky_irradiance, solar_position

FEATURES = (
    "lead_h",
    "cs_frac",
    "solar_h",
    "doy_sin",
    "doy_cos",
    "k_last",
    "k_last_hour",
    "k_lag_1d",
    "k_prev_day",
    "k_clim",
    "cs_frac_issue",
    "k_nwp",
)
_TAUS_H = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0, 12.0, 18.0, 24.0, 48.0)
# Below this share of the inverter rating the index is too noisy to learn from.
_K_MIN_CS_FRAC = 0.05


@dataclass(frozen=True)
class Weather:
    """A weather forecast feed on a grid (``horizon``): any of GHI (W/m2), cloud cover (0-1)
    and air temperature (deg C). Missing columns are None."""

    horizon: Horizon
    ghi_w_per_m2: np.ndarray | None = None
    cloud_cover_frac: np.ndarray | None = None
    temp_air_c: np.ndarray | None = None


def interval_midpoints(start: datetime, step: timedelta, n: int) -> pd.DatetimeIndex:
    """Mid-points of ``n`` intervals from ``start`` (tz-aware)."""
    return pd.date_range(start, periods=n, freq=step) + step / 2


def clear_sky_ac_on_grid(pv: PvArray, location: Location, horizon: Horizon) -> np.ndarray:
    """Clear-sky AC power (kW) of ``pv`` at the mid-point of every interval of ``horizon``."""
    times = interval_midpoints(horizon.start, horizon.step, horizon.n)
    solpos = solar_position(times, location)
    cs = clear_sky_irradiance(times, location, solpos)
    return ac_power_kw(pv, solpos, cs)


def weather_ac_kw(pv: PvArray, location: Location, weather: Weather) -> np.ndarray:
    """AC power (kW) the physics gives for a weather feed: GHI (or cloud cover, through the
    linear cloud-cover model GHI = GHI_clear * (0.35 + 0.65 * (1 - cover))), split into DNI
    and DHI with Erbs, then transposed; NaN where the feed has no irradiance information."""
    h = weather.horizon
    times = interval_midpoints(h.start, h.step, h.n)
    solpos = solar_position(times, location)
    clear = clear_sky_irradiance(times, location, solpos)
    if weather.ghi_w_per_m2 is not None:
        ghi = np.asarray(weather.ghi_w_per_m2, dtype=float)
    elif weather.cloud_cover_frac is not None:
        cover = np.clip(np.asarray(weather.cloud_cover_frac, dtype=float), 0.0, 1.0)
        ghi = clear["ghi"].to_numpy() * (0.35 + 0.65 * (1.0 - cover))
    else:
        return np.full(h.n, np.nan)
    split = pvlib.irradiance.erbs(np.nan_to_num(ghi), solpos["zenith"], times)
    irr = pd.DataFrame({"ghi": np.nan_to_num(ghi), "dni": split["dni"], "dhi": split["dhi"]})
    irr.index = times
    temp = 25.0 if weather.temp_air_c is None else np.nan_to_num(weather.temp_air_c, nan=25.0)
    out = ac_power_kw(pv, solpos, irr, temp_air_c=temp)
    return np.where(np.isfinite(ghi), out, np.nan)


@dataclass
class _ClearSkyCache:
    """Clear-sky AC power of one array on whole local days, grown on demand."""

    pv: PvArray
    location: Location
    start: datetime | None = None
    step: timedelta = timedelta(minutes=15)
    values_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def get(self, start: datetime, step: timedelta, n: int) -> np.ndarray:
        if self.start is None or step != self.step or not self._covers(start, n):
            day0 = start.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
            span = (start + n * step) - day0
            n_days = int(np.ceil(span / timedelta(days=1))) + 2  # two days spare for predicts
            n_steps = round(n_days * timedelta(days=1) / step)
            self.start, self.step = day0, step
            grid = Horizon(day0, step, n_steps)
            self.values_kw = clear_sky_ac_on_grid(self.pv, self.location, grid)
        k0 = round((start - self.start) / step)
        return self.values_kw[k0 : k0 + n]

    def _covers(self, start: datetime, n: int) -> bool:
        k0 = (start - self.start) / self.step
        return abs(k0 - round(k0)) < 1e-9 and k0 >= 0 and round(k0) + n <= len(self.values_kw)


def _index(values_kw: np.ndarray, cs_kw: np.ndarray, limit_kw: float) -> np.ndarray:
    """Clear-sky index per interval, NaN where the sun is too low to tell."""
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(cs_kw >= _K_MIN_CS_FRAC * limit_kw, values_kw / cs_kw, np.nan)
    return np.clip(k, 0.0, 1.2)


def _energy_ratio(values_kw, cs_kw, known_end, width, limit_kw) -> np.ndarray:
    """Sum of measured over sum of clear-sky AC in the last ``width`` known intervals."""
    meas = recent_mean(np.where(np.isfinite(values_kw), values_kw, np.nan), known_end, width)
    clear = recent_mean(np.where(np.isfinite(values_kw), cs_kw, np.nan), known_end, width)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(clear >= 0.5 * _K_MIN_CS_FRAC * limit_kw, meas / clear, np.nan)
    return np.clip(k, 0.0, 1.2)


def climatology(k: np.ndarray, grid: Grid) -> np.ndarray:
    """Mean clear-sky index by (month, hour of day), shape (12, 24); NaN-free (gaps take the
    hour's mean over all months, then the overall mean, then 0.6)."""
    times = pd.date_range(grid.start, periods=len(k), freq=grid.step)
    month, hour = times.month.to_numpy() - 1, times.hour.to_numpy()
    ok = np.isfinite(k)
    sums, counts = np.zeros((12, 24)), np.zeros((12, 24))
    np.add.at(sums, (month[ok], hour[ok]), k[ok])
    np.add.at(counts, (month[ok], hour[ok]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(counts >= 8, sums / counts, np.nan)
        by_hour = sums.sum(axis=0) / counts.sum(axis=0)
    overall = float(np.nanmean(k)) if ok.any() else 0.6
    table = np.where(np.isfinite(table), table, by_hour[None, :])
    return np.where(np.isfinite(table), table, overall)


def blended_base(X: np.ndarray, tau_h: float) -> np.ndarray:
    """Smart persistence blending into climatology: ``w k_persist + (1 - w) k_clim`` with
    ``w = exp(-lead / tau_h)``. ``k_persist`` is the last hour's index, else the previous
    day's, else the climatology. The quantile model learns corrections to this base."""
    col = {name: X[:, i] for i, name in enumerate(FEATURES)}
    persist = np.where(np.isfinite(col["k_last_hour"]), col["k_last_hour"], col["k_prev_day"])
    persist = np.where(np.isfinite(persist), persist, col["k_clim"])
    w = np.exp(-col["lead_h"] / tau_h)
    return w * persist + (1.0 - w) * col["k_clim"]


def solar_offset_h(grid: Grid, location: Location) -> float:
    """Hours to add to local clock time to get (mean) solar time at ``location``."""
    utc_offset_h = grid.start.utcoffset().total_seconds() / 3600.0
    return (location.longitude_deg - 15.0 * utc_offset_h) / 15.0


def _month_of_day(grid: Grid, n_days: int) -> np.ndarray:
    d0 = grid.start.date()
    return np.array([(d0 + timedelta(days=i)).month - 1 for i in range(n_days)], dtype=int)


def pv_features(
    values_kw: np.ndarray,
    cs_kw: np.ndarray,
    limit_kw: float,
    grid: Grid,
    known_end: np.ndarray,
    target: np.ndarray,
    clim: np.ndarray,
    solar_h: float = 0.0,
    k_nwp: np.ndarray | None = None,
) -> np.ndarray:
    """Feature rows (see :data:`FEATURES`) for ``target`` positions given data before
    ``known_end``.

    Parameters
    ----------
    values_kw : measured AC power (kW) per grid position (NaN where missing).
    cs_kw : clear-sky AC power (kW) per position, covering every target.
    limit_kw : the inverter's AC rating (kW), to make ``cs_kw`` scale-free.
    grid : where position 0 sits in local time.
    known_end, target : per row, readable prefix length and forecast position.
    clim : (12, 24) clear-sky index climatology by month and local hour.
    solar_h : :func:`solar_offset_h` of the site (hours).
    k_nwp : clear-sky index of a weather forecast per position, or None.
    """
    step_h = grid.step.total_seconds() / 3600.0
    spd = grid.steps_per_day
    cs_known = cs_kw[: len(values_kw)]
    k = _index(values_kw, cs_known, limit_kw)
    t_day = grid.day_index(target)
    n_days = int(t_day.max()) + 1
    doy = grid.day_of_year(0, n_days)[t_day]
    tod_h = grid.slot(target) * step_h
    month = _month_of_day(grid, n_days)[t_day]
    nwp = np.full(len(target), np.nan)
    if k_nwp is not None:
        ok = target < len(k_nwp)
        nwp[ok] = k_nwp[target[ok]]
    cols = [
        (target - known_end) * step_h,
        cs_kw[target] / limit_kw,
        np.mod(tod_h + solar_h, 24.0),
        np.sin(2 * np.pi * doy / 365.25),
        np.cos(2 * np.pi * doy / 365.25),
        lookup(k, known_end - 1, known_end),
        _energy_ratio(values_kw, cs_known, known_end, max(1, round(1 / step_h)), limit_kw),
        lookup(k, target - spd, known_end),
        _energy_ratio(values_kw, cs_known, known_end, spd, limit_kw),
        clim[month, np.floor(tod_h).astype(int) % 24],
        lookup(cs_kw, known_end - 1, known_end) / limit_kw,
        nwp,
    ]
    return np.column_stack(cols).astype(float)


def _nwp_index(
    site: _ClearSkyCache, grid: Grid, n: int, weather: Weather | None
) -> np.ndarray | None:
    """The weather feed's clear-sky index on positions ``0..n-1`` of ``grid`` (NaN outside)."""
    if weather is None:
        return None
    out = np.full(n, np.nan)
    w = weather.horizon
    k0 = grid.position_of(w.start)
    cs = site.get(w.start, w.step, w.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        kw = np.where(cs > 0, weather_ac_kw(site.pv, site.location, weather) / cs, np.nan)
    pos = k0 + np.arange(w.n)
    ok = (pos >= 0) & (pos < n)
    out[pos[ok]] = np.clip(kw[ok], 0.0, 1.2)
    return out


@dataclass
class PvForecaster:
    """Quantile PV forecaster for the arrays in ``sites`` (see module docstring).

    Parameters
    ----------
    sites : (array, location) pairs; histories and recents come in this order.
    max_lead_steps : longest lead trained for (steps).
    max_rows, rows_per_series : training rows (subsampled daytime (issue, lead) pairs).
    fit_threads : OpenMP threads for fitting (None: all cores). One by default: the refit
        runs beside the runtime, and on a busy machine one thread was faster than two.
    seed : seed of the sampling and the boosting.
    calendar : the park's own holidays and make-up working days (None: the package's).
    """

    sites: Sequence[tuple[PvArray, Location]]
    max_lead_steps: int = 192
    max_rows: int = 240_000
    rows_per_series: int = 40_000
    seed: int = 0
    fit_threads: int | None = 1
    calendar: ParkCalendar | None = None
    model: QuantileModel | None = None
    tau_h: float = 2.0
    climatologies: list[np.ndarray] = field(default_factory=list)
    _cache: list[_ClearSkyCache] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sites:
            raise ValueError("PvForecaster: no PV arrays given")
        self._cache = [_ClearSkyCache(pv, loc) for pv, loc in self.sites]

    @classmethod
    def one(cls, pv: PvArray, location: Location, **kwargs) -> PvForecaster:
        """A forecaster for a single array."""
        return cls([(pv, location)], **kwargs)

    def clear_sky_kw(self, i: int, horizon: Horizon) -> np.ndarray:
        """Clear-sky AC power (kW) of array ``i`` on ``horizon`` (the forecasts' upper limit)."""
        return self._cache[i].get(horizon.start, horizon.step, horizon.n).copy()

    def fit(self, history: Series, weather: Weather | None = None) -> PvForecaster:
        """Fit on one array's history (kW AC) and, optionally, archived weather forecasts."""
        return self.fit_many([history], None if weather is None else [weather])

    def fit_many(
        self, histories: Sequence[Series], weathers: Sequence[Weather | None] | None = None
    ) -> PvForecaster:
        """Fit one shared clear-sky-index model on the histories of all arrays."""
        if len(histories) != len(self.sites):
            raise ValueError(f"fit_many: {len(histories)} histories for {len(self.sites)} arrays")
        weathers = weathers or [None] * len(histories)
        rng = np.random.default_rng(self.seed)
        per_series = max(1000, min(self.rows_per_series, self.max_rows // len(histories)))
        self.climatologies = []
        blocks = []
        for i, (h, w) in enumerate(zip(histories, weathers, strict=True)):
            pv, loc = self.sites[i]
            grid = Grid(h.horizon.start, h.horizon.step, self.calendar)
            cs = self._cache[i].get(h.horizon.start, h.horizon.step, h.horizon.n)
            k = _index(h.values_kw, cs, pv.inverter_kw)
            clim = climatology(k, grid)
            self.climatologies.append(clim)
            n = h.horizon.n
            known_end = rng.integers(min(grid.steps_per_day, n - 1), n, size=per_series)
            target = known_end + sample_leads(rng, per_series, self.max_lead_steps)
            keep = target < n
            known_end, target = known_end[keep], target[keep]
            keep = np.isfinite(k[target])
            known_end, target = known_end[keep], target[keep]
            nwp = _nwp_index(self._cache[i], grid, n, w)
            X = pv_features(
                h.values_kw,
                cs,
                pv.inverter_kw,
                grid,
                known_end,
                target,
                clim,
                solar_offset_h(grid, loc),
                nwp,
            )
            blocks.append((X, np.clip(k[target], 0.0, 1.0), X[:, 0], known_end / n))
        X, y, lead_h, order = (np.concatenate(b) for b in zip(*blocks, strict=True))
        if len(y) < 200:
            raise ValueError(f"PvForecaster: only {len(y)} daytime training rows; need 200")
        errors = [np.mean(np.abs(blended_base(X, tau) - y)) for tau in _TAUS_H]
        self.tau_h = _TAUS_H[int(np.argmin(errors))]
        base = blended_base(X, self.tau_h)
        Xb = np.column_stack([X, base])
        # Large leaves: the index is noisy and a season's weather does not repeat; smaller
        # leaves overfit and lose to smart persistence (measured on SimBench PV3).
        leaf = max(40, len(y) // 15)
        self.model = QuantileModel(
            max_iter=80,
            min_samples_leaf=leaf,
            residual=True,
            seed=self.seed,
            fit_threads=self.fit_threads,
        )
        self.model.fit(Xb, y - base, lead_h, order)
        return self

    def predict(
        self, horizon: Horizon, recent: Series, weather: Weather | None = None
    ) -> QuantileForecast:
        """Forecast the single array over ``horizon`` from ``recent`` (ends by its start)."""
        return self.predict_many(horizon, [recent], None if weather is None else [weather])[0]

    def predict_many(
        self,
        horizon: Horizon,
        recents: Sequence[Series],
        weathers: Sequence[Weather | None] | None = None,
    ) -> list[QuantileForecast]:
        """Forecast every array over ``horizon``; ``recents[i]`` (the last day or more of
        measurements of array ``i``) must end at or before ``horizon.start``."""
        if self.model is None:
            raise RuntimeError("PvForecaster: fit before predict")
        if len(recents) != len(self.sites):
            raise ValueError(f"predict_many: {len(recents)} series for {len(self.sites)} arrays")
        weathers = weathers or [None] * len(recents)
        rows, limits = [], []
        for i, (rec, w) in enumerate(zip(recents, weathers, strict=True)):
            check_no_future(rec, horizon)
            pv, loc = self.sites[i]
            grid = Grid(rec.horizon.start, rec.horizon.step, self.calendar)
            target = grid.position_of(horizon.start) + np.arange(horizon.n)
            cs = self._cache[i].get(rec.horizon.start, rec.horizon.step, int(target[-1]) + 1)
            ke = np.full(horizon.n, rec.horizon.n)
            nwp = _nwp_index(self._cache[i], grid, len(cs), w)
            rows.append(
                pv_features(
                    rec.values_kw,
                    cs,
                    pv.inverter_kw,
                    grid,
                    ke,
                    target,
                    self.climatologies[i],
                    solar_offset_h(grid, loc),
                    nwp,
                )
            )
            limits.append(cs[target])
        X = np.vstack(rows)
        base = blended_base(X, self.tau_h)
        q = self.model.predict(np.column_stack([X, base]), X[:, 0]) + base
        q = np.clip(q, 0.0, 1.0)
        out = []
        for n, cs_h in enumerate(limits):
            part = q[:, n * horizon.n : (n + 1) * horizon.n] * cs_h
            out.append(QuantileForecast(horizon, part[0], part[1], part[2]))
        return out
