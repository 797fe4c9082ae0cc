"""Bad tariffs and calendars never reach a plan: gaps and overlaps in a day's schedule, days
outside a tariff's validity, years whose public holidays nobody knows, and the park's own
holidays for those years (no I/O: model objects in, problems out)."""

import argparse
import dataclasses
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.errors import UserError
from vpp.park.calendar import (
    PACKAGE_LAST_YEAR,
    calendar_known,
    day_type,
    is_workday,
    park_calendar_problems,
    unknown_years,
)
from vpp.park.coverage import calendar_problem, first_uncovered_day, planned_days, tariff_problem
from vpp.park.model import DayType, Horizon, ParkCalendar, Tariff, TariffPeriod, TariffSeason
from vpp.park.tariff import days_outside_validity, import_price_cny_per_kwh, tier_at
from vpp.park.tariff_checks import tariff_problems

TZ = ZoneInfo("Asia/Shanghai")
P = TariffPeriod

# Spring Festival 2027 (Lunar New Year: 2027-02-06), as a park would write it before the
# package knows 2027: every rest day of the seven holidays, and two make-up Saturdays.
HOLIDAYS_2027 = (
    [date(2027, 1, 1)]
    + [date(2027, 2, 5) + timedelta(days=k) for k in range(9)]
    + [date(2027, 4, 5), date(2027, 5, 1), date(2027, 5, 2), date(2027, 5, 3)]
    + [date(2027, 6, 9), date(2027, 9, 15)]
    + [date(2027, 10, 1) + timedelta(days=k) for k in range(7)]
)
PARK_2027 = ParkCalendar(holidays=tuple(HOLIDAYS_2027), workdays=(date(2027, 2, 20),))


def _work() -> tuple[TariffPeriod, ...]:
    return (
        P(time(0), time(8), "valley"),
        P(time(8), time(12), "peak"),
        P(time(12), time(14), "flat"),
        P(time(14), time(15), "peak"),
        P(time(15), time(0), "flat"),
    )


def _tariff(work=None, **kw) -> Tariff:
    hol = (
        P(time(0), time(9), "valley"),
        P(time(9), time(15), "deep"),
        P(time(15), time(0), "flat"),
    )
    return Tariff(
        name="t",
        tiers_cny_per_kwh={"valley": 0.3, "peak": 1.2, "flat": 0.7, "deep": 0.1},
        seasons=(
            TariffSeason(
                "all",
                tuple(range(1, 13)),
                {DayType.WORKDAY: work or _work(), DayType.HOLIDAY: hol},
            ),
        ),
        default_tier="flat",
        **kw,
    )


def test_a_complete_tariff_has_no_problems():
    assert list(tariff_problems(_tariff(), "tariff.")) == []


def test_a_gap_names_the_season_the_day_type_and_the_hours():
    """With the 00:00-08:00 valley removed, the night was priced at the default tier."""
    problems = list(tariff_problems(_tariff(_work()[1:]), "tariff."))
    assert problems == [
        "tariff.seasons[0].schedules.workday: season 'all', workday: 00:00-08:00 covered by "
        "no period (every day type must cover the 24 hours exactly once)"
    ]


def test_an_overlap_names_the_doubled_hours():
    """A 12:00-15:00 valley laid over the 14:00-15:00 peak: the first match won."""
    work = (*_work()[:2], P(time(12), time(15), "valley"), *_work()[3:])
    problems = list(tariff_problems(_tariff(work), "tariff."))
    assert len(problems) == 1
    assert "season 'all', workday: 14:00-15:00 covered by more than one period" in problems[0]


def test_a_period_across_midnight_must_be_written_as_two():
    work = (P(time(8), time(22), "peak"), P(time(22), time(8), "valley"))
    problems = list(tariff_problems(_tariff(work), ""))
    assert any("schedules.workday[1]: must end after it starts" in p for p in problems)
    assert any("00:00-08:00, 22:00-24:00 covered by no period" in p for p in problems)


def test_months_cover_the_year_once():
    t = _tariff()
    s = t.seasons[0]
    twice = dataclasses.replace(t, seasons=(s, dataclasses.replace(s, name="again", months=(3,))))
    assert "seasons[1].months: month 3 is already in season 'all'" in list(
        tariff_problems(twice, "")
    )
    short = dataclasses.replace(t, seasons=(dataclasses.replace(s, months=(1, 2, 3)),))
    assert f"seasons: months {list(range(4, 13))} belong to no season" in list(
        tariff_problems(short, "")
    )


def test_season_without_workday_schedule_and_ignored_weekend_schedule():
    t = _tariff()
    s = dataclasses.replace(
        t.seasons[0], schedules={DayType.WEEKEND: _work(), DayType.HOLIDAY: _work()}
    )
    problems = list(tariff_problems(dataclasses.replace(t, seasons=(s,)), ""))
    assert any("schedules.workday: season 'all' has no workday schedule" in p for p in problems)
    assert any("schedules.weekend: never used: weekend_as is 'workday'" in p for p in problems)


def test_validity_bounds():
    t = _tariff(valid_from=date(2026, 7, 1), valid_to=date(2026, 12, 31))
    assert days_outside_validity(t, date(2026, 7, 1), date(2026, 12, 31)) is None
    assert days_outside_validity(t, date(2025, 1, 1), date(2025, 1, 8)) == (
        date(2025, 1, 1),
        date(2025, 1, 8),
    )
    assert days_outside_validity(t, date(2026, 6, 29), date(2026, 7, 3)) == (
        date(2026, 6, 29),
        date(2026, 6, 30),
    )
    assert days_outside_validity(t, date(2026, 12, 30), date(2027, 1, 2)) == (
        date(2027, 1, 1),
        date(2027, 1, 2),
    )
    backwards = _tariff(valid_from=date(2026, 7, 1), valid_to=date(2026, 6, 1))
    assert list(tariff_problems(backwards, "")) == [
        "valid_to: must not be before valid_from (2026-07-01), got 2026-06-01"
    ]


def test_calendar_coverage_is_known_from_the_package_and_the_park():
    assert calendar_known(date(PACKAGE_LAST_YEAR, 12, 31))
    assert not calendar_known(date(PACKAGE_LAST_YEAR + 1, 1, 1))
    assert unknown_years(date(2026, 12, 1), date(2028, 1, 2)) == [2027, 2028]
    assert unknown_years(date(2026, 12, 1), date(2028, 1, 2), PARK_2027) == [2028]


def test_park_holidays_make_spring_festival_a_holiday_in_a_year_the_package_lacks():
    d = date(2027, 2, 8)  # a Monday of Spring Festival 2027
    assert day_type(d) is DayType.WORKDAY and is_workday(d)  # the package alone: a workday
    assert day_type(d, PARK_2027) is DayType.HOLIDAY and not is_workday(d, PARK_2027)
    sat = date(2027, 2, 20)  # a make-up working Saturday
    assert day_type(sat) is DayType.WEEKEND
    assert day_type(sat, PARK_2027) is DayType.WORKDAY and is_workday(sat, PARK_2027)
    t = _tariff()
    at = datetime(2027, 2, 8, 10, 0, tzinfo=TZ)
    assert tier_at(t, at) == "peak"
    assert tier_at(t, at, PARK_2027) == "deep"
    h = Horizon(datetime(2027, 2, 8, tzinfo=TZ), timedelta(hours=1), 24)
    price = import_price_cny_per_kwh(t, h, PARK_2027)
    assert np.all(price[9:15] == 0.1)


def test_park_calendar_problems():
    assert list(park_calendar_problems(PARK_2027)) == []
    bad = ParkCalendar(
        holidays=(date(2027, 2, 8), date(2027, 2, 8)),
        workdays=(date(2027, 2, 8), date(2027, 2, 10)),
    )
    problems = list(park_calendar_problems(bad))
    assert "calendar.holidays[1]: 2027-02-08 is listed twice" in problems
    assert "calendar.workdays: 2027-02-08 also listed in holidays" in problems
    assert any(p.startswith("calendar.workdays[1]: 2027-02-10 is a Wednesday") for p in problems)
    assert any(
        "calendar.holidays: 2027 lists 1 days" in p and "13 statutory" in p for p in problems
    )


def _site(tariff: Tariff, calendar: ParkCalendar | None = None):
    from tests.unit.test_sim_site import tiny_site

    site = tiny_site()
    cal = calendar or ParkCalendar()
    return dataclasses.replace(site, tariff=tariff, calendar=cal, source_file="parks/p.yaml")


def test_problem_lines_name_file_days_and_validity():
    t = _tariff(valid_from=date(2026, 7, 1), source_file="configs/tariffs/zhejiang_2026.yaml")
    site = _site(t)
    line = tariff_problem(site, date(2025, 1, 1), date(2025, 1, 8))
    assert line == (
        "tariffs/zhejiang_2026.yaml: tariff 't' is valid 2026-07-01 .. (open-ended); the days "
        "planned (2025-01-01 .. 2025-01-08) include 2025-01-01 .. 2025-01-08 outside it"
    )
    assert tariff_problem(site, date(2026, 7, 1), date(2026, 7, 8)) is None
    line = calendar_problem(site, date(2027, 1, 30), date(2027, 2, 10))
    assert line is not None and line.startswith("parks/p.yaml: calendar: no public holidays known")
    assert "2027" in line and "Spring Festival" in line
    assert calendar_problem(_site(t, PARK_2027), date(2027, 1, 30), date(2027, 2, 10)) is None


def test_the_look_ahead_of_the_last_plan_counts():
    site = _site(_tariff())
    start = datetime(2026, 12, 30, tzinfo=TZ)
    first, last = planned_days(site, start, start + timedelta(days=2))
    horizon = site.dispatch.horizon_steps * site.dispatch.step_minutes
    assert first == date(2026, 12, 30)
    assert last == (start + timedelta(days=2, minutes=horizon - 1)).date()
    assert first_uncovered_day(site, date(2026, 12, 1)) == date(PACKAGE_LAST_YEAR + 1, 1, 1)


def test_commands_stop_with_one_line_unless_allowed(capsys):
    from vpp.commands.day_checks import check_days

    site = _site(_tariff(valid_from=date(2026, 7, 1)))
    args = argparse.Namespace(allow_outside_tariff=False, allow_unknown_calendar=False)
    with pytest.raises(UserError) as exc:
        check_days(site, date(2025, 1, 1), date(2025, 1, 2), args)
    assert str(exc.value).count("\n") == 0
    assert "pass --allow-outside-tariff" in str(exc.value)
    with pytest.raises(UserError, match="pass --allow-unknown-calendar"):
        check_days(site, date(2027, 1, 1), date(2027, 1, 2), args)
    args.allow_outside_tariff = True
    warnings = check_days(site, date(2025, 1, 1), date(2025, 1, 2), args)
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "--allow-outside-tariff given" in capsys.readouterr().err
    # a command that prices nothing checks the calendar only
    assert check_days(site, date(2025, 1, 1), date(2025, 1, 2), argparse.Namespace(), False) == []


def test_the_service_warns_at_start_before_the_calendar_ends(caplog):
    from vpp.commands.run import COVERAGE_WARN_DAYS, check_service_days

    site = _site(_tariff())
    args = argparse.Namespace()
    end = date(PACKAGE_LAST_YEAR + 1, 1, 1)
    soon = datetime.combine(end - timedelta(days=COVERAGE_WARN_DAYS - 1), time(0), tzinfo=TZ)
    with caplog.at_level("WARNING"):
        assert check_service_days(site, soon, args) == end
    assert f"from {end}" in caplog.text and "calendar: no public holidays known" in caplog.text
    early = datetime.combine(end - timedelta(days=COVERAGE_WARN_DAYS + 5), time(0), tzinfo=TZ)
    assert check_service_days(site, early, args) is None
    with pytest.raises(UserError, match="--allow-unknown-calendar"):
        check_service_days(site, datetime.combine(end, time(0), tzinfo=TZ), args)
