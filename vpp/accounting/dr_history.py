"""GB/T 37016-style DR baselines over any horizon, from the park meter's daily history.

One object for the planner and the settlement alike, so that the plan's expected delivery
and the settlement measure an event against the same baseline method
(:data:`vpp.accounting.dr_baseline.METHOD`): the closed-loop simulation feeds it the days its
park meter recorded, the service the days stored in its database.

A day's baseline is fixed from the complete days before it (:func:`baseline_for_day`) and
kept; ``on(horizon)`` raises ``ValueError`` when a day of the horizon has no similar day to
stand on (the caller then plans on another baseline and labels it so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from vpp.accounting.dr_baseline import baseline_for_day, event_days
from vpp.park.model import DemandResponseEvent, Horizon


class DailyBaselines:
    """Baselines of the park's import (kW) from its metered daily history.

    Parameters
    ----------
    tz : the park's time zone (days are local).
    step : the metering interval; a day holds a whole number of them.
    events : the DR events whose days are no baseline days and whose windows set the window
        of the "highest-load" ranking.
    is_workday : the working calendar.
    """

    def __init__(
        self,
        tz: str,
        step: timedelta,
        events: Iterable[DemandResponseEvent],
        is_workday: Callable[[date], bool],
    ):
        self.tz = ZoneInfo(tz)
        self.step = step
        self.spd = round(timedelta(days=1) / step)
        self.events = tuple(events)
        self.excluded = event_days(self.events, self.tz)
        self.is_workday = is_workday
        self.daily: dict[date, np.ndarray] = {}
        self._cache: dict[date, np.ndarray] = {}

    def add_day(self, d: date, import_kw: np.ndarray) -> None:
        """A complete local day of metered import (``spd`` values, kW)."""
        self.daily[d] = np.asarray(import_kw, dtype=float)

    def add_meter(self, start: datetime, meter_kw: np.ndarray) -> None:
        """Every complete day of a meter series that starts at local midnight ``start``
        (NaN = no reading: a day with any is left out)."""
        for i in range(len(meter_kw) // self.spd):
            day = np.asarray(meter_kw[i * self.spd : (i + 1) * self.spd], dtype=float)
            if np.isfinite(day).all():
                self.add_day(start.astimezone(self.tz).date() + timedelta(days=i), day)

    def _window(self, d: date) -> slice:
        ks = []
        midnight = datetime.combine(d, datetime.min.time(), tzinfo=self.tz)
        for e in self.events:
            for w in e.windows:
                a = round((w.start - midnight) / self.step)
                b = round((w.end - midnight) / self.step)
                if b > 0 and a < self.spd:
                    ks += [max(a, 0), min(b, self.spd)]
        return slice(min(ks), max(ks)) if ks else slice(0, self.spd)

    def day(self, d: date) -> np.ndarray:
        """The baseline of local day ``d`` (kW per interval); ValueError without history."""
        if d not in self._cache:
            hist = {x: v for x, v in self.daily.items() if x < d}
            b = baseline_for_day(d, hist, self._window(d), self.is_workday, self.excluded)
            self._cache[d] = b.p_kw
        return self._cache[d]

    def on(self, horizon: Horizon) -> np.ndarray:
        """The baseline over ``horizon`` (kW per interval)."""
        local = horizon.start.astimezone(self.tz)
        d0 = local.date()
        k0 = round((local - datetime.combine(d0, datetime.min.time(), tzinfo=self.tz)) / self.step)
        n_days = (k0 + horizon.n + self.spd - 1) // self.spd
        arr = np.concatenate([self.day(d0 + timedelta(days=i)) for i in range(n_days)])
        return arr[k0 : k0 + horizon.n]
