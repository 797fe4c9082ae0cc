"""How the simulated park's truth departs from its profiles (:class:`SimOptions`).

The truth of :class:`vpp.sim.simulated_park.SimulatedPark` is the measured profiles
(:func:`vpp.park.profiles.site_series`) times AR(1) load noise. A forecaster fed by the
measured history of that truth learns the profiles' own regularity; the options here make the
truth depart from it the way a real park does, each off by default (the park as it always
was):

* a larger or slower load noise (``load_noise_frac``, ``load_noise_rho``: a rho near 1 is a
  level that drifts over the day, production volume or occupancy);
* load steps (:class:`LoadStep`): a load's scale changes at a time, a production line added
  on Monday, a conference on two days; the history shows the old level until then;
* moved weather (``pv_weather_offset_days``, ``pv_weather_jitter_days``): each day's PV
  cloudiness is the measured cloudiness of another day, the sun's geometry the day's own; with
  a jitter, the weather differs from seed to seed and loses its day-to-day persistence.

Pure functions of the options, the seed and the day: the same seed gives the same truth.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.park import profiles
from vpp.park.model import CurtailableLoad, Site
from vpp.park.pv_physics import clear_sky_ac_kw


def seeded_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator of its own for ``seed`` and ``keys`` (what is drawn for one key never
    moves another's draws)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


@dataclass(frozen=True)
class LoadStep:
    """The true load of ``assets`` times ``scale`` from ``start`` (until ``end``, if given).

    Parameters
    ----------
    assets : load names (base loads, curtailable loads' baselines, PEDF members' loads).
    start : first moment of the new level (tz-aware); intervals starting at or after it.
    scale : multiplier of the profile's load (1.2 = +20 %, 0 = switched off), >= 0.
    end : first moment back at the old level (tz-aware), or None: for good.

    Steps that cover the same interval and asset multiply.
    """

    assets: tuple[str, ...]
    start: datetime
    scale: float
    end: datetime | None = None

    def __post_init__(self) -> None:
        if not self.assets:
            raise ValueError("LoadStep.assets: name at least one load")
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"LoadStep.scale: must be >= 0, got {self.scale}")
        if self.start.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise ValueError("LoadStep.start/end: must carry a time zone")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"LoadStep.end: must be after start ({self.start.isoformat()})")


@dataclass(frozen=True)
class SimOptions:
    """Imperfections of the simulated park, and how its truth departs from the profiles.

    Every default is the park as it always was: 3 % AR(1) load noise, nothing else.

    Parameters
    ----------
    load_noise_frac : standard deviation of the multiplicative load noise (0.03 = 3 %).
    load_noise_rho : lag-one autocorrelation of that noise per interval, in [0, 1).
    p_stale : probability per asset and reading that the reading is late or missing.
    load_steps : changes of a load's level at a time (:class:`LoadStep`).
    pv_weather_offset_days : every PV array's cloudiness is that of this many days later
        (negative: earlier) in the measured year; the sun's geometry stays the day's own.
    pv_weather_jitter_days : on top of the offset, each day's cloudiness comes from a day drawn
        (seeded per day) within +- this many days: the weather differs from seed to seed and
        a sunny day may follow a dull one (0 = the measured sequence).
    """

    load_noise_frac: float = 0.03
    load_noise_rho: float = 0.9
    p_stale: float = 0.0
    load_steps: tuple[LoadStep, ...] = ()
    pv_weather_offset_days: int = 0
    pv_weather_jitter_days: int = 0

    def __post_init__(self) -> None:
        bad = []
        if not (math.isfinite(self.load_noise_frac) and self.load_noise_frac >= 0):
            bad.append(f"load_noise_frac: must be >= 0, got {self.load_noise_frac}")
        if not 0 <= self.load_noise_rho < 1:
            bad.append(f"load_noise_rho: must be in [0, 1), got {self.load_noise_rho}")
        if not 0 <= self.p_stale <= 1:
            bad.append(f"p_stale: must be in [0, 1], got {self.p_stale}")
        if abs(self.pv_weather_offset_days) > 366:
            bad.append(
                f"pv_weather_offset_days: must be within 366, got {self.pv_weather_offset_days}"
            )
        if not 0 <= self.pv_weather_jitter_days <= 183:
            bad.append(
                f"pv_weather_jitter_days: must be in [0, 183], got {self.pv_weather_jitter_days}"
            )
        if bad:
            raise ValueError("SimOptions: " + "; ".join(bad))

    @property
    def pv_weather_moved(self) -> bool:
        return self.pv_weather_offset_days != 0 or self.pv_weather_jitter_days > 0


def load_names(site: Site) -> list[str]:
    """The loads whose truth a :class:`LoadStep` may scale: base loads, curtailable loads'
    baselines and the loads of PEDF buildings."""
    a = site.assets
    flex: list[CurtailableLoad] = [*a.curtailable_loads]
    flex += [p.flexible_load for p in a.pedf_buildings if p.flexible_load]
    base = [*a.base_loads, *(p.base_load for p in a.pedf_buildings)]
    return [x.name for x in [*base, *flex]]


def check_load_steps(site: Site, steps: tuple[LoadStep, ...]) -> None:
    """Raise ValueError naming every step asset that is not a load of ``site``."""
    known = set(load_names(site))
    for i, st in enumerate(steps):
        unknown = [n for n in st.assets if n not in known]
        if unknown:
            raise ValueError(
                f"load_steps[{i}].assets: {unknown} are not loads of {site.name!r}; "
                f"expected some of {sorted(known)}"
            )


def _first_interval_at(midnight: datetime, step: timedelta, t: datetime, n: int) -> int:
    """Index (0..n) of the day's first interval that starts at or after ``t``."""
    k = math.ceil((t - midnight) / step - 1e-9)
    return min(max(k, 0), n)


def apply_load_steps(
    day: dict[str, np.ndarray],
    d: date,
    steps: tuple[LoadStep, ...],
    tz: ZoneInfo,
    step: timedelta,
) -> None:
    """Scale, in place, the loads of ``day`` (kW per interval from 00:00 of ``d`` in ``tz``)
    that the ``steps`` cover."""
    if not steps:
        return
    midnight = datetime.combine(d, time(0), tzinfo=tz)
    n = len(next(iter(day.values())))
    for st in steps:
        i0 = _first_interval_at(midnight, step, st.start, n)
        i1 = n if st.end is None else _first_interval_at(midnight, step, st.end, n)
        if i1 > i0:
            for name in st.assets:
                day[name][i0:i1] *= st.scale


def weather_day(options: SimOptions, seed: int, d: date) -> date:
    """The day whose measured cloudiness plays ``d``: offset, plus a draw within +-jitter
    days seeded by ``seed`` and ``d``."""
    shift = options.pv_weather_offset_days
    j = options.pv_weather_jitter_days
    if j > 0:
        shift += int(seeded_rng(seed, "weather", d.isoformat()).integers(-j, j + 1))
    return d + timedelta(days=shift)


def moved_weather_pv(
    site: Site, options: SimOptions, seed: int, first: date, n_days: int, step: timedelta
) -> dict[str, np.ndarray]:
    """Available PV (kW) of every array over ``n_days`` from ``first`` (intervals of ``step``
    from 00:00 in the park's zone): the day's own clear-sky geometry times the cloudiness of
    :func:`weather_day`."""
    tz = ZoneInfo(site.location.tz)
    spd = round(timedelta(days=1) / step)
    times, moved = [], []
    for i in range(n_days):
        d = first + timedelta(days=i)
        m0 = datetime.combine(d, time(0), tzinfo=tz)
        m1 = datetime.combine(weather_day(options, seed, d), time(0), tzinfo=tz)
        times += [m0 + k * step for k in range(spd)]
        moved += [m1 + k * step for k in range(spd)]
    t, w = pd.DatetimeIndex(times), pd.DatetimeIndex(moved)
    a = site.assets
    out = {}
    for pv in [*a.pv_arrays, *(p.pv for p in a.pedf_buildings)]:
        cs = clear_sky_ac_kw(t + step / 2, site.location, pv)
        out[pv.name] = cs * profiles.clear_sky_index(pv.weather, w, site.location)
    return out
