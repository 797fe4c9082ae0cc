"""Each tenant sub-meter's month peak import so far, for the service's per-meter plan.

The driver reads the park meter's month peak; a sub-meter's comes from the stored readings of
the assets on its buses (:mod:`vpp.store.metered_buses`), read incrementally: each call reads
the intervals since the last call, the last complete one again (a late reading may still
arrive for it), and keeps the highest import per meter since the first of the month (park
time). An interval without a park-meter reading counts nothing. A service started mid-month
reads the month's stored days on its first cycle.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Engine

from vpp.accounting.tenants import meter_net_kw
from vpp.park.model import Horizon, Site
from vpp.store.metered_buses import read_buses


class MeterPeaks:
    """The month peak of every sub-meter of ``site`` (kW), as of the last complete interval."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.zone = ZoneInfo(site.location.tz)
        self.step = timedelta(minutes=site.dispatch.step_minutes)
        self._month: tuple[int, int] | None = None
        self._from: datetime | None = None  # the first interval the next call reads
        self.peaks_kw: dict[str, float] = {}

    def at(self, engine: Engine, at: datetime) -> dict[str, float]:
        """The peaks up to the interval before the one running at ``at``; {} without meters."""
        if not self.site.metering.meters:
            return {}
        local = at.astimezone(self.zone)
        month = (local.year, local.month)
        if month != self._month:
            self._month, self.peaks_kw = month, {}
            self._from = datetime.combine(local.date().replace(day=1), time(0), tzinfo=self.zone)
        end = _floor(at, self.step)
        n = round((end - self._from) / self.step)
        if n <= 0:
            return dict(self.peaks_kw)
        h = Horizon(self._from, self.step, n)
        with engine.connect() as conn:
            buses = read_buses(conn, self.site, h)
        for name, net in meter_net_kw(self.site, buses.bus_p_kw, n).items():
            top = float(np.max(np.where(buses.metered, net, 0.0), initial=0.0))
            self.peaks_kw[name] = max(self.peaks_kw.get(name, 0.0), top)
        self._from = h.at(n - 1)  # read the last complete interval again next time
        return dict(self.peaks_kw)


def _floor(t: datetime, step: timedelta) -> datetime:
    """The start of the interval of length ``step`` (from the epoch, UTC) that holds ``t``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + math.floor((t - epoch) / step + 1e-9) * step
