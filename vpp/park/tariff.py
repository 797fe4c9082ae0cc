"""Evaluate a :class:`vpp.park.model.Tariff` on a horizon: the tier and price of every interval.

Pure computation; the working calendar comes from :mod:`vpp.park.calendar` (China's public
holidays and working weekends, and the park's own for the years the package does not know).

Also the checks a tariff must pass (used by :mod:`vpp.park.config` and the commands): every
day type's schedule covers the day exactly once (:func:`schedule_coverage`), and a tariff
prices only the days it is valid for (:func:`days_outside_validity`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

import numpy as np

from vpp.park.calendar import day_type
from vpp.park.model import DayType, Horizon, ParkCalendar, Tariff, TariffPeriod, TariffSeason
from vpp.park.series import FALLBACK, Cover, IntervalSeries, merge, refuse_uncovered, resolve

MINUTES_PER_DAY = 1440


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _season(tariff: Tariff, month: int) -> TariffSeason | None:
    for s in tariff.seasons:
        if month in s.months:
            return s
    return None


def tier_at(tariff: Tariff, t: datetime, calendar: ParkCalendar | None = None) -> str:
    """The tier in force at local time ``t`` (``calendar``: the park's own holidays)."""
    season = _season(tariff, t.month)
    if season is None:
        return tariff.default_tier
    dtype = day_type(t.date(), calendar)
    if dtype is DayType.WEEKEND:
        dtype = tariff.weekend_as
    periods = season.schedules.get(dtype) or season.schedules.get(DayType.WORKDAY, ())
    minute = t.hour * 60 + t.minute
    for p in periods:
        start, end = _minutes(p.start), _minutes(p.end) or 1440
        if start <= minute < end:
            return p.tier
    return tariff.default_tier


def tiers(tariff: Tariff, horizon: Horizon, calendar: ParkCalendar | None = None) -> list[str]:
    """Tier of every interval of ``horizon`` (taken at the interval's start)."""
    return [tier_at(tariff, t, calendar) for t in horizon.times()]


def import_price_cny_per_kwh(
    tariff: Tariff, horizon: Horizon, calendar: ParkCalendar | None = None
) -> np.ndarray:
    """Energy price of every interval (CNY/kWh).

    Parameters
    ----------
    tariff : the time-of-use tariff.
    horizon : the intervals (local time of their start decides the tier).
    calendar : the park's own holidays and make-up working days, or None (the package's).
    """
    return np.array([tariff.tiers_cny_per_kwh[k] for k in tiers(tariff, horizon, calendar)])


def export_price_cny_per_kwh(tariff: Tariff, horizon: Horizon) -> np.ndarray:
    return np.full(horizon.n, tariff.export_cny_per_kwh)


def series_prices_cny_per_kwh(
    tariff: Tariff,
    horizon: Horizon,
    now: datetime,
    calendar: ParkCalendar | None = None,
    extra: IntervalSeries | None = None,
    refuse: bool = True,
) -> tuple[np.ndarray, np.ndarray, Cover]:
    """Import and export price of every interval, from the tariff's energy series where it
    covers, else the time-of-use price (the rule of :mod:`vpp.park.series`).

    Parameters
    ----------
    tariff : the tariff; ``tariff.energy_series`` (None: the TOU schedule alone) gives the
        series file's rows, its adders (network, funds; CNY/kWh, added to a series price) and
        whether it is required.
    horizon : the intervals (UTC arithmetic; the TOU tier by local time).
    now : the evaluation time; a forecast issued after it is not used.
    calendar : the park's own holidays (the TOU fallback).
    extra : rows posted to the service, after the file's (they win a tie).
    refuse : raise for a required series that does not cover (planning); False: the
        accounting after the fact, which bills at the fallback and says so in ``cover``.

    Returns
    -------
    import_cny_per_kwh, export_cny_per_kwh : shape ``(n,)``.
    cover : how the import series covered the horizon (intervals that fell back to TOU).

    Raises
    ------
    SeriesMissingError : the series is required and an interval has neither a cleared price nor
        a forecast issued at or before ``now``.
    """
    tou = import_price_cny_per_kwh(tariff, horizon, calendar)
    exp_flat = export_price_cny_per_kwh(tariff, horizon)
    spec = tariff.energy_series
    if spec is None and extra is None:
        return tou, exp_flat, Cover("", "", horizon.n, 0, 0, horizon.n, (FALLBACK,) * horizon.n)
    rows = merge(spec.points if spec else None, extra)
    adder = (spec.network_cny_per_kwh + spec.fund_cny_per_kwh) if spec else 0.0
    h = (horizon.start, horizon.step, horizon.n)
    imp, cover = resolve(rows, *h, now, tou, adder)
    if spec is not None and not cover.name:  # configured, nothing posted or read yet
        cover = replace(cover, name=spec.name or "(unnamed)", kind="energy")
    exp, _ = resolve(rows, *h, now, exp_flat, 0.0, export=True)
    if spec is not None and spec.required and refuse:
        refuse_uncovered(cover, horizon.times(), f"tariff {tariff.name!r} energy_series")
    return imp, exp, cover


def demand_charge_for_horizon(tariff: Tariff) -> float:
    """CNY per kW by which the month's peak import rises (the whole monthly charge: a new
    peak costs the full month's rate, whenever in the month it happens)."""
    return tariff.demand_charge_cny_per_kw_month


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------
def period_minutes(p: TariffPeriod) -> tuple[int, int]:
    """``(start, end)`` minute of day of a period; an ``end`` of 00:00 is 24:00 (1440)."""
    return _minutes(p.start), _minutes(p.end) or MINUTES_PER_DAY


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` minute ranges where ``mask`` is true."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def hhmm(minute: int) -> str:
    """``HH:MM`` of a minute of day (1440 is written 24:00)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def schedule_coverage(
    periods: tuple[TariffPeriod, ...],
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Where one day's schedule leaves the day uncovered, and where it covers it twice.

    Returns
    -------
    missing, doubled : ``[start, end)`` minute-of-day ranges (0-1440); both empty when the
        periods cover the 24 hours exactly once. A period that does not end after it starts
        covers nothing (the caller reports it).
    """
    count = np.zeros(MINUTES_PER_DAY, dtype=int)
    for p in periods:
        start, end = period_minutes(p)
        if end > start:
            count[start:end] += 1
    return _runs(count == 0), _runs(count > 1)


def days_outside_validity(tariff: Tariff, first: date, last: date) -> tuple[date, date] | None:
    """The first and the last day of ``first .. last`` (inclusive) outside the tariff's
    ``valid_from .. valid_to`` (inclusive, None: open), or None when every day is inside."""
    lo, hi = tariff.valid_from, tariff.valid_to

    def outside(d: date) -> bool:
        return (lo is not None and d < lo) or (hi is not None and d > hi)

    if outside(first):
        start = first
    elif hi is not None and last > hi:
        start = hi + timedelta(days=1)
    else:
        return None
    # When ``last`` is inside, the range starts before valid_from.
    end = last if outside(last) or lo is None else lo - timedelta(days=1)
    return start, end


def validity_text(tariff: Tariff) -> str:
    """``valid 2026-07-01 .. 2027-06-30`` (open ends written as such)."""
    lo = tariff.valid_from.isoformat() if tariff.valid_from else "(no start)"
    hi = tariff.valid_to.isoformat() if tariff.valid_to else "(open-ended)"
    return f"valid {lo} .. {hi}"
