"""China's working calendar: public holidays and the working weekends around them.

Backed by the ``chinese_calendar`` package (official State Council schedules). Outside the
years it knows, weekends count as rest days and weekdays as workdays, and
:func:`calendar_known` says so.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import chinese_calendar

from vpp.park.model import DayType


def calendar_known(d: date) -> bool:
    """True when the official holiday schedule for ``d``'s year is known."""
    try:
        chinese_calendar.is_workday(d)
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=4096)  # called per interval by profiles and tariffs: days repeat
def is_workday(d: date) -> bool:
    """Official working day (includes working weekends, excludes public holidays)."""
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:
        return d.weekday() < 5


@lru_cache(maxsize=4096)
def day_type(d: date) -> DayType:
    """WORKDAY, WEEKEND (an ordinary Saturday or Sunday) or HOLIDAY (a public holiday)."""
    try:
        holiday, name = chinese_calendar.get_holiday_detail(d)
    except NotImplementedError:
        return DayType.WORKDAY if d.weekday() < 5 else DayType.WEEKEND
    if not holiday:
        return DayType.WORKDAY
    return DayType.HOLIDAY if name is not None else DayType.WEEKEND
