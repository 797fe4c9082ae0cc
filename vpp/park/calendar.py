"""China's working calendar: public holidays and the working weekends around them.

Backed by the ``chinese_calendar`` package (official State Council schedules) and, for the
years the package does not know yet, by the park's own :class:`vpp.park.model.ParkCalendar`
(``calendar: {holidays: [...], workdays: [...]}`` in the park file). A date the park lists
takes precedence over the package. Outside the years either knows, weekends count as rest
days and weekdays as workdays: :func:`calendar_known` and :func:`unknown_years` say so, and the
commands refuse such dates unless told otherwise (:mod:`vpp.park.coverage`).

Every function takes the park's calendar as data (``None``: the package alone), so the
forecasters and the tariff stay pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import chinese_calendar
from chinese_calendar.constants import holidays as _package_holidays

from vpp.park.model import DayType, ParkCalendar

# The years the package's official schedules cover (read from its data, not hard-coded).
PACKAGE_FIRST_YEAR: int = min(_package_holidays).year
PACKAGE_LAST_YEAR: int = max(_package_holidays).year


def statutory_holiday_days(year: int) -> int:
    """Days of public holiday the State Council's rules give in ``year``.

    13 from 2025 (the 2024 revision added a day to Spring Festival and to Labour Day),
    11 from 2008 to 2024, 10 before. A park-supplied year must list at least this many rest
    days (the holiday blocks, weekends inside them included, are longer: 22 to 33 a year in
    the package's data).
    """
    if year >= 2025:
        return 13
    return 11 if year >= 2008 else 10


def package_knows(year: int) -> bool:
    """True when the ``chinese_calendar`` package has the official schedule of ``year``."""
    return PACKAGE_FIRST_YEAR <= year <= PACKAGE_LAST_YEAR


def calendar_known(d: date, calendar: ParkCalendar | None = None) -> bool:
    """True when the holiday schedule for ``d``'s year is known (package or park)."""
    return package_knows(d.year) or (calendar is not None and d.year in calendar.years())


def unknown_years(first: date, last: date, calendar: ParkCalendar | None = None) -> list[int]:
    """The years of ``first .. last`` (inclusive) whose holiday schedule nobody knows."""
    return [
        y for y in range(first.year, last.year + 1) if not calendar_known(date(y, 1, 1), calendar)
    ]


@lru_cache(maxsize=4096)  # called per interval by profiles and tariffs: days repeat
def _package_workday(d: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:
        return d.weekday() < 5


@lru_cache(maxsize=4096)
def _package_day_type(d: date) -> DayType:
    try:
        holiday, name = chinese_calendar.get_holiday_detail(d)
    except NotImplementedError:
        return DayType.WORKDAY if d.weekday() < 5 else DayType.WEEKEND
    if not holiday:
        return DayType.WORKDAY
    return DayType.HOLIDAY if name is not None else DayType.WEEKEND


def is_workday(d: date, calendar: ParkCalendar | None = None) -> bool:
    """Official working day (includes working weekends, excludes public holidays).

    Parameters
    ----------
    d : the local date.
    calendar : the park's own holidays and make-up working days (take precedence), or None.
    """
    if calendar is not None:
        if d in calendar.holidays:
            return False
        if d in calendar.workdays:
            return True
    return _package_workday(d)


def day_type(d: date, calendar: ParkCalendar | None = None) -> DayType:
    """WORKDAY, WEEKEND (an ordinary Saturday or Sunday) or HOLIDAY (a public holiday).

    Parameters
    ----------
    d : the local date.
    calendar : the park's own holidays and make-up working days (take precedence), or None.
    """
    if calendar is not None:
        if d in calendar.holidays:
            return DayType.HOLIDAY
        if d in calendar.workdays:
            return DayType.WORKDAY
    return _package_day_type(d)


def park_calendar_problems(c: ParkCalendar, p: str = "calendar.") -> Iterable[str]:
    """Problems of a park-supplied calendar, one ``field.path: message`` line each.

    A date listed twice or as both holiday and working day; a make-up working day that is not
    a Saturday or Sunday (a weekday is a working day already); a year the package does not
    know with fewer holidays than the year's statutory days (:func:`statutory_holiday_days`:
    a year listed in part would plan its other holidays as working days).
    """
    for name, days in (("holidays", c.holidays), ("workdays", c.workdays)):
        seen: set[date] = set()
        for i, d in enumerate(days):
            if d in seen:
                yield f"{p}{name}[{i}]: {d} is listed twice"
            seen.add(d)
    both = sorted(set(c.holidays) & set(c.workdays))
    if both:
        yield f"{p}workdays: {', '.join(map(str, both))} also listed in holidays"
    for i, d in enumerate(c.workdays):
        if d.weekday() < 5:
            yield (
                f"{p}workdays[{i}]: {d} is a {d:%A}; a make-up working day is a Saturday or "
                f"Sunday worked in exchange for a holiday"
            )
    for year in sorted(c.years()):
        n = len({d for d in c.holidays if d.year == year})
        need = statutory_holiday_days(year)
        if not package_knows(year) and n < need:
            yield (
                f"{p}holidays: {year} lists {n} days; a year the park supplies must list every "
                f"rest day of its public holidays, at least the {need} statutory days"
            )
