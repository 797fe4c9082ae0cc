"""Measured 15-minute profiles that ship in the ``simbench`` package, mapped onto any date.

Edge module: it reads the package's CSV files (no network). SimBench profiles cover 2016
(366 days, 15 minutes, German local standard time). A date of another year is mapped to the
2016 day of the same week of the year and the same kind of day (a Chinese public holiday
plays as a Sunday, a working weekend as a Wednesday), so weekly and seasonal patterns survive.

Loads: ``simbench:<type>`` takes the ``<type>_pload`` column, normalised to a peak of 1
(``G*`` are commercial and industrial types, ``H0`` households, ``L*`` agriculture).
PV: a measured SimBench PV column gives the *cloudiness* (clear-sky index against its own
clear-sky envelope); :mod:`vpp.park.pv_physics` gives the geometry at the park's location.
"""

from __future__ import annotations

import functools
import importlib.util
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from vpp.park.calendar import is_workday
from vpp.park.model import Location, ParkCalendar, Profile, PvArray
from vpp.park.pv_physics import clear_sky_ac_kw

STEPS_PER_DAY = 96
REFERENCE_YEAR = 2016
_REF_DAYS = 366
_SIMBENCH_DATASET = "1-complete_data-mixed-all-2-sw"
# The SimBench PV profiles are in CET; their plants lie near 10 deg E, so solar noon is
# about 20 minutes after 12:00 CET.
_REF_SOLAR_OFFSET_MIN = 20.0


class ProfileError(ValueError):
    """An unknown profile name or an unusable profile reference."""


def _dataset_dir() -> Path:
    # Locate the package without importing it (importing simbench imports pandapower).
    spec = importlib.util.find_spec("simbench")
    if spec is None or not spec.submodule_search_locations:
        raise ProfileError("the 'simbench' package is not installed; it ships the profiles")
    return Path(next(iter(spec.submodule_search_locations))) / "networks" / _SIMBENCH_DATASET


@functools.lru_cache(maxsize=2)
def _table(kind: str) -> dict[str, np.ndarray]:
    fname = {"load": "LoadProfile.csv", "res": "RESProfile.csv"}[kind]
    path = _dataset_dir() / fname
    if not path.exists():
        raise ProfileError(f"SimBench profile file not found: {path}")
    df = pd.read_csv(path, sep=";")
    cols = [c for c in df.columns if c != "time"]
    data = df[cols].to_numpy(dtype=np.float64)
    if data.shape[0] != _REF_DAYS * STEPS_PER_DAY:
        raise ProfileError(f"{path}: expected {_REF_DAYS * STEPS_PER_DAY} rows, got {len(df)}")
    return {c: data[:, i] for i, c in enumerate(cols)}


def available(kind: str = "load") -> list[str]:
    """Profile names usable after ``simbench:`` (load types, or PV columns for kind 'pv')."""
    if kind == "load":
        return sorted({c[: -len("_pload")] for c in _table("load") if c.endswith("_pload")})
    return sorted(c for c in _table("res") if c.startswith("PV"))


def _parse(source: str, kind: str) -> str:
    if not source.startswith("simbench:"):
        raise ProfileError(f"profile '{source}': expected 'simbench:<name>'")
    name = source.split(":", 1)[1]
    names = available(kind)
    if name not in names:
        raise ProfileError(f"profile '{source}': unknown; known {kind} profiles: {names}")
    return name


@functools.lru_cache(maxsize=4096)
def reference_day(d: date, calendar: ParkCalendar | None = None) -> int:
    """Index (0-365) of the 2016 day that plays ``d``: same week of year, same kind of day
    (``calendar``: the park's own holidays and make-up working days)."""
    if is_workday(d, calendar):
        weekday = d.weekday() if d.weekday() < 5 else 2
    else:
        weekday = d.weekday() if d.weekday() >= 5 else 6
    doy = min(d.timetuple().tm_yday - 1, _REF_DAYS - 1)
    ref = date(REFERENCE_YEAR, 1, 1) + timedelta(days=doy)
    ref += timedelta(days=weekday - ref.weekday())
    idx = (ref - date(REFERENCE_YEAR, 1, 1)).days
    if idx < 0:
        idx += 7
    if idx >= _REF_DAYS:
        idx -= 7
    return idx


def _ref_index(
    times: pd.DatetimeIndex,
    minute_shift: np.ndarray | float = 0.0,
    calendar: ParkCalendar | None = None,
) -> np.ndarray:
    """Row of the reference table for each local timestamp (shifted by minutes)."""
    local = times
    minutes = local.hour * 60 + local.minute + np.asarray(minute_shift)
    day_shift = np.floor(minutes / 1440.0).astype(int)
    minutes = np.mod(minutes, 1440.0)
    days = np.array([reference_day(t.date(), calendar) for t in local]) + day_shift
    days = np.clip(days, 0, _REF_DAYS - 1)
    slot = np.clip((minutes // 15).astype(int), 0, STEPS_PER_DAY - 1)
    return days * STEPS_PER_DAY + slot


def load_shape(
    source: str, times: pd.DatetimeIndex, calendar: ParkCalendar | None = None
) -> np.ndarray:
    """Normalised load (peak 1 over the reference year) at local ``times``; a day plays as
    its kind says (``calendar``: the park's own holidays and make-up working days)."""
    col = _parse(source, "load") + "_pload"
    return _table("load")[col][_ref_index(times, 0.0, calendar)]


def load_kw(
    profile: Profile, times: pd.DatetimeIndex, calendar: ParkCalendar | None = None
) -> np.ndarray:
    """A load profile in kW: the normalised shape times ``profile.scale`` (peak kW)."""
    return profile.scale * load_shape(profile.source, times, calendar)


@functools.lru_cache(maxsize=16)
def _clear_sky_index_table(column: str) -> np.ndarray:
    """Clear-sky index of a SimBench PV column: value / envelope, per 15-minute slot.

    The envelope is, per time of day, the maximum over a +-7 day window (an empirical clear
    sky); where it is below 5 % of that day's peak envelope (dawn, dusk) the day's
    energy-weighted mean index is used instead.
    """
    raw = _table("res")[column].reshape(_REF_DAYS, STEPS_PER_DAY)
    padded = np.concatenate([raw[-7:], raw, raw[:7]])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 15, axis=0)
    env = windows.max(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(env > 0, raw / env, 0.0)
        day_peak = env.max(axis=1, keepdims=True)
        day_k = raw.sum(axis=1, keepdims=True) / np.maximum(env.sum(axis=1, keepdims=True), 1e-9)
    weak = env < 0.05 * np.maximum(day_peak, 1e-9)
    k = np.where(weak, np.broadcast_to(day_k, k.shape), k)
    return np.clip(k, 0.0, 1.0).reshape(-1)


def clear_sky_index(source: str, times: pd.DatetimeIndex, location: Location) -> np.ndarray:
    """Measured clear-sky index (0-1) for ``times`` at ``location``, by solar time of day."""
    column = _parse(source, "pv")
    utc_offset_h = np.array([t.utcoffset().total_seconds() / 3600.0 for t in times])
    solar_shift_min = (location.longitude_deg - 15.0 * utc_offset_h) * 4.0
    shift = solar_shift_min + _REF_SOLAR_OFFSET_MIN
    return _clear_sky_index_table(column)[_ref_index(times, shift)]


def pv_available_kw(pv: PvArray, location: Location, times: pd.DatetimeIndex) -> np.ndarray:
    """What ``pv`` produces (kW AC) over intervals starting at ``times``: pvlib clear-sky
    geometry at the site times the measured cloudiness of ``pv.weather``."""
    step = times[1] - times[0] if len(times) > 1 else pd.Timedelta(minutes=15)
    mid = times + step / 2
    return clear_sky_ac_kw(mid, location, pv) * clear_sky_index(pv.weather, times, location)


def horizon_times(horizon) -> pd.DatetimeIndex:
    """Interval start times of a horizon as a tz-aware DatetimeIndex."""
    return pd.date_range(horizon.start, periods=horizon.n, freq=horizon.step)


def site_series(site, horizon) -> dict[str, np.ndarray]:
    """What every PV array produces and every load consumes over ``horizon`` (kW), from the
    measured profiles: the 'truth' of the demo and the simulated park, and the perfect
    forecast of a single dispatch."""
    times = horizon_times(horizon)
    a = site.assets
    out: dict[str, np.ndarray] = {}
    for pv in list(a.pv_arrays) + [p.pv for p in a.pedf_buildings]:
        out[pv.name] = pv_available_kw(pv, site.location, times)
    for bl in list(a.base_loads) + [p.base_load for p in a.pedf_buildings]:
        out[bl.name] = load_kw(bl.profile, times, site.calendar)
    flex = list(a.curtailable_loads)
    flex += [p.flexible_load for p in a.pedf_buildings if p.flexible_load]
    for c in flex:
        out[c.name] = load_kw(c.baseline, times, site.calendar)
    return out


class ProfileForecaster:
    """The configured profiles themselves: the service's default forecast, and perfect
    foresight where the park plays them (single dispatches, studies of the controller alone,
    the oracle against which forecasters are judged); ``source`` "profiles", since on a real
    park they are a forecast like any other.
    ``replayable``: it reads no measurement, so what it would have said at any past time is
    what it says for that time now (:class:`vpp.plan.calibrated.CalibratedForecaster`)."""

    replayable = True

    def forecast(self, site, horizon, state):
        from vpp.park.state import Forecasts

        return Forecasts(site_series(site, horizon), source="profiles")
