"""Horizon arithmetic in UTC: across a daylight-saving change every interval is one real
step long, in Europe/Berlin's spring-forward and autumn-back nights (issue #21: four one-hour
intervals from 2022-03-27 00:00 spanned two real hours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpp.park.model import Horizon

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def test_spring_forward_four_hours_are_four_real_hours():
    h = Horizon(datetime(2022, 3, 27, 0, 0, tzinfo=BERLIN), HOUR, 4)
    utc = [t.astimezone(UTC) for t in h.times()]
    assert [t.hour for t in utc] == [23, 0, 1, 2]  # 23:00 UTC the day before, then each hour
    assert [t.hour for t in h.times()] == [0, 1, 3, 4]  # local: 02:00 does not exist
    assert all(b - a == HOUR for a, b in pairwise(utc))
    assert h.end.astimezone(UTC) - h.start.astimezone(UTC) == 4 * HOUR
    assert h.end.hour == 5 and h.end.tzinfo is BERLIN


def test_autumn_back_the_repeated_hour_is_two_intervals():
    h = Horizon(datetime(2022, 10, 30, 0, 0, tzinfo=BERLIN), HOUR, 5)
    local = h.times()
    assert [t.hour for t in local] == [0, 1, 2, 2, 3]  # 02:00 twice, CEST then CET
    assert [t.fold for t in local] == [0, 0, 0, 1, 0]
    assert len({t.astimezone(UTC) for t in local}) == 5


def test_index_of_counts_real_time():
    h = Horizon(datetime(2022, 3, 27, 0, 0, tzinfo=BERLIN), HOUR, 4)
    # 03:00 CEST is two real hours after 00:00 CET (01:00 CET, then the skipped hour).
    assert h.index_of(datetime(2022, 3, 27, 3, 0, tzinfo=BERLIN)) == 2
    assert h.index_of(datetime(2022, 3, 27, 1, 0, tzinfo=UTC)) == 2  # the same instant
    assert h.index_of(h.times()[3]) == 3
    assert h.shifted(2).start == h.times()[2]
    assert h.at(1) == h.times()[1]


@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(BERLIN)
    ),
    st.sampled_from([timedelta(minutes=5), timedelta(minutes=15), HOUR]),
    st.integers(1, 200),
)
def test_every_interval_is_one_real_step_and_index_of_inverts_times(start, step, n):
    h = Horizon(start, step, n)
    times = h.times()
    utc = [t.astimezone(UTC) for t in times]
    assert all(b - a == step for a, b in pairwise(utc))
    assert all(h.index_of(t) == k for k, t in enumerate(times))
    assert h.end.astimezone(UTC) == utc[0] + n * step


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "UTC"])
def test_no_daylight_saving_no_change(tz):
    """Where the zone has no DST, UTC arithmetic gives the wall-clock grid as before."""
    z = ZoneInfo(tz)
    h = Horizon(datetime(2026, 7, 15, 0, 0, tzinfo=z), timedelta(minutes=15), 96)
    assert h.times() == [h.start + k * h.step for k in range(96)]
