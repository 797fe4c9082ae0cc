"""Evaluate a :class:`vpp.park.model.Tariff` on a horizon: the tier and price of every interval.

Pure computation; the working calendar comes from :mod:`vpp.park.calendar` (China's public
holidays and working weekends).
"""

from __future__ import annotations

from datetime import datetime, time

import numpy as np

from vpp.park.calendar import day_type
from vpp.park.model import DayType, Horizon, Tariff, TariffSeason


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _season(tariff: Tariff, month: int) -> TariffSeason | None:
    for s in tariff.seasons:
        if month in s.months:
            return s
    return None


def tier_at(tariff: Tariff, t: datetime) -> str:
    """The tier in force at local time ``t``."""
    season = _season(tariff, t.month)
    if season is None:
        return tariff.default_tier
    dtype = day_type(t.date())
    if dtype is DayType.WEEKEND:
        dtype = tariff.weekend_as
    periods = season.schedules.get(dtype) or season.schedules.get(DayType.WORKDAY, ())
    minute = t.hour * 60 + t.minute
    for p in periods:
        start, end = _minutes(p.start), _minutes(p.end) or 1440
        if start <= minute < end:
            return p.tier
    return tariff.default_tier


def tiers(tariff: Tariff, horizon: Horizon) -> list[str]:
    """Tier of every interval of ``horizon`` (taken at the interval's start)."""
    return [tier_at(tariff, t) for t in horizon.times()]


def import_price_cny_per_kwh(tariff: Tariff, horizon: Horizon) -> np.ndarray:
    """Energy price of every interval (CNY/kWh)."""
    return np.array([tariff.tiers_cny_per_kwh[k] for k in tiers(tariff, horizon)])


def export_price_cny_per_kwh(tariff: Tariff, horizon: Horizon) -> np.ndarray:
    return np.full(horizon.n, tariff.export_cny_per_kwh)


def demand_charge_for_horizon(tariff: Tariff) -> float:
    """CNY per kW by which the month's peak import rises (the whole monthly charge: a new
    peak costs the full month's rate, whenever in the month it happens)."""
    return tariff.demand_charge_cny_per_kw_month
