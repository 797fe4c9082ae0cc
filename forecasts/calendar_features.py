"""Calendar features and lag look-ups on a regular time grid, shared by the forecasters.

Positions are integer indices on a series' grid. A *row* pairs a target position ``j`` with
``known_end``, the number of leading values the forecaster may read (data strictly before the
issue time): every look-up at a position at or after ``known_end`` returns NaN, so training
rows and live predictions are built by the same code and neither can read the future.

Local time is the time zone of the grid's start (the edge uses Asia/Shanghai, which has no
daylight saving time; across a DST change the time of day would drift by the shift).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from vpp.park.calendar import day_type, is_workday
from vpp.park.model import DayType, ParkCalendar

# Day kinds as numbers for the models.
KIND_WORKDAY = 0
KIND_WEEKEND = 1
KIND_HOLIDAY = 2
KIND_WORKING_WEEKEND = 3


@functools.lru_cache(maxsize=8192)
def day_kind(d: date, calendar: ParkCalendar | None = None) -> int:
    """0 workday, 1 ordinary weekend, 2 public holiday, 3 working weekend (调休 workday);
    ``calendar``: the park's own holidays and make-up days, which take precedence."""
    if is_workday(d, calendar):
        return KIND_WORKING_WEEKEND if d.weekday() >= 5 else KIND_WORKDAY
    return KIND_HOLIDAY if day_type(d, calendar) == DayType.HOLIDAY else KIND_WEEKEND


@dataclass(frozen=True)
class Grid:
    """Where position 0 of a series sits in local time, and how many steps make a day."""

    start: datetime
    step: timedelta
    calendar: ParkCalendar | None = None  # the park's own holidays (None: the package's)

    @property
    def steps_per_day(self) -> int:
        spd = timedelta(days=1) / self.step
        if abs(spd - round(spd)) > 1e-9:
            raise ValueError(f"step {self.step} does not divide a day")
        return round(spd)

    @property
    def slot0(self) -> int:
        """Slot of day (0..steps_per_day-1) of position 0."""
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        return int((self.start - midnight) // self.step)

    def day_index(self, pos: np.ndarray) -> np.ndarray:
        """Day number (0 = the local day of position 0) of each position."""
        return (np.asarray(pos) + self.slot0) // self.steps_per_day

    def slot(self, pos: np.ndarray) -> np.ndarray:
        return (np.asarray(pos) + self.slot0) % self.steps_per_day

    def position_of(self, t: datetime) -> int:
        """Position of the interval starting at ``t`` (must lie on the grid)."""
        k = (t - self.start) / self.step
        if abs(k - round(k)) > 1e-9:
            raise ValueError(
                f"{t.isoformat()} is not on the grid {self.start.isoformat()} + k * {self.step}"
            )
        return round(k)

    def day_kinds(self, first_day: int, n_days: int) -> np.ndarray:
        """:func:`day_kind` of days ``first_day .. first_day + n_days - 1``."""
        d0 = self.start.date() + timedelta(days=first_day)
        cal = self.calendar
        return np.array([day_kind(d0 + timedelta(days=i), cal) for i in range(n_days)], dtype=int)

    def day_of_year(self, first_day: int, n_days: int) -> np.ndarray:
        d0 = self.start.date() + timedelta(days=first_day)
        return np.array(
            [(d0 + timedelta(days=i)).timetuple().tm_yday for i in range(n_days)], dtype=float
        )


def lookup(values: np.ndarray, pos: np.ndarray, known_end: np.ndarray) -> np.ndarray:
    """``values[pos]`` where ``0 <= pos < known_end`` (and inside ``values``), NaN elsewhere."""
    pos = np.asarray(pos)
    ok = (pos >= 0) & (pos < known_end) & (pos < len(values))
    out = np.full(pos.shape, np.nan)
    out[ok] = values[pos[ok]]
    return out


def recent_mean(values: np.ndarray, known_end: np.ndarray, width: int) -> np.ndarray:
    """Mean of the finite values among the last ``width`` before each ``known_end`` (NaN when
    there are none), by cumulative sums."""
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    hi = np.clip(np.asarray(known_end), 0, len(values))
    lo = np.clip(hi - width, 0, len(values))
    n = counts[hi] - counts[lo]
    return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def same_kind_days(kinds: np.ndarray, issue_day: np.ndarray, target_day: np.ndarray, depth: int):
    """For each row, the ``depth`` most recent days before ``issue_day`` whose kind matches the
    target day's (workday-like kinds 0 and 3 match each other, rest days 1 and 2 match each
    other). Returns an int array (depth, rows); -1 where no such day exists.

    ``kinds`` covers days ``0 .. len(kinds)-1`` of the grid.
    """
    rest = np.isin(kinds, (KIND_WEEKEND, KIND_HOLIDAY))
    n_days = len(kinds)
    # prev[f][d]: last day < d with rest flag f (-1 if none).
    prev = np.full((2, n_days + 1), -1, dtype=int)
    for f in (0, 1):
        last = -1
        for d in range(n_days + 1):
            prev[f, d] = last
            if d < n_days and rest[d] == bool(f):
                last = d
    t_flag = rest[np.clip(target_day, 0, n_days - 1)].astype(int)
    out = np.full((depth, len(issue_day)), -1, dtype=int)
    cur = np.clip(issue_day, 0, n_days)
    for k in range(depth):
        cur = np.where(cur >= 0, prev[t_flag, np.clip(cur, 0, n_days)], -1)
        out[k] = cur
    return out
