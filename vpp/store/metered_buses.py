"""What each bus drew, from the service's stored readings of every asset (the edge: SQL in,
arrays out), for the per-tenant accounts (:mod:`vpp.accounting.tenants`).

Per interval of the park's step, each top-level asset's readings are averaged (a PEDF
building reports its exchange, not its members) and a missing interval holds the asset's
last reading before it, as the Network view does (``api.ui.network_view``); an asset with no
reading yet counts 0 and is named. A PEDF building's PV sits behind its converter and is
not in ``pv_kw`` (its exchange is). An interval without a park-meter reading is not metered:
``metered`` marks the others, and the accounts count those only.

The park without the VPP, per bus, is built as :func:`vpp.store.metered.read_period` builds the
park's: each bus's metered draw with its batteries', EV chargers' and shiftable loads'
readings taken out and their behaviour without the VPP put in (no battery; every stored EV
session charging at full power from arrival; shiftable loads at their window's opening).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection

from vpp.park.model import PARK_METER, Horizon, Site
from vpp.store import metered
from vpp.store.readings import asset_means, hold_last


@dataclass(frozen=True)
class MeteredBuses:
    """Per bus (every bus of the park), interval means (kW) over ``horizon``."""

    horizon: Horizon
    bus_p_kw: dict[str, np.ndarray]  # what it drew (load convention)
    pv_kw: dict[str, np.ndarray]  # PV generated on it (>= 0)
    no_vpp_bus_p_kw: dict[str, np.ndarray]  # without the VPP (see the module docstring)
    metered: np.ndarray  # bool per interval: the park meter has a reading
    unmetered_assets: tuple[str, ...]  # top-level assets without any reading in the period


def read_buses(conn: Connection, site: Site, h: Horizon) -> MeteredBuses:
    """Every bus's metered draw, PV and draw without the VPP over ``h``."""
    from vpp.accounting.counterfactual import uncontrolled_flex_kw

    rows = [(x.name, kind, x.bus) for kind, group in site.assets.by_kind() for x in group]
    names = [PARK_METER, *(r[0] for r in rows)]
    raw = asset_means(conn, names, h)
    meter_ok = np.isfinite(raw[0])
    seen = np.isfinite(raw[1:]).any(axis=1)
    p = hold_last(raw[1:], before=0.0)
    buses = site.bus_names()
    bus = {b: np.zeros(h.n) for b in buses}
    pv = {b: np.zeros(h.n) for b in buses}
    moved = {b: np.zeros(h.n) for b in buses}
    dispatched = {"battery", "ev_charger", "shiftable"}
    for (_, kind, b), x, has in zip(rows, p, seen, strict=True):
        bus[b] += x
        if kind == "pv":
            pv[b] += np.maximum(-x, 0.0)
        if kind in dispatched and has:
            moved[b] += x
    a = site.assets
    read = {r[0] for r, has in zip(rows, seen, strict=True) if has}
    sessions = [s for s in metered.stored_sessions(conn, h) if s.charger in read]
    no_vpp = {}
    for b in buses:
        own = dataclasses.replace(
            site,
            assets=dataclasses.replace(
                a,
                ev_chargers=tuple(c for c in a.ev_chargers if c.bus == b and c.name in read),
                shiftable_loads=tuple(
                    x for x in a.shiftable_loads if x.bus == b and x.name in read
                ),
            ),
        )
        flex = 0.0
        if own.assets.ev_chargers or own.assets.shiftable_loads:
            flex = uncontrolled_flex_kw(own, h, sessions=sessions)
        no_vpp[b] = bus[b] - moved[b] + flex
    unread = tuple(r[0] for r, has in zip(rows, seen, strict=True) if not has)
    return MeteredBuses(h, bus, pv, no_vpp, meter_ok, unread)
