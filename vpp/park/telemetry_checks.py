"""Plausibility of telemetry readings: what each asset of the park can physically report.

A pure function (:func:`check_readings`) over plain reading dicts and the park model, called
by the runtime for every reading it is offered (the API's ingest and the plant driver's own
readings), before anything is stored. A refused reading is never stored, so it never reaches
the stale-asset detection, the re-solve trigger, the forecaster fed by measured history or a
DR settlement. The accepted readings of the same batch are stored.

Bounds (defaults in :class:`TelemetryBounds`, settings of the service):

- ``future_skew_s`` (300 s): a reading stamped further than this after the service's clock is
  refused. A reading from the future would keep its asset fresh until that time (year 9999:
  for ever). Devices synchronised by NTP are within milliseconds; a free-running RTC drifts
  about 2 s a day, so five minutes leaves a month of drift, is a third of a 15-minute
  interval, and still catches a gateway that stamps local time as UTC (hours ahead).
- ``p_margin_frac`` (0.5): a power may exceed the asset's range (below) by half its rating.
  Inverters, battery converters and chargers limit their own output to their rating (a few
  per cent of overshoot and meter error); a transformer carries 1.5 pu in normal cyclic
  loading (IEC 60076-7, distribution transformers). Refusing a true reading makes its asset
  go stale and be held safe, so the margin is generous: it is there to catch unit and
  register errors (watts sent as kilowatts: a factor of 1,000) and garbage, not to grade a
  meter.
- ``e_margin_frac`` (0.05): a stored energy may exceed the nameplate capacity by 5 %. A new
  battery often holds a few per cent more than its nameplate and a BMS's estimate wanders by
  about as much; more is not stored energy.

The range of each asset, in the load convention (+ consumes or charges):

=======================  ==========================================  ====================
asset                    power range (kW)                            energy (kWh)
=======================  ==========================================  ====================
PV array                 ``-inverter_kw .. 0``                       none
battery                  ``-p_discharge_max_kw .. p_charge_max_kw``  ``0 .. e_kwh``
EV charger               ``-p_max_kw`` (V2G, else 0) ``.. p_max_kw`` none
shiftable load           ``0 .. p_max_kw``                           none
curtailable, base load   ``0 .. supply`` (below)                     none
PEDF building            ``-converter_kw .. converter_kw``           ``0 .. battery.e_kwh``
park meter (``park``)    ``-transformer_kva .. transformer_kva``     none
=======================  ==========================================  ====================

A load has no rating in the model (its profile's peak is a forecast, not a limit), so it is
bounded by everything that could supply it: the connection transformer, every PV inverter,
battery, V2G charger and PEDF converter together. The margin widens both ends of a range by
``p_margin_frac`` of the larger end. An energy on an asset without storage is refused: no
such asset can report one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vpp.park.model import PARK_METER, Site


@dataclass(frozen=True)
class AssetRange:
    """What one asset can physically report.

    Parameters
    ----------
    p_min_kw, p_max_kw : float
        Lowest and highest power (kW, load convention) before the margin.
    e_max_kwh : float or None
        Storage capacity (kWh); None when the asset stores no energy.
    """

    p_min_kw: float
    p_max_kw: float
    e_max_kwh: float | None = None


@dataclass(frozen=True)
class TelemetryBounds:
    """Tolerances of the plausibility check (see the module docstring for why these)."""

    future_skew_s: float = 300.0
    p_margin_frac: float = 0.5
    e_margin_frac: float = 0.05


@dataclass(frozen=True)
class Refusal:
    """A refused reading: its position in the batch, its asset, the first offending field
    and why (every failed rule, naming the field and the bound)."""

    index: int
    asset: str
    field: str
    reason: str


def asset_ranges(site: Site) -> dict[str, AssetRange]:
    """The physical range of every asset of ``site`` and of the park meter.

    Parameters
    ----------
    site : Site
        The park model.

    Returns
    -------
    dict of str to AssetRange
        By asset name; the park meter under :data:`vpp.park.model.PARK_METER`.
    """
    a, conn = site.assets, site.connection
    out: dict[str, AssetRange] = {}
    for pv in a.pv_arrays:
        out[pv.name] = AssetRange(-pv.inverter_kw, 0.0)
    for b in a.batteries:
        out[b.name] = AssetRange(-b.p_discharge_max_kw, b.p_charge_max_kw, b.e_kwh)
    for c in a.ev_chargers:
        out[c.name] = AssetRange(-c.p_max_kw if c.v2g else 0.0, c.p_max_kw)
    for s in a.shiftable_loads:
        out[s.name] = AssetRange(0.0, s.p_max_kw)
    for pe in a.pedf_buildings:
        out[pe.name] = AssetRange(-pe.converter_kw, pe.converter_kw, pe.battery.e_kwh)
    supply_kw = (
        conn.transformer_kva
        + sum(pv.inverter_kw for pv in a.pv_arrays)
        + sum(b.p_discharge_max_kw for b in a.batteries)
        + sum(c.p_max_kw for c in a.ev_chargers if c.v2g)
        + sum(pe.converter_kw for pe in a.pedf_buildings)
    )
    for load in (*a.curtailable_loads, *a.base_loads):
        out[load.name] = AssetRange(0.0, supply_kw)
    out[PARK_METER] = AssetRange(-conn.transformer_kva, conn.transformer_kva)
    return out


def check_readings(
    rows: Sequence[Mapping[str, Any]],
    ranges: Mapping[str, AssetRange],
    now: datetime,
    bounds: TelemetryBounds = TelemetryBounds(),
) -> list[Refusal]:
    """The readings of ``rows`` that no asset could have reported, with the reason.

    Parameters
    ----------
    rows : sequence of mapping
        Readings ``{asset, ts, p_kw, e_kwh}``: ``ts`` a timezone-aware datetime, ``p_kw``
        (kW, load convention) and ``e_kwh`` (kWh, stored energy) floats or None.
    ranges : mapping of str to AssetRange
        What each asset can report (:func:`asset_ranges`); an asset not in it is refused.
    now : datetime
        The service's clock (timezone-aware); ``ts`` may be at most
        ``bounds.future_skew_s`` after it.
    bounds : TelemetryBounds
        The tolerances.

    Returns
    -------
    list of Refusal
        One per refused row, in row order; empty when every row is plausible.
    """
    out = []
    for i, r in enumerate(rows):
        asset = str(r.get("asset"))
        reasons = _problems(r, ranges.get(asset), now, bounds)
        if reasons:
            out.append(Refusal(i, asset, reasons[0][0], "; ".join(m for _, m in reasons)))
    return out


def _problems(
    r: Mapping[str, Any], rng: AssetRange | None, now: datetime, b: TelemetryBounds
) -> list[tuple[str, str]]:
    """(field, message) for every rule the reading ``r`` breaks."""
    if rng is None:
        return [("asset", f"asset: unknown asset {r.get('asset')!r}")]
    out = []
    ts = r.get("ts")
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        out.append(("ts", f"ts: expected a timezone-aware time, got {ts!r}"))
    elif ts > now + timedelta(seconds=b.future_skew_s):
        out.append(
            (
                "ts",
                f"ts: {ts.isoformat()} is more than {b.future_skew_s:g} s after the service's "
                f"clock ({now.isoformat()}): a reading from the future would keep its asset "
                "fresh",
            )
        )
    p = r.get("p_kw")
    if p is not None:
        out += _power(float(p), rng, b.p_margin_frac)
    e = r.get("e_kwh")
    if e is not None:
        out += _energy(float(e), rng, b.e_margin_frac)
    return out


def _power(p_kw: float, rng: AssetRange, margin_frac: float) -> list[tuple[str, str]]:
    if not math.isfinite(p_kw):
        return [("p_kw", f"p_kw: expected a finite number, got {p_kw}")]
    widen_kw = margin_frac * max(abs(rng.p_min_kw), abs(rng.p_max_kw))
    lo_kw, hi_kw = rng.p_min_kw - widen_kw, rng.p_max_kw + widen_kw
    if lo_kw <= p_kw <= hi_kw:
        return []
    return [
        (
            "p_kw",
            f"p_kw: {p_kw:.10g} kW is outside what the asset can report: its range "
            f"{rng.p_min_kw:g}..{rng.p_max_kw:g} kW widened by {100 * margin_frac:g} % of its "
            f"rating gives {lo_kw:g}..{hi_kw:g} kW",
        )
    ]


def _energy(e_kwh: float, rng: AssetRange, margin_frac: float) -> list[tuple[str, str]]:
    if not math.isfinite(e_kwh):
        return [("e_kwh", f"e_kwh: expected a finite number, got {e_kwh}")]
    if rng.e_max_kwh is None:
        return [("e_kwh", f"e_kwh: the asset stores no energy, got {e_kwh:.10g} kWh")]
    hi_kwh = rng.e_max_kwh * (1.0 + margin_frac)
    if 0.0 <= e_kwh <= hi_kwh:
        return []
    return [
        (
            "e_kwh",
            f"e_kwh: {e_kwh:.10g} kWh is outside 0..{hi_kwh:g} kWh (capacity {rng.e_max_kwh:g} "
            f"kWh + {100 * margin_frac:g} %)",
        )
    ]
