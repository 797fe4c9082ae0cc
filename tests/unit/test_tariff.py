"""Tariff as data: tiers by season, day type (China's holidays) and time of day."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.park.calendar import day_type, is_workday
from vpp.park.model import DayType, Horizon, Tariff, TariffPeriod, TariffSeason
from vpp.park.tariff import import_price_cny_per_kwh, tier_at

TZ = ZoneInfo("Asia/Shanghai")


def _tariff() -> Tariff:
    work = (
        TariffPeriod(time(0), time(8), "valley"),
        TariffPeriod(time(8), time(18), "peak"),
        TariffPeriod(time(18), time(0), "flat"),
    )
    hol = (TariffPeriod(time(9), time(15), "deep_valley"),)
    return Tariff(
        name="t",
        tiers_cny_per_kwh={"valley": 0.3, "peak": 1.2, "flat": 0.7, "deep_valley": 0.1},
        seasons=(
            TariffSeason("all", tuple(range(1, 13)), {DayType.WORKDAY: work, DayType.HOLIDAY: hol}),
        ),
        default_tier="flat",
    )


def test_workday_periods_and_midnight_end():
    t = _tariff()
    assert tier_at(t, datetime(2026, 7, 15, 7, 45, tzinfo=TZ)) == "valley"
    assert tier_at(t, datetime(2026, 7, 15, 8, 0, tzinfo=TZ)) == "peak"
    assert tier_at(t, datetime(2026, 7, 15, 23, 45, tzinfo=TZ)) == "flat"


def test_national_day_is_a_holiday_and_uses_the_holiday_schedule():
    t = _tariff()
    assert day_type(date(2026, 10, 1)) is DayType.HOLIDAY
    assert tier_at(t, datetime(2026, 10, 1, 10, 0, tzinfo=TZ)) == "deep_valley"
    # outside the holiday periods: the default tier
    assert tier_at(t, datetime(2026, 10, 1, 20, 0, tzinfo=TZ)) == "flat"


def test_weekend_counts_as_workday_by_default_and_working_weekends_exist():
    t = _tariff()
    assert day_type(date(2026, 7, 18)) is DayType.WEEKEND
    assert tier_at(t, datetime(2026, 7, 18, 10, 0, tzinfo=TZ)) == "peak"
    # The 2026 Spring Festival moves a working day to a weekend; at least one exists that year.
    d0 = date(2026, 1, 1)
    weekends_worked = [
        d0 + timedelta(i)
        for i in range(365)
        if (d0 + timedelta(i)).weekday() >= 5 and is_workday(d0 + timedelta(i))
    ]
    assert weekends_worked


def test_price_array_on_a_horizon():
    h = Horizon(datetime(2026, 7, 15, 0, 0, tzinfo=TZ), timedelta(minutes=15), 96)
    price = import_price_cny_per_kwh(_tariff(), h)
    assert price.shape == (96,)
    assert np.all(price[:32] == 0.3) and np.all(price[32:72] == 1.2) and np.all(price[72:] == 0.7)
    assert price.mean() == pytest.approx((8 * 0.3 + 10 * 1.2 + 6 * 0.7) / 24)
