"""Does the park's data cover the days a command plans or simulates?

Three questions, each answered by one line a person can act on (or None when all is well):

- :func:`tariff_problem`: a day outside the tariff's ``valid_from .. valid_to``;
- :func:`calendar_problem`: a day in a year whose public holidays neither the
  ``chinese_calendar`` package nor the park's ``calendar:`` knows (Spring Festival would be
  planned as ordinary working days);
- :func:`series_problems`: a *required* price or emission-factor series that does not cover
  the run (no opt-out).

The commands (``vpp simulate``, ``compare``, ``dispatch``, ``run``, ``carbon report``) stop
on them unless the user passes ``--allow-outside-tariff`` / ``--allow-unknown-calendar``.
Pure: dates in, text out.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from vpp.park.calendar import PACKAGE_FIRST_YEAR, PACKAGE_LAST_YEAR, unknown_years
from vpp.park.carbon_factors import series_ef_kg_per_kwh
from vpp.park.model import Horizon, Site
from vpp.park.series import SeriesMissingError
from vpp.park.tariff import days_outside_validity, series_prices_cny_per_kwh, validity_text


def _label(path: str) -> str:
    parts = Path(path).parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else path


def planned_days(site: Site, start: datetime, end: datetime) -> tuple[date, date]:
    """First and last local day a run over ``[start, end)`` prices: the run plus the look-ahead
    of its last plan (``dispatch.horizon_steps`` x ``dispatch.step_minutes``)."""
    look = timedelta(minutes=site.dispatch.step_minutes * site.dispatch.horizon_steps)
    last = end + look - timedelta(microseconds=1)
    return start.date(), last.date()


def tariff_problem(site: Site, first: date, last: date) -> str | None:
    """One line when a day of ``first .. last`` lies outside the validity of the tariff (the
    site's, else the first tenant meter's of ``metering.meters`` that has its own)."""
    tariffs = [("tariff", site.tariff)]
    tariffs += [
        (f"metering.meters[{i}].tariff", x.tariff)
        for i, x in enumerate(site.metering.meters)
        if x.tariff is not None
    ]
    found = [(f, t, b) for f, t in tariffs if (b := days_outside_validity(t, first, last))]
    if not found:
        return None
    field, t, bad = found[0]
    where = _label(t.source_file) if t.source_file else f"{_label(site.source_file)}: {field}"
    span = bad[0].isoformat() if bad[0] == bad[1] else f"{bad[0]} .. {bad[1]}"
    return (
        f"{where}: tariff {t.name!r} is {validity_text(t)}; the days planned "
        f"({first} .. {last}) include {span} outside it"
    )


def calendar_problem(site: Site, first: date, last: date) -> str | None:
    """One line when a day of ``first .. last`` falls in a year nobody's calendar knows."""
    years = unknown_years(first, last, site.calendar)
    if not years:
        return None
    park = sorted(site.calendar.years())
    own = ", ".join(map(str, park)) if park else "none"
    shown = ", ".join(map(str, years))
    return (
        f"{_label(site.source_file)}: calendar: no public holidays known for {shown} (the days "
        f"planned are {first} .. {last}; chinese-calendar knows {PACKAGE_FIRST_YEAR}-"
        f"{PACKAGE_LAST_YEAR}, the park's calendar.holidays: {own}); Spring Festival and the "
        f"other holidays of {shown} would be planned as ordinary days: add them "
        f"(calendar.holidays, calendar.workdays) to the park file"
    )


def first_uncovered_day(site: Site, day: date) -> date:
    """The first day on or after ``day`` that a tariff (the site's or a tenant meter's) or
    the calendar does not cover (the calendar always ends somewhere), for a service's
    warning at start."""
    out: list[date] = []
    # The site's tariff and every tenant meter's own (a meter's out of validity is priced
    # wrongly too: tariff_problem names it at the first plan, this for the days after).
    for t in [site.tariff, *(x.tariff for x in site.metering.meters if x.tariff is not None)]:
        if t.valid_to is not None:
            out.append(max(day, t.valid_to + timedelta(days=1)))
        if t.valid_from is not None and day < t.valid_from:
            out.append(day)
    y = day.year
    while not unknown_years(date(y, 1, 1), date(y, 1, 1), site.calendar):
        y += 1
    out.append(max(day, date(y, 1, 1)))
    return min(out)


def series_problems(site: Site, start: datetime, end: datetime) -> list[str]:
    """A line for each *required* series (the tariff's energy series, the emission-factor
    series) that does not cover a run over ``[start, end)`` and its last plan's look-ahead,
    every forecast row counted as known (:mod:`vpp.park.series`); no opt-out: the park file
    says the series is required."""
    step = timedelta(minutes=site.dispatch.step_minutes)
    look = step * site.dispatch.horizon_steps
    n = max(round((end + look - start) / step), 1)
    h = Horizon(start, step, n)
    later = start + n * step
    out = []
    for check in (
        lambda: series_prices_cny_per_kwh(site.tariff, h, later, site.calendar),
        lambda: series_ef_kg_per_kwh(site.carbon, h, later),
    ):
        try:
            check()
        except SeriesMissingError as exc:
            out.append(f"{_label(site.source_file)}: {exc}")
    return out
