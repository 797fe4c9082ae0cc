"""A park's own holiday reaches every place that decides what kind of day it is: the
forecasters' calendar features, the measured-history forecaster, the profiles the simulated
park plays, the EV fleets' draws and the DR baselines. 15 July 2026 is a Wednesday the
package calls a working day; the park declares it a holiday."""

from __future__ import annotations

import dataclasses
import functools
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from forecasts.calendar_features import KIND_HOLIDAY, KIND_WORKDAY, Grid, day_kind
from tests.unit.test_sim_site import tiny_site
from vpp.park import profiles, sessions
from vpp.park.calendar import is_workday
from vpp.park.model import ParkCalendar
from vpp.plan.history_forecasters import NaiveModel

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 7, 15)
CAL = ParkCalendar(holidays=(DAY,))


def test_the_forecasters_calendar_features_see_it() -> None:
    assert (day_kind(DAY), day_kind(DAY, CAL)) == (KIND_WORKDAY, KIND_HOLIDAY)
    grid = Grid(datetime(2026, 7, 14, tzinfo=TZ), timedelta(minutes=15), CAL)
    assert list(grid.day_kinds(0, 3)) == [KIND_WORKDAY, KIND_HOLIDAY, KIND_WORKDAY]


def test_the_history_forecaster_sees_it() -> None:
    site = dataclasses.replace(tiny_site(), calendar=CAL)
    model = NaiveModel(site)
    assert model.calendar is CAL


def test_the_profiles_play_it_as_a_rest_day() -> None:
    ref = date(profiles.REFERENCE_YEAR, 1, 1) + timedelta(days=profiles.reference_day(DAY, CAL))
    assert ref.weekday() == 6  # a holiday plays as a Sunday
    plain = date(profiles.REFERENCE_YEAR, 1, 1) + timedelta(days=profiles.reference_day(DAY))
    assert plain.weekday() == DAY.weekday()


def test_a_workdays_only_fleet_stays_home() -> None:
    site = tiny_site()
    (fleet,) = site.ev_fleets
    fleet = dataclasses.replace(fleet, plug_in_prob=1.0, workdays_only=True)
    chargers = {c.name: c for c in site.assets.ev_chargers}
    assert sessions.sessions_for_day(fleet, chargers, DAY, "Asia/Shanghai", 0)
    assert sessions.sessions_for_day(fleet, chargers, DAY, "Asia/Shanghai", 0, CAL) == []


def test_the_dr_baselines_use_it() -> None:
    """Three weeks of history, workdays at 1,000 kW and rest days at 300 kW: the park's
    holiday is measured against rest days, the same date without the park calendar against
    workdays."""
    from vpp.accounting.dr_history import DailyBaselines

    step = timedelta(hours=1)
    with_cal = DailyBaselines(
        "Asia/Shanghai", step, (), functools.partial(is_workday, calendar=CAL)
    )
    without = DailyBaselines("Asia/Shanghai", step, (), is_workday)
    for back in range(1, 22):
        d = DAY - timedelta(days=back)
        kw = [1000.0 if is_workday(d) else 300.0] * 24
        with_cal.add_day(d, kw)
        without.add_day(d, kw)
    assert with_cal.day(DAY).max() == 300.0
    assert without.day(DAY).max() == 1000.0
