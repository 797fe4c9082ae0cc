"""The park without the VPP: what its flexible devices draw when nobody controls them.

Pure computation on the park model. Every car charges at its charger's full power from arrival
until served; every shiftable load runs at full power from its window's opening (the
``uncontrolled`` controller's behaviour). The closed-loop simulation uses it for the meter
history before a run starts, the carbon report for "the park without the VPP".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from vpp.park.model import EvCharger, EvSession, Horizon, ShiftableLoad, Site, window_start
from vpp.park.sessions import sessions_between
from vpp.park.state import ShiftableState


def uncontrolled_flex_kw(
    site: Site, horizon: Horizon, seed: int = 0, sessions: Iterable[EvSession] | None = None
) -> np.ndarray:
    """EV chargers and shiftable loads without the VPP (kW per interval): every car at full
    power from arrival until served (``sessions``, or the fleets' seeded draws), every
    shiftable load at full power from its window's opening."""
    out = np.zeros(horizon.n)
    dt = horizon.dt_h
    chargers = {c.name: c for c in site.assets.ev_chargers}
    tz = site.location.tz
    if sessions is None:
        a = site.assets
        sessions = sessions_between(
            site.ev_fleets, a.ev_chargers, horizon.start, horizon.end, tz, seed, site.calendar
        )
    for s in sessions:
        c = chargers.get(s.charger)
        if c is None:
            continue
        k, left = max(horizon.index_of(s.arrival), 0), s.e_needed_kwh
        while left > 1e-9 and k < min(horizon.index_of(s.departure), horizon.n):
            p = min(c.p_max_kw, left / (c.eta * dt))
            out[k] += p
            left -= p * c.eta * dt
            k += 1
    zone = ZoneInfo(tz)
    for spec in site.assets.shiftable_loads:
        done: dict[datetime, float] = {}
        for k, t in enumerate(horizon.times()):
            w = window_start(spec, t.astimezone(zone))
            if w is None:
                continue
            e = done.get(w, 0.0)
            p = min(spec.p_max_kw, max(spec.e_kwh - e, 0.0) / dt)
            done[w] = e + p * dt
            out[k] += p
    return out


def uncontrolled_delivered_kwh(session: EvSession, charger: EvCharger, at: datetime) -> float:
    """Energy (kWh, into the car) the park without the VPP would have delivered to
    ``session`` by ``at``: the charger at full power (the session's cap, if lower) from
    arrival until the car is served. The basis of a cold start's stated assumption when no
    charger meter can be read."""
    h = max((min(at, session.departure) - session.arrival).total_seconds() / 3600.0, 0.0)
    p_max_kw = min(charger.p_max_kw, session.p_max_kw or charger.p_max_kw)
    return min(session.e_needed_kwh, p_max_kw * charger.eta * h)


def uncontrolled_shiftable_state(
    spec: ShiftableLoad, at: datetime, tz: str, step_h: float
) -> ShiftableState | None:
    """The state at ``at`` of a shiftable load that ran without the VPP: full power from its
    window's opening until its energy was consumed. None outside a window. ``step_h``: the
    dispatch interval (h), to count the intervals a run still going has lasted."""
    local = at.astimezone(ZoneInfo(tz))
    w = window_start(spec, local)
    if w is None:
        return None
    h = (local - w).total_seconds() / 3600.0
    e_done_kwh = min(spec.e_kwh, spec.p_max_kw * h)
    running = e_done_kwh < spec.e_kwh - 1e-9
    return ShiftableState(e_done_kwh, round(h / step_h) if running else 0)
