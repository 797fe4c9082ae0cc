"""The checks a :class:`vpp.park.model.Tariff` must pass when it is read
(:mod:`vpp.park.config`): each problem is one ``field.path: message`` line.

- tiers: the default tier is a tier, prices and the demand charge are not negative;
- seasons: every month 1-12 belongs to exactly one season;
- schedules: every season has a workday schedule (the fallback of every other day type), and
  every day type's schedule covers the 24 hours exactly once: a gap would be priced at the
  default tier without a word, an overlap by whichever period comes first. Each period ends
  after it starts on whole minutes (a period across midnight is written as two: 22:00-00:00
  and 00:00-06:00); a tier a period names exists; a weekend schedule is not ignored;
- validity: ``valid_to`` is not before ``valid_from``.

The dates a command plans against ``valid_from .. valid_to`` are checked by
:mod:`vpp.park.coverage`.
"""

from __future__ import annotations

from collections.abc import Iterable

from vpp.park import model as m
from vpp.park.tariff import hhmm, period_minutes, schedule_coverage


def _ranges(runs: list[tuple[int, int]]) -> str:
    return ", ".join(f"{hhmm(a)}-{hhmm(b)}" for a, b in runs)


def _period_problems(t: m.Tariff, periods: tuple[m.TariffPeriod, ...], p: str) -> Iterable[str]:
    for j, per in enumerate(periods):
        if per.tier not in t.tiers_cny_per_kwh:
            yield (
                f"{p}[{j}].tier: unknown tier {per.tier!r}; tiers are {sorted(t.tiers_cny_per_kwh)}"
            )
        if any(x.second or x.microsecond for x in (per.start, per.end)):
            yield f"{p}[{j}]: start and end must be whole minutes, got {per.start}-{per.end}"
        start, end = period_minutes(per)
        if end <= start:
            yield (
                f"{p}[{j}]: must end after it starts (00:00 as an end is 24:00), got "
                f"{hhmm(start)}-{per.end:%H:%M}; write a period across midnight as two "
                f"(e.g. 22:00-00:00 and 00:00-06:00)"
            )


def schedule_problems(t: m.Tariff, s: m.TariffSeason, p: str) -> Iterable[str]:
    """One season's schedules (``p``: the season's field path, e.g. ``seasons[0]``)."""
    if m.DayType.WORKDAY not in s.schedules:
        yield (
            f"{p}.schedules.workday: season {s.name!r} has no workday schedule (every day "
            f"type without a schedule of its own uses it)"
        )
    if m.DayType.WEEKEND in s.schedules and t.weekend_as is not m.DayType.WEEKEND:
        yield (
            f"{p}.schedules.weekend: never used: weekend_as is {t.weekend_as.value!r} (set "
            f"weekend_as: weekend to price weekends by it, or remove it)"
        )
    for dt, periods in s.schedules.items():
        where = f"{p}.schedules.{dt.value}"
        yield from _period_problems(t, periods, where)
        missing, doubled = schedule_coverage(periods)
        head = f"{where}: season {s.name!r}, {dt.value}"
        if missing:
            yield (
                f"{head}: {_ranges(missing)} covered by no period (every day type must cover "
                f"the 24 hours exactly once)"
            )
        if doubled:
            yield (
                f"{head}: {_ranges(doubled)} covered by more than one period (every day type "
                f"must cover the 24 hours exactly once)"
            )


def tariff_problems(t: m.Tariff, p: str) -> Iterable[str]:
    """Every problem of tariff ``t`` (``p``: the field-path prefix, e.g. ``"tariff."``)."""
    if t.default_tier not in t.tiers_cny_per_kwh:
        tiers = sorted(t.tiers_cny_per_kwh)
        yield f"{p}default_tier: {t.default_tier!r} is not a tier; tiers are {tiers}"
    for tier, price in t.tiers_cny_per_kwh.items():
        if price < 0:
            yield f"{p}tiers_cny_per_kwh.{tier}: must be >= 0, got {price:g}"
    if t.demand_charge_cny_per_kw_month < 0:
        yield (
            f"{p}demand_charge_cny_per_kw_month: must be >= 0, got "
            f"{t.demand_charge_cny_per_kw_month:g}"
        )
    if t.valid_from is not None and t.valid_to is not None and t.valid_to < t.valid_from:
        yield f"{p}valid_to: must not be before valid_from ({t.valid_from}), got {t.valid_to}"
    months: dict[int, str] = {}
    for i, s in enumerate(t.seasons):
        for mo in s.months:
            if not 1 <= mo <= 12:
                yield f"{p}seasons[{i}].months: {mo} is not a month (1-12)"
            elif mo in months:
                yield f"{p}seasons[{i}].months: month {mo} is already in season {months[mo]!r}"
            months[mo] = s.name
        yield from schedule_problems(t, s, f"{p}seasons[{i}]")
    missing = sorted(set(range(1, 13)) - set(months))
    if missing:
        yield f"{p}seasons: months {missing} belong to no season"
