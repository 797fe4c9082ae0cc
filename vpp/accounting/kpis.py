"""KPIs of a simulation run, computed from the realised time series (pure computation).

Definitions (all over the run):

* ``energy_cost_cny``: import x TOU price - export x export price, per interval.
* ``demand_charge_cny``: for every calendar month the run touches, the tariff's monthly
  demand charge x the highest import of that month *within the run* (not pro-rated: a short
  run pays a whole month's charge on its peak, as the bill would).
* ``self_consumption_ratio``: (PV used - export) / PV used, floored at 0.
* ``co2_t``: location-based, import x grid factor (:mod:`vpp.accounting.carbon`).
* ``energy_tce_*``: all electricity consumed (import - export + PV used) in standard coal, by
  the equivalent-value and the equal-value method; ``intensity_tce_per_10k_cny`` divides the
  equivalent-value figure by the value added of the run's days (pro rata of the year).
* DR: delivery against the ``gbt37016_5of10`` baseline (:mod:`vpp.accounting.dr_baseline`) for every
  event whose windows lie inside the run.
* EV: sessions that arrived and departed within the run (requested = what the driver asked
  for); cars already plugged in at the start are left out.
* ``grid_violation_steps``: applied intervals whose plan still broke a network limit in the
  AC check; ``null`` with a note when the run was not validated.
* ``solver_failures``: cycles that fell back (last plan or rule controller).
"""

from __future__ import annotations

from collections import defaultdict
from zoneinfo import ZoneInfo

import numpy as np

from vpp.accounting import carbon

KPI_NAMES = (
    "total_cost_cny",
    "energy_cost_cny",
    "demand_charge_cny",
    "peak_import_kw",
    "import_kwh",
    "export_kwh",
    "pv_available_kwh",
    "pv_curtailed_kwh",
    "self_consumption_ratio",
    "co2_t",
    "energy_tce_equivalent",
    "energy_tce_equal_value",
    "intensity_tce_per_10k_cny",
    "dr_events",
    "dr_requested_kwh",
    "dr_delivered_kwh",
    "dr_delivery_ratio",
    "ev_requested_kwh",
    "ev_delivered_kwh",
    "ev_unmet_kwh",
    "grid_violation_steps",
    "solver_failures",
    "cycle_time_p50_ms",
    "cycle_time_p95_ms",
)


def demand_charge_cny(import_kw: np.ndarray, times, rate_cny_per_kw_month: float, tz: str) -> float:
    """Monthly demand charge on each month's peak import within the series."""
    zone = ZoneInfo(tz)
    peaks: dict[tuple[int, int], float] = defaultdict(float)
    for t, p in zip(times, import_kw, strict=True):
        local = t.astimezone(zone)
        key = (local.year, local.month)
        peaks[key] = max(peaks[key], float(p))
    return rate_cny_per_kw_month * sum(peaks.values())


def compute(result) -> dict:
    """The KPI dictionary of a run (names in :data:`KPI_NAMES`, plus notes and extras)."""
    s, site, run = result.series, result.site, result.horizon
    dt = run.dt_h
    imp, exp = s["import_kw"], s["export_kw"]
    energy = float(np.sum(s["energy_cost_cny"]))
    demand = demand_charge_cny(
        imp, run.times(), site.tariff.demand_charge_cny_per_kw_month, site.location.tz
    )
    pv_used = float(np.sum(s["pv_used_kw"]) * dt)
    export = float(np.sum(exp) * dt)
    acc = carbon.accounts(
        imp,
        exp,
        s["pv_used_kw"],
        s["ef_kg_per_kwh"],
        dt,
        site.carbon.energy_factors,
        site.value_added_10k_cny_per_year,
    )
    dels = result.deliveries
    req = sum(d.requested_kwh for d in dels)
    got = sum(d.delivered_kwh for d in dels)
    sessions = [x for x in result.sessions if x.arrival >= run.start]
    ev_req = sum(x.requested_kwh for x in sessions)
    ev_got = sum(min(x.delivered_kwh, x.requested_kwh) for x in sessions)
    ev_unmet = sum(x.unmet_kwh for x in sessions)
    cyc = np.array([c.cycle_s for c in result.cycles]) * 1000.0
    grid_flags = [c.grid_violation for c in result.cycles]
    k = {
        "total_cost_cny": energy + demand,
        "energy_cost_cny": energy,
        "demand_charge_cny": demand,
        "peak_import_kw": float(imp.max(initial=0.0)),
        "import_kwh": acc.import_kwh,
        "export_kwh": acc.export_kwh,
        "pv_available_kwh": float(np.sum(s["pv_available_kw"]) * dt),
        "pv_curtailed_kwh": float(np.sum(s["pv_curtailed_kw"]) * dt),
        "self_consumption_ratio": max((pv_used - export) / pv_used, 0.0) if pv_used > 0 else 0.0,
        "co2_t": acc.co2_t,
        "energy_tce_equivalent": acc.tce_equivalent,
        "energy_tce_equal_value": acc.tce_equal_value,
        "intensity_tce_per_10k_cny": acc.intensity_tce_per_10k_cny,
        "dr_events": len(dels),
        "dr_requested_kwh": req,
        "dr_delivered_kwh": got,
        "dr_delivery_ratio": got / req if req > 0 else None,
        "ev_requested_kwh": ev_req,
        "ev_delivered_kwh": ev_got,
        "ev_unmet_kwh": ev_unmet,
        "grid_violation_steps": (None if not result.grid else int(sum(1 for g in grid_flags if g))),
        "solver_failures": int(sum(1 for c in result.cycles if c.fallback is not None)),
        "cycle_time_p50_ms": float(np.percentile(cyc, 50)) if cyc.size else 0.0,
        "cycle_time_p95_ms": float(np.percentile(cyc, 95)) if cyc.size else 0.0,
    }
    k["notes"] = _notes(result)
    k["run"] = {
        "controller": result.controller,
        "forecast": result.forecast,
        "seed": result.seed,
        "start": run.start.isoformat(),
        "intervals": run.n,
        "step_minutes": run.step.total_seconds() / 60,
        "days": run.n * dt / 24.0,
    }
    k["dr_per_event"] = [
        {
            "event_id": d.event_id,
            "requested_kwh": d.requested_kwh,
            "delivered_kwh": d.delivered_kwh,
            "baseline_kwh": d.baseline_kwh,
            "realised_kwh": d.realised_kwh,
            "ratio": d.ratio,
            "effective": d.effective,
            "band": list(d.band),
        }
        for d in dels
    ]
    k["ev_sessions"] = len(sessions)
    k["ev_sessions_unmet"] = sum(1 for x in sessions if x.unmet_kwh > 0.01)
    k["energy_consumed_kwh"] = acc.consumption_kwh
    return k


def _notes(result) -> dict[str, str]:
    notes = {
        "dr_baseline": (
            "gbt37016_5of10: mean of the 5 highest-load of the last 10 similar days (3 of 5 "
            "for rest days), DR days excluded, fixed when the event is announced from the "
            "complete days before; metered import during the run, and before the start the "
            "park's import without the VPP (loads - PV, EVs and shiftable loads uncontrolled)"
        ),
        "demand_charge": "monthly rate x each month's peak within the run; not pro-rated",
        "energy_tce": "all electricity consumed (import - export + PV used)",
        "ev": "sessions that arrived and departed within the run",
        "co2": "location-based: grid import x configured factor; exports not credited",
    }
    if not result.grid:
        notes["grid_violation_steps"] = "not validated: run with --grid for the AC network check"
    if result.site.value_added_10k_cny_per_year is None:
        notes["intensity_tce_per_10k_cny"] = "no value added configured"
    return notes
