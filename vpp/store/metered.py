"""A metered period from the service's database, for the carbon report (the edge: SQL in,
arrays out; the accounting itself is :mod:`vpp.accounting.carbon`).

What is read (tables of :mod:`vpp.store.tables`, read only, never migrated):

* ``telemetry`` of the park meter (asset ``park``: net power, + import, - export), of the
  PV arrays, and of the assets the VPP dispatches (batteries, EV chargers, shiftable loads).
  Readings are averaged per asset over each interval of the park's step (a reading belongs to
  the interval its timestamp falls in: the service stores one reading per interval, stamped
  at the interval's start; a gateway may send more), then summed per group in SQL;
* ``forecasts``: PV that no telemetry covers (a PEDF building's array sits behind the
  building's converter and is not metered apart) is taken from the decision-time forecast of
  the interval (lead 0), and the report says so;
* ``ev_sessions``: arrival, departure and energy of every car, for the park without the VPP.

Coverage: a local date counts as metered when the park meter covers at least
:data:`MIN_DAY_COVERAGE_FRAC` of its intervals; the gaps of such a date are interpolated
linearly from the neighbouring readings (and counted). Any other date of the period is
missing, and :class:`MissingStoredDataError` names it.

The park without the VPP, from the meters: the park meter with the batteries', EV chargers'
and shiftable loads' metered power taken out and their behaviour without the VPP put in (no
battery; every car charging at full power from arrival until served, from the stored
sessions; shiftable loads at full power from their window's opening). Only assets with
readings in the period are replaced. Not metered apart and so counted as metered: curtailed PV
and curtailed load, the PEDF buildings' own storage, and any dispatched asset without readings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Connection, Float, Integer, cast, func, literal, select

from vpp.park.model import PARK_METER, EvSession, Horizon, Site
from vpp.store import tables as t

MIN_DAY_COVERAGE_FRAC = 0.95  # of a day's intervals with a park-meter reading


class MissingStoredDataError(LookupError):
    """The store has no (or too few) park-meter readings for some dates of the period."""

    def __init__(self, missing: list[tuple[date, int, int]], where: str = "the database"):
        self.missing = missing
        self.dates = [d for d, _, _ in missing]
        parts = []
        for first, last, got, of in _runs(missing):
            span = first.isoformat() if first == last else f"{first}..{last}"
            parts.append(f"{span} ({got} of {of} intervals)" if got else f"{span} (none)")
        super().__init__(
            f"{where} has no park-meter readings (asset {PARK_METER!r}) for "
            f"{len(self.dates)} date(s) of the period: {', '.join(parts)}; a date needs "
            f"{MIN_DAY_COVERAGE_FRAC:.0%} of its intervals"
        )


def _runs(missing: list[tuple[date, int, int]]):
    """Consecutive dates merged: (first, last, intervals with readings, intervals)."""
    out: list[list] = []
    for d, got, of in missing:
        if out and out[-1][1] + timedelta(days=1) == d and (got == 0) == (out[-1][2] == 0):
            out[-1][1] = d
            out[-1][2] += got
            out[-1][3] += of
        else:
            out.append([d, d, got, of])
    return [tuple(x) for x in out]


@dataclass(frozen=True)
class MeteredPeriod:
    """Interval means (kW) over ``horizon``: the park as metered and the park without the VPP."""

    horizon: Horizon
    import_kw: np.ndarray
    export_kw: np.ndarray
    pv_used_kw: np.ndarray  # PV generation (used on site or exported)
    no_vpp_import_kw: np.ndarray
    no_vpp_export_kw: np.ndarray
    filled_intervals: int  # park-meter gaps interpolated
    pv_from_forecast: tuple[str, ...]  # PV arrays without telemetry, taken from forecasts
    pv_unknown: tuple[str, ...]  # PV arrays with neither telemetry nor forecasts (count 0)
    unmetered_dispatch: tuple[str, ...] = ()  # dispatched assets without readings: as metered

    @property
    def days(self) -> float:
        return self.horizon.n * self.horizon.dt_h / 24.0


def period_horizon(site: Site, first: date, last: date) -> Horizon:
    """The intervals of the local days ``first`` .. ``last`` (inclusive)."""
    tz = ZoneInfo(site.location.tz)
    step = timedelta(minutes=site.dispatch.step_minutes)
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return Horizon(start, step, round((end - start) / step))


def _bucket(conn: Connection, col, h: Horizon):
    """SQL: the interval index of a timestamp column within ``h`` (0 = h.start)."""
    t0 = h.start.timestamp()
    step_s = h.step.total_seconds()
    if conn.dialect.name == "sqlite" and t0.is_integer() and step_s.is_integer():
        # UtcDateTime stores naive UTC text; strftime('%s') reads it as UTC (whole seconds).
        # Integer division is the floor here (every time read is at or after t0), and needs
        # no math functions, which not every SQLite build has.
        epoch = cast(func.strftime("%s", col), Integer)
        return (epoch - literal(int(t0))) // literal(int(step_s))
    if conn.dialect.name == "sqlite":
        epoch = cast(func.strftime("%s", col), Float)
    else:
        epoch = func.extract("epoch", col)
    return func.floor((epoch - literal(t0)) / literal(step_s))


def group_sum_kw(conn: Connection, names: list[str], h: Horizon) -> tuple[np.ndarray, np.ndarray]:
    """Per interval of ``h``: the sum over ``names`` of each asset's mean reading (kW), and
    how many of the assets had a reading (an asset without one adds 0)."""
    total, count = np.zeros(h.n), np.zeros(h.n, dtype=int)
    if not names:
        return total, count
    tel = t.telemetry
    k = _bucket(conn, tel.c.ts, h).label("k")
    inner = (
        select(k, tel.c.asset, func.avg(tel.c.p_kw).label("p"))
        .where(
            tel.c.asset.in_(names),
            tel.c.ts >= h.start,
            tel.c.ts < h.end,
            tel.c.p_kw.is_not(None),
        )
        .group_by(k, tel.c.asset)
        .subquery()
    )
    q = select(inner.c.k, func.sum(inner.c.p), func.count()).group_by(inner.c.k)
    for kk, p, c in conn.execute(q):
        i = int(kk)
        if 0 <= i < h.n:
            total[i] += float(p)
            count[i] += int(c)
    return total, count


def metered_assets(conn: Connection, names: list[str], h: Horizon) -> set[str]:
    """Which of ``names`` have at least one reading in ``h``."""
    if not names:
        return set()
    tel = t.telemetry
    q = (
        select(tel.c.asset)
        .where(tel.c.asset.in_(names), tel.c.ts >= h.start, tel.c.ts < h.end)
        .group_by(tel.c.asset)
    )
    return {r[0] for r in conn.execute(q)}


def park_meter_kw(conn: Connection, h: Horizon) -> np.ndarray:
    """Park net power per interval (kW, + import); NaN where the meter has no reading."""
    p, c = group_sum_kw(conn, [PARK_METER], h)
    return np.where(c > 0, p, np.nan)


def coverage(net_kw: np.ndarray, h: Horizon, tz: str) -> list[tuple[date, int, int]]:
    """(date, intervals with a reading, intervals) of every local date of ``h``."""
    zone = ZoneInfo(tz)
    days = np.array([x.astimezone(zone).date() for x in h.times()])
    out = []
    for d in sorted(set(days)):
        m = days == d
        out.append((d, int(np.isfinite(net_kw[m]).sum()), int(m.sum())))
    return out


def fill_gaps(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Linear interpolation over NaN (held flat at the ends); returns (filled, how many)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, 0
    k = np.arange(len(x))
    return np.interp(k, k[~bad], x[~bad]), int(bad.sum())


def forecast_lead0_kw(conn: Connection, names: list[str], h: Horizon) -> dict[str, np.ndarray]:
    """Per asset, the newest cycle's forecast (p50, kW) of each interval it starts; NaN
    where no cycle started that interval."""
    fc = t.forecasts
    k = _bucket(conn, fc.c.horizon_start, h).label("k")
    q = (
        select(fc.c.asset, k, fc.c.p50_kw[0].as_float())
        .where(fc.c.asset.in_(names), fc.c.horizon_start >= h.start, fc.c.horizon_start < h.end)
        .order_by(fc.c.cycle_id)
    )
    out = {n: np.full(h.n, np.nan) for n in names}
    for asset, kk, p in conn.execute(q):
        i = int(kk)
        if 0 <= i < h.n and p is not None:
            out[asset][i] = float(p)  # later cycles overwrite earlier ones
    return out


def stored_sessions(conn: Connection, h: Horizon) -> list[EvSession]:
    """EV sessions overlapping ``h`` as the service stored them."""
    s = t.ev_sessions
    q = select(s).where(s.c.departure > h.start, s.c.arrival < h.end).order_by(s.c.arrival)
    return [
        EvSession(
            session_id=r.session_id,
            charger=r.charger,
            arrival=r.arrival,
            departure=r.departure,
            e_needed_kwh=r.e_needed_kwh,
        )
        for r in conn.execute(q)
    ]


def _pv_names(site: Site) -> list[str]:
    a = site.assets
    return [p.name for p in a.pv_arrays] + [p.pv.name for p in a.pedf_buildings]


def _pv_used_kw(conn: Connection, site: Site, h: Horizon) -> tuple[np.ndarray, list, list]:
    """PV generation (kW, positive): metered arrays, else the lead-0 forecast."""
    total = np.zeros(h.n)
    from_fc, unknown = [], []
    for name in _pv_names(site):
        p, c = group_sum_kw(conn, [name], h)
        if c.any():
            gen, _ = fill_gaps(np.where(c > 0, -p, np.nan))
            total += np.maximum(gen, 0.0)
            continue
        fc = forecast_lead0_kw(conn, [name], h)[name]
        if np.isfinite(fc).any():
            total += np.maximum(fill_gaps(fc)[0], 0.0)
            from_fc.append(name)
        else:
            unknown.append(name)
    return total, from_fc, unknown


def read_period(conn: Connection, site: Site, first: date, last: date) -> MeteredPeriod:
    """The metered period ``first`` .. ``last`` (local dates, inclusive) and the park without
    the VPP (see the module docstring). Raises :class:`MissingStoredDataError` naming the dates
    the park meter does not cover."""
    from vpp.accounting.counterfactual import uncontrolled_flex_kw

    h = period_horizon(site, first, last)
    raw = park_meter_kw(conn, h)
    cov = coverage(raw, h, site.location.tz)
    missing = [c for c in cov if c[1] < MIN_DAY_COVERAGE_FRAC * c[2]]
    if missing:
        raise MissingStoredDataError(missing)
    net, filled = fill_gaps(raw)
    pv, from_fc, unknown = _pv_used_kw(conn, site, h)
    a = site.assets
    dispatched = [b.name for b in a.batteries] + [c.name for c in a.ev_chargers]
    dispatched += [s.name for s in a.shiftable_loads]
    metered = metered_assets(conn, dispatched, h)
    moved, _ = group_sum_kw(conn, sorted(metered), h)
    # Only what is metered is replaced: an unmetered asset stays in the park meter as it ran.
    only = dataclasses.replace(
        site,
        assets=dataclasses.replace(
            a,
            ev_chargers=tuple(c for c in a.ev_chargers if c.name in metered),
            shiftable_loads=tuple(x for x in a.shiftable_loads if x.name in metered),
        ),
    )
    sessions = [s for s in stored_sessions(conn, h) if s.charger in metered]
    base = net - moved + uncontrolled_flex_kw(only, h, sessions=sessions)
    return MeteredPeriod(
        horizon=h,
        import_kw=np.maximum(net, 0.0),
        export_kw=np.maximum(-net, 0.0),
        pv_used_kw=pv,
        no_vpp_import_kw=np.maximum(base, 0.0),
        no_vpp_export_kw=np.maximum(-base, 0.0),
        filled_intervals=filled,
        pv_from_forecast=tuple(from_fc),
        pv_unknown=tuple(unknown),
        unmetered_dispatch=tuple(n for n in dispatched if n not in metered),
    )
