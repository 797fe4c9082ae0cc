"""EV sessions drawn from a seeded fleet model (:class:`vpp.park.model.EvFleet`).

Pure and deterministic for a given seed and day: the same (seed, fleet, date) always gives
the same sessions, whatever else is drawn, so a simulation and a single dispatch agree.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from vpp.park.calendar import is_workday
from vpp.park.model import EvCharger, EvFleet, EvSession, ParkCalendar


def _rng(seed: int, fleet: str, day: date) -> np.random.Generator:
    key = zlib.crc32(f"{fleet}|{day.isoformat()}".encode())
    return np.random.default_rng([seed, key])


def sessions_for_day(
    fleet: EvFleet,
    chargers: dict[str, EvCharger],
    day: date,
    tz: str,
    seed: int = 0,
    calendar: ParkCalendar | None = None,
) -> list[EvSession]:
    """Sessions that arrive on ``day`` (local) at the fleet's chargers (``calendar``: the
    park's own holidays and make-up working days)."""
    if fleet.workdays_only and not is_workday(day, calendar):
        return []
    rng = _rng(seed, fleet.name, day)
    zone = ZoneInfo(tz)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    out: list[EvSession] = []
    for name in fleet.chargers:
        plug, arr_h, dwell_h, e_kwh = rng.random(), rng.normal(), rng.normal(), rng.normal()
        if plug > fleet.plug_in_prob:
            continue
        arrival_h = float(np.clip(fleet.arrival_mean_h + fleet.arrival_sd_h * arr_h, 0.0, 23.75))
        dwell = float(np.clip(fleet.dwell_mean_h + fleet.dwell_sd_h * dwell_h, 0.5, 20.0))
        arrival = midnight + timedelta(minutes=15 * round(arrival_h * 4))
        departure = arrival + timedelta(minutes=15 * max(2, round(dwell * 4)))
        charger = chargers[name]
        # Never ask for more than the charger could deliver in the stay.
        e_max = charger.p_max_kw * charger.eta * (departure - arrival).total_seconds() / 3600
        e_need = float(np.clip(fleet.e_mean_kwh + fleet.e_sd_kwh * e_kwh, 2.0, 0.95 * e_max))
        out.append(
            EvSession(
                session_id=f"{name}@{arrival:%Y%m%dT%H%M}",
                charger=name,
                arrival=arrival,
                departure=departure,
                e_needed_kwh=round(e_need, 2),
                e_dischargeable_kwh=round(0.5 * e_need, 2) if charger.v2g else 0.0,
                give_way=fleet.give_way,
            )
        )
    return out


def sessions_between(
    fleets: tuple[EvFleet, ...],
    chargers: tuple[EvCharger, ...],
    start: datetime,
    end: datetime,
    tz: str,
    seed: int = 0,
    calendar: ParkCalendar | None = None,
) -> list[EvSession]:
    """Every session overlapping ``[start, end)``: drawn day by day, from the day before."""
    by_name = {c.name: c for c in chargers}
    day = (start - timedelta(days=1)).astimezone(ZoneInfo(tz)).date()
    last = end.astimezone(ZoneInfo(tz)).date()
    out: list[EvSession] = []
    while day <= last:
        for fleet in fleets:
            for s in sessions_for_day(fleet, by_name, day, tz, seed, calendar):
                if s.departure > start and s.arrival < end:
                    out.append(s)
        day += timedelta(days=1)
    # One car per charger at a time: a later arrival waits for the earlier car to leave.
    out.sort(key=lambda s: (s.charger, s.arrival))
    kept: list[EvSession] = []
    for s in out:
        if kept and kept[-1].charger == s.charger and s.arrival < kept[-1].departure:
            continue
        kept.append(s)
    return kept
