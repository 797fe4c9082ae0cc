"""The one validation path of DR events (vpp.park.dr_checks): each bound refuses what the
issue "Bad input never reaches a plan" found accepted, names the field, the bound and the
value, and lets a plain event through."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vpp.park.dr_checks import DrBaselineMethod, DrBounds, DrPark, event_problems, events_problems
from vpp.park.model import DemandResponseEvent, DrDirection, DrWindow

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 7, 15, 8, 0, tzinfo=TZ)
PARK = DrPark(import_max_kw=10_000.0, export_max_kw=2_000.0, step=timedelta(minutes=15))
AROUND_NOW = DrBounds(past=timedelta(days=1), ahead=timedelta(days=7))


def _event(**kw) -> DemandResponseEvent:
    start = NOW + timedelta(hours=6)
    base = dict(
        event_id="SG-ZJ-1",
        direction=DrDirection.PEAK_SHAVING,
        windows=(DrWindow(start, start + timedelta(hours=2)),),
        requested_kw=800.0,
        issuer="State Grid Zhejiang",
    )
    return DemandResponseEvent(**(base | kw))


def _win(start: datetime, length: timedelta) -> tuple[DrWindow, ...]:
    return (DrWindow(start, start + length),)


def _problems(e, bounds=AROUND_NOW, now=NOW) -> list[str]:
    return [str(p) for p in event_problems(e, PARK, bounds, now)]


def test_a_plain_event_passes():
    assert _problems(_event()) == []
    two = _event(windows=_win(NOW + timedelta(hours=2), timedelta(hours=1)))
    assert _problems(two) == []


@pytest.mark.parametrize(
    "fields, expected",
    [
        (  # the --dr file's window whose end is before its start
            {"windows": (DrWindow(NOW + timedelta(hours=8), NOW + timedelta(hours=6)),)},
            "windows[0].end: must be after start (2026-07-15T16:00:00+08:00), got "
            "2026-07-15T14:00:00+08:00",
        ),
        (
            {"requested_kw": -5.0},
            "requested_kw: must be in [0, 12000] kW (import_max_kw + export_max_kw), got -5",
        ),
        (
            {"requested_kw": 999_999.0},
            "requested_kw: must be in [0, 12000] kW (import_max_kw + export_max_kw), got 999999",
        ),
        (
            {"import_cap_kw": 50_000.0},
            "import_cap_kw: must be in [-2000, 10000] kW (-export_max_kw to import_max_kw of "
            "the connection), got 50000",
        ),
        (
            {"windows": _win(datetime(9999, 12, 31, 10, tzinfo=TZ), timedelta(hours=1))},
            "windows[0].start: must be in the years 2000-2099, got 9999-12-31T10:00:00+08:00",
        ),
        (
            {"windows": _win(datetime(2001, 7, 15, 14, tzinfo=TZ), timedelta(hours=1))},
            "windows[0].end: must be at most 1 day before now (2026-07-15T00:00:00+00:00), got "
            "2001-07-15T15:00:00+08:00",
        ),
        (
            {"windows": _win(NOW + timedelta(days=30), timedelta(hours=1))},
            "windows[0].start: must be at most 7 days after now (2026-07-15T00:00:00+00:00)",
        ),
        (
            {"windows": _win(NOW + timedelta(hours=1), timedelta(seconds=1))},
            "windows[0].end: the window must last at least 15 min (one dispatch step), got 1 s",
        ),
        (
            {"windows": _win(NOW + timedelta(hours=1), timedelta(days=31))},
            "windows[0].end: the window must last at most 24 h, got 744 h",
        ),
        (
            {
                "windows": (
                    DrWindow(NOW + timedelta(hours=1), NOW + timedelta(hours=3)),
                    DrWindow(NOW + timedelta(hours=2), NOW + timedelta(hours=4)),
                )
            },
            "windows[1].start: overlaps windows[0] (2026-07-15T09:00:00+08:00 to "
            "2026-07-15T11:00:00+08:00); the windows of one event must not overlap",
        ),
        (
            {"baseline_method": "<script>alert(1)</script>"},
            "baseline_method: must be one of ['gbt37016_5of10'], got '<script>alert(1)</script>'",
        ),
        (
            {"issuer": "State\x00Grid"},
            "issuer: must be printable text (no control or format characters: U+0000)",
        ),
        (
            {"issuer": "State Grid \u202egnaijehZ"},
            "issuer: must be printable text (no control or format characters: U+202E)",
        ),
        ({"event_id": "a b"}, "event_id: must be 1-100 characters of A-Z a-z 0-9 . _ : -"),
        (
            {"confirm_deadline": NOW + timedelta(hours=7)},
            "confirm_deadline: must not be after the first window's start",
        ),
        (
            {"price_cap_cny_per_mwh": 1000.0, "price_floor_cny_per_mwh": 2000.0},
            "price_floor_cny_per_mwh: must not exceed price_cap_cny_per_mwh (1000), got 2000",
        ),
        ({"effective_band_frac": (1.2, 0.8)}, "effective_band_frac: expected 0 <= low <= high"),
    ],
)
def test_each_bound_names_the_field_the_bound_and_the_value(fields, expected):
    problems = _problems(_event(**fields))
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_listed_not_only_the_first():
    e = _event(requested_kw=-1.0, issuer="\x00", baseline_method="x")
    assert len(_problems(e)) == 3


def test_duplicate_ids_and_ids_already_taken_by_the_park_file():
    a, b = _event(), _event()
    got = [str(p) for p in events_problems([a, b], PARK, taken={"X": "demo.yaml dr_events[0]"})]
    assert got == ["dr_events[1].event_id: is already used by dr_events[0], got 'SG-ZJ-1'"]
    got = events_problems([_event(event_id="X")], PARK, taken={"X": "demo.yaml dr_events[0]"})
    assert str(got[0]).endswith("is already used by demo.yaml dr_events[0], got 'X'")


def test_without_a_clock_the_window_range_is_not_checked_but_the_years_are():
    old = _event(windows=_win(datetime(2001, 7, 15, 14, tzinfo=TZ), timedelta(hours=1)))
    assert _problems(old, now=None) == []  # a scenario file may replay any year
    far = _event(windows=_win(datetime(9999, 12, 31, 10, tzinfo=TZ), timedelta(hours=1)))
    assert _problems(far, now=None)


def test_a_window_may_start_before_now_and_one_step_is_enough():
    e = _event(windows=_win(NOW - timedelta(hours=2), timedelta(minutes=15)))
    assert _problems(e) == []


def test_paths_split_into_api_locations():
    (p,) = event_problems(_event(requested_kw=-1.0), PARK, where="")
    assert p.parts() == ["requested_kw"]
    p = events_problems([_event(windows=_win(NOW, timedelta(seconds=1)))], PARK)[0]
    assert p.parts() == ["dr_events", 0, "windows", 0, "end"]


def test_the_baseline_methods_are_the_settlements():
    from vpp.accounting import dr_baseline

    assert {m.value for m in DrBaselineMethod} == {dr_baseline.METHOD}


def test_a_cap_only_event_may_request_nothing_else_must_request_something():
    assert _problems(_event(requested_kw=0.0, import_cap_kw=1500.0)) == []
    assert _problems(_event(requested_kw=0.0)) == [
        "requested_kw: must be > 0 (or give import_cap_kw or cleared_kw), got 0"
    ]
    assert _problems(replace(_event(), requested_kw=12_000.0)) == []
