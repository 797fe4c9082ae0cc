"""Network stress scenarios on the demo park, shared by the grid tests and ``bench/grid.py``.

Plain arrays, no forecasts: each scenario is a :class:`DispatchProblem` on the demo park's
buses plus the :class:`GridOptions` and (possibly modified) :class:`Site` to validate it on.

* :func:`ev_valley` - a summer workday from 12:00: the cold-chain fleet's 20 x 60 kW DC chargers
  at B05 plug in around 19:30 and need about 120 kWh each before the 00:30 delivery round.
  The valley starts at 22:00; nothing in the dispatch knows T-B05's 1600 kVA, so unconstrained
  charging packs the fleet into 22:00-00:30 on top of the cold store on a hot evening and
  overloads T-B05. The fix moves charging before 22:00, into peak prices.
* :func:`pv_noon` - a holiday noon (loads at a fifth of their peak) in a variant of the demo
  park whose B12 warehouse roof carries 1.8 MWp behind a 2 MVA transformer at the end of a
  4 km 95 mm2 cable, with the utility holding the 10 kV bus at 1.03 pu: the export pushes
  B12's voltages over 1.05 pu unless PV is curtailed or the B11 battery charges.
* :func:`single_phase_night` - the B01 office's 30 chargers, single-phase on phase A in a
  variant of the demo park, charging from 22:00 with the cheapest hour first: the balanced
  flow puts T-B01 (1000 kVA) at about 75 % while its phase A runs over 100 %; only the
  unbalanced flow (``runpp_3ph``) sees it, and spreading the charging over the night fixes it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from controllers.problem import (
    BaseLoadInput,
    BatteryInput,
    CurtailableInput,
    DispatchProblem,
    EvChargerInput,
    EvSessionInput,
    PvInput,
)
from vpp.grid.network import GridOptions
from vpp.park.model import Horizon, PvArray, Site, Transformer

TZ = ZoneInfo("Asia/Shanghai")
N = 96


def _prices(h0: float, valley: tuple[float, float], midday_valley: bool = False) -> np.ndarray:
    """Zhejiang-like TOU from hour ``h0``: valley 0.26, peak 1.20 (08-11, 17-22), flat 0.65."""
    hours = (h0 + np.arange(N) * 0.25) % 24
    price = np.full(N, 0.65)
    price[((hours >= 8) & (hours < 11)) | ((hours >= 17) & (hours < 22))] = 1.2025
    lo, hi = valley
    price[(hours >= lo) | (hours < hi)] = 0.26
    if midday_valley:
        price[(hours >= 11) & (hours < 14)] = 0.13
    return price


def _base_loads(site: Site, frac: np.ndarray) -> tuple[BaseLoadInput, ...]:
    return tuple(
        BaseLoadInput(b.name, b.bus, b.profile.scale * frac) for b in site.assets.base_loads
    )


def _problem(site: Site, horizon: Horizon, price: np.ndarray, **kw) -> DispatchProblem:
    conn = site.connection
    return DispatchProblem(
        horizon=horizon,
        buses=tuple(site.bus_names()),
        price_import_cny_per_kwh=price,
        price_export_cny_per_kwh=np.full(N, site.tariff.export_cny_per_kwh),
        import_max_kw=np.full(N, conn.import_max_kw),
        export_max_kw=np.full(N, conn.export_max_kw),
        penalties=site.penalties,
        **kw,
    )


def ev_valley(site: Site) -> tuple[DispatchProblem, Site, GridOptions]:
    """The B05 fleet charging in the night valley (horizon from 12:00, summer workday)."""
    horizon = Horizon(datetime(2026, 7, 15, 12, 0, tzinfo=TZ), timedelta(minutes=15), N)
    hours = (12 + np.arange(N) * 0.25) % 24
    day = (hours >= 7) & (hours < 21)
    base = _base_loads(site, np.where(day, 0.7, 0.5))
    cold = next(c for c in site.assets.curtailable_loads if c.name == "B05-cold-storage")
    curt = (CurtailableInput(cold, np.full(N, 0.9 * cold.baseline.scale)),)  # a hot evening
    rng = np.random.default_rng(5)
    chargers = []
    for c in site.assets.ev_chargers:
        if not c.name.startswith("B05-DC"):
            continue  # the other chargers have no sessions in the evening
        arr = int(30 + rng.integers(-2, 3))  # about 19:30
        dep = int(50 + rng.integers(-1, 2))  # about 00:30, the night delivery round
        need = float(np.clip(rng.normal(120, 10), 90, 150))
        spec = dataclasses.replace(c, p_min_kw=0.0)  # an LP: no minimum charging power
        chargers.append(EvChargerInput(spec, (EvSessionInput(c.name, arr, dep, need, c.p_max_kw),)))
    problem = _problem(
        site,
        horizon,
        _prices(12, (22, 8)),
        base_loads=base,
        curtailables=curt,
        ev_chargers=tuple(chargers),
    )
    return problem, site, GridOptions()


def pv_site(site: Site) -> Site:
    """The demo park with a large PV roof on B12 at the end of a long, thin cable."""
    lines = tuple(
        dataclasses.replace(ln, length_km=4.0, std_type="NA2XS2Y 1x95 RM/25 6/10 kV")
        if ln.name == "B11-MV-B12-MV"
        else ln
        for ln in site.network.lines
    )
    trafos = tuple(
        Transformer(t.name, t.hv_bus, t.lv_bus, 2000.0, None, 6.0, 0.7) if t.name == "T-B12" else t
        for t in site.network.transformers
    )
    pvs = tuple(
        PvArray(p.name, p.bus, 1800.0, 1620.0, 5.0) if p.name == "B12-pv" else p
        for p in site.assets.pv_arrays
    )
    return dataclasses.replace(
        site,
        network=dataclasses.replace(site.network, lines=lines, transformers=trafos),
        assets=dataclasses.replace(site.assets, pv_arrays=pvs),
    )


def pv_noon(site: Site) -> tuple[DispatchProblem, Site, GridOptions]:
    """Holiday noon in the PV variant: low load, strong sun, the 10 kV bus held at 1.03 pu."""
    site = pv_site(site)
    horizon = Horizon(datetime(2026, 10, 3, 0, 0, tzinfo=TZ), timedelta(minutes=15), N)
    hours = np.arange(N) * 0.25
    sun = np.clip(np.sin(np.pi * (hours - 6.0) / 12.0), 0.0, None) ** 1.5  # clear day
    pv = tuple(
        PvInput(p, np.minimum(p.kwp * 0.85 * sun, p.inverter_kw)) for p in site.assets.pv_arrays
    )
    bats = tuple(BatteryInput(b, b.soc_init_frac * b.e_kwh, 0.2) for b in site.assets.batteries)
    problem = _problem(
        site,
        horizon,
        _prices(0, (22, 8), midday_valley=False),
        base_loads=_base_loads(site, np.full(N, 0.2)),
        pv=pv,
        batteries=bats,
    )
    problem = dataclasses.replace(
        problem, export_max_kw=np.full(N, 6000.0), price_export_cny_per_kwh=np.full(N, 0.4153)
    )
    return problem, site, GridOptions(ext_grid_vm_pu=1.03)


def single_phase_site(site: Site) -> Site:
    """The demo park with B01's 30 chargers on phase A (7 kW at 230 V line-to-neutral)."""
    chargers = tuple(
        dataclasses.replace(c, phase="A", voltage_v=400.0) if c.bus == "B01-LV" else c
        for c in site.assets.ev_chargers
    )
    return dataclasses.replace(site, assets=dataclasses.replace(site.assets, ev_chargers=chargers))


def single_phase_night(site: Site) -> tuple[DispatchProblem, Site, GridOptions]:
    """B01's single-phase chargers from 22:00 to 02:00, 12 kWh each, the first hour cheapest."""
    site = single_phase_site(site)
    horizon = Horizon(datetime(2026, 7, 15, 22, 0, tzinfo=TZ), timedelta(minutes=15), N)
    price = _prices(22, (22, 8))
    price[:4] = 0.13  # a cheap first hour pulls every car to full power at once
    base = tuple(
        BaseLoadInput(
            b.name,
            b.bus,
            np.full(N, 0.6 * b.profile.scale if b.bus == "B01-LV" else 0.3 * b.profile.scale),
        )
        for b in site.assets.base_loads
    )
    chargers = tuple(
        EvChargerInput(c, (EvSessionInput(c.name, 0, 16, 12.0, c.p_max_kw),))
        for c in site.assets.ev_chargers
        if c.bus == "B01-LV"
    )
    problem = _problem(site, horizon, price, base_loads=base, ev_chargers=chargers)
    return problem, site, GridOptions()


__all__ = ["ev_valley", "pv_noon", "pv_site", "single_phase_night", "single_phase_site"]
