"""KPIs of a simulation run, measured on what the simulated park did (pure computation).

Every figure is the park's own (realised in the simulated park), except those whose name starts
with ``plan_``: those say what the dispatch intended. Definitions (all over the run):

* ``total_cost_cny``: energy + demand charge + stored-energy cost - DR compensation.
* ``energy_cost_cny``: import x TOU price - export x export price, per interval.
* ``demand_charge_cny``: per calendar month, the tariff's monthly rate x that month's realised
  peak import, pro-rated by the share of the month the run covers (``demand_prorate`` False:
  a whole month's charge, as the month's bill would be); ``demand_by_month`` has each month.
  The month's peak includes what the meter history before the run holds of that month
  (``peak_before_run_kw``): a run that starts on the 20th is billed on the higher of the
  month's peak so far and its own.
* ``stored_energy_cost_cny``: the batteries' energy at the start less at the end, valued at
  the planner's terminal value (:mod:`vpp.accounting.bill`); negative when the run ends fuller.
* ``dr_compensation_cny``: subsidies earned less penalties, per the events' settlement.
* ``self_consumption_ratio``: (PV used - export) / PV used, floored at 0.
* ``co2_t``: location-based, import x grid factor (:mod:`vpp.accounting.carbon`).
* ``energy_tce_*``: all electricity consumed (import - export + PV used) in standard coal, by
  the equivalent-value and the equal-value method; ``intensity_tce_per_10k_cny`` divides the
  equivalent-value figure by the value added of the run's days (pro rata of the year).
* DR: delivery against the ``gbt37016_5of10`` baseline (:mod:`vpp.accounting.dr_baseline`) for
  every event whose windows lie inside the run. ``dr_events_declined`` (ids in
  ``dr_declined``): invitations the park declined (in the simulation, those the plan at
  announcement said do not pay): no call, neither settled nor counted as failed.
* EV: sessions that arrived and departed within the run (requested = what the driver asked
  for); cars already plugged in at the start, or still plugged in at the end, are left out.
* Who gave way (:mod:`vpp.accounting.shortfalls`): ``ev_sessions_left_short`` (every such session
  that left short: charger, fleet, priority, kWh, why), ``shiftable_windows_short`` (every
  window opened and closed within the run and not completed) and ``curtailed_by_load``
  (each curtailable load's curtailed energy, by the limit it gave way to or its cost);
  ``shiftable_unmet_kwh`` and ``load_curtailed_kwh`` are their totals. The amounts are
  realised, the reasons the plans'.
* ``grid_violation_steps``: intervals in which the AC power flow of the power each bus actually
  drew broke a transformer, cable or voltage limit (``grid_violations`` by element);
  ``plan_grid_violation_steps``: applied intervals whose *plan* still broke one in the
  planner's AC check (``null`` when the planner ran without it).
* ``connection_*``, ``dr_cap_*``, ``dr_floor_*``: realised breaches of those limits
  (:mod:`vpp.accounting.limits`); ``unserved_kwh`` and ``pv_spilled_kwh``: demand a device
  could not carry and PV that could be neither used nor exported.
* ``limit_groups`` (parks that declare limit groups): per group, realised import and export
  breaches, the worst utilisation of its kW limits and, with a phase limit, each phase's
  largest current (A), the intervals a phase passed its limit and the worst phase
  utilisation; ``group_breach_steps`` sums the breached intervals of every group limit.
* ``solver_failures``: cycles that fell back (last plan or rule controller).
* ``plan_relaxation_cycles``: cycles whose plan relaxed a constraint a decision could have
  avoided (at or above the alarm tolerance of :mod:`controllers.relaxations`);
  ``plan_penalty``: the sum of those plans' penalty parts, weights and not money (no part of
  any cost).
"""

from __future__ import annotations

import numpy as np

from vpp.accounting import bill, carbon, dr_baseline, limits, shortfalls
from vpp.park.model import DrStatus

KPI_NAMES = (
    "total_cost_cny",
    "energy_cost_cny",
    "demand_charge_cny",
    "stored_energy_cost_cny",
    "dr_compensation_cny",
    "peak_import_kw",
    "import_kwh",
    "export_kwh",
    "pv_available_kwh",
    "pv_curtailed_kwh",
    "pv_spilled_kwh",
    "unserved_kwh",
    "self_consumption_ratio",
    "co2_t",
    "energy_tce_equivalent",
    "energy_tce_equal_value",
    "intensity_tce_per_10k_cny",
    "dr_events",
    "dr_events_effective",
    "dr_events_declined",
    "dr_requested_kwh",
    "dr_delivered_kwh",
    "dr_cap_breach_steps",
    "dr_cap_breach_kwh",
    "dr_floor_breach_steps",
    "dr_floor_breach_kwh",
    "ev_requested_kwh",
    "ev_delivered_kwh",
    "ev_unmet_kwh",
    "shiftable_unmet_kwh",
    "load_curtailed_kwh",
    "grid_violation_steps",
    "plan_grid_violation_steps",
    "trafo_loading_max_percent",
    "line_loading_max_percent",
    "v_min_pu",
    "v_max_pu",
    "connection_import_breach_steps",
    "connection_import_breach_kwh",
    "connection_export_breach_steps",
    "tracking_kwh",
    "tracking_steps",
    "solver_failures",
    "plan_relaxation_cycles",
    "plan_penalty",
    "cycle_time_p50_ms",
    "cycle_time_p95_ms",
)


def compute(result) -> dict:
    """The KPI dictionary of a run (names in :data:`KPI_NAMES`, plus notes and extras)."""
    k: dict = {}
    k.update(_money(result))
    k.update(_energy(result))
    k.update(_dr(result))
    k.update(_ev(result))
    k.update(shortfalls.shortfalls(result))
    k.update(_network(result))
    cyc = np.array([c.cycle_s for c in result.cycles]) * 1000.0
    k["solver_failures"] = int(sum(1 for c in result.cycles if c.fallback is not None))
    k["plan_relaxation_cycles"] = int(sum(1 for c in result.cycles if c.plan_relaxations))
    k["plan_penalty"] = float(sum(c.plan_penalty for c in result.cycles))
    # The local loop on the park meter (controllers.tracking): battery energy moved away from
    # the plan, both ways, and the intervals in which it moved the batteries at all.
    moved = np.abs(np.asarray(result.series.get("tracking_kw", np.zeros(0)), dtype=float))
    k["tracking_kwh"] = float(np.sum(moved) * result.horizon.dt_h)
    k["tracking_steps"] = int(np.sum(moved > 1e-6))
    k["cycle_time_p50_ms"] = float(np.percentile(cyc, 50)) if cyc.size else 0.0
    k["cycle_time_p95_ms"] = float(np.percentile(cyc, 95)) if cyc.size else 0.0
    k["total_cost_cny"] = (
        k["energy_cost_cny"]
        + k["demand_charge_cny"]
        + k["stored_energy_cost_cny"]
        - k["dr_compensation_cny"]
    )
    k["notes"] = _notes(result)
    if result.site.limit_groups:  # realised limit-group figures (vpp.accounting.limits)
        k["limit_groups"] = limits.group_kpis(result.site, result.series, result.horizon.dt_h)
        k["group_breach_steps"] = limits.group_breach_steps(k["limit_groups"])
    run = result.horizon
    k["run"] = {
        "controller": result.controller,
        "forecast": result.forecast,
        "seed": result.seed,
        "start": run.start.isoformat(),
        "intervals": run.n,
        "step_minutes": run.step.total_seconds() / 60,
        "days": run.n * run.dt_h / 24.0,
    }
    return k


def _money(result) -> dict:
    s, site, run = result.series, result.site, result.horizon
    months = bill.demand_charges(
        s["import_kw"],
        run.times(),
        run.step,
        site.tariff.demand_charge_cny_per_kw_month,
        site.location.tz,
        prorate=result.demand_prorate,
        peak_before_kw=getattr(result, "month_peak_before_kw", None),
    )
    a = site.assets
    stored = bill.stored_energy(
        [*a.batteries, *(p.battery for p in a.pedf_buildings)],
        result.battery_e_start_kwh,
        result.battery_e_end_kwh,
        float(np.mean(s["price_cny_per_kwh"])),
    )
    return {
        "energy_cost_cny": float(np.sum(s["energy_cost_cny"])),
        "demand_charge_cny": sum(m.charge_cny for m in months),
        "demand_by_month": [m.__dict__ for m in months],
        "stored_energy_cost_cny": stored.cost_cny,
        "stored_energy": {
            "start_kwh": stored.e_start_kwh,
            "end_kwh": stored.e_end_kwh,
            "change_kwh": stored.change_kwh,
            "value_cny_per_kwh": stored.value_cny_per_kwh,
        },
    }


def _energy(result) -> dict:
    s, site, dt = result.series, result.site, result.horizon.dt_h
    acc = carbon.accounts(
        s["import_kw"],
        s["export_kw"],
        s["pv_used_kw"],
        s["ef_kg_per_kwh"],
        dt,
        site.carbon.energy_factors,
        site.value_added_10k_cny_per_year,
    )
    pv_used = float(np.sum(s["pv_used_kw"]) * dt)
    export = float(np.sum(s["export_kw"]) * dt)
    zeros = np.zeros(result.horizon.n)
    return {
        "peak_import_kw": float(s["import_kw"].max(initial=0.0)),
        "import_kwh": acc.import_kwh,
        "export_kwh": acc.export_kwh,
        "pv_available_kwh": float(np.sum(s["pv_available_kw"]) * dt),
        "pv_curtailed_kwh": float(np.sum(s["pv_curtailed_kw"]) * dt),
        "pv_spilled_kwh": float(np.sum(s.get("pv_spilled_kw", zeros)) * dt),
        "unserved_kwh": float(np.sum(s.get("unserved_kw", zeros)) * dt),
        "self_consumption_ratio": max((pv_used - export) / pv_used, 0.0) if pv_used > 0 else 0.0,
        "co2_t": acc.co2_t,
        "energy_tce_equivalent": acc.tce_equivalent,
        "energy_tce_equal_value": acc.tce_equal_value,
        "intensity_tce_per_10k_cny": acc.intensity_tce_per_10k_cny,
        "energy_consumed_kwh": acc.consumption_kwh,
    }


def _breaches(result) -> dict[str, limits.Breach]:
    s, conn = result.series, result.site.connection
    return limits.breaches(
        s["net_kw"],
        s["dr_cap_kw"],
        s["dr_floor_kw"],
        min(conn.import_max_kw, conn.transformer_p_max_kw),
        conn.export_max_kw,
        result.horizon.dt_h,
    )


def _dr(result) -> dict:
    done = result.settlements
    head = dr_baseline.summary(done)
    b = _breaches(result)
    cap, floor = b["dr_cap"], b["dr_floor"]
    dels = [x.delivery for x in done]
    declined = [e.event_id for e in result.events if e.status is DrStatus.DECLINED]
    return {
        "dr_events": head["events"],
        "dr_events_effective": head["effective"],
        "dr_events_declined": len(declined),
        "dr_declined": declined,
        "dr_requested_kwh": sum(d.requested_kwh for d in dels),
        "dr_delivered_kwh": sum(d.delivered_kwh for d in dels),
        "dr_compensation_cny": head["compensation_cny"],
        "dr_subsidy_cny": head["subsidy_cny"],
        "dr_penalty_cny": head["penalty_cny"],
        "dr_cap_breach_steps": cap.steps,
        "dr_cap_breach_kwh": cap.energy_kwh,
        "dr_floor_breach_steps": floor.steps,
        "dr_floor_breach_kwh": floor.energy_kwh,
        "dr_per_event": [_event_row(x) | _plan_choice(result, x.event_id) for x in done],
    }


def _plan_choice(result, event_id: str) -> dict:
    """What the plans said of the event, cycle by cycle (the plan's, not the park's): in how
    many cycles a plan weighed or followed it, in how many it followed, and, where the last
    plans gave it up, from when and why (``controllers.dr_choice``)."""
    seen = [
        (c.at, *c.dr_decisions[event_id])
        for c in getattr(result, "cycles", ())
        if event_id in getattr(c, "dr_decisions", {})
    ]
    row = {
        "plan_cycles": len(seen),
        "plan_cycles_followed": sum(1 for _, f, _ in seen if f),
        "plan_given_up_at": None,
        "plan_given_up_why": None,
    }
    if seen and not seen[-1][1]:
        k = len(seen) - 1
        while k > 0 and not seen[k - 1][1]:
            k -= 1
        row["plan_given_up_at"] = seen[k][0].isoformat()
        row["plan_given_up_why"] = seen[k][2]
    return row


def _event_row(s) -> dict:
    d, c = s.delivery, s.compensation
    row = {
        "event_id": s.event_id,
        "baseline": s.method,
        "intervals": s.intervals_owned,
        "shared_with": ", ".join(s.shared_with),
        "requested_kwh": d.requested_kwh,
        "delivered_kwh": d.delivered_kwh,
        "baseline_kwh": d.baseline_kwh,
        "realised_kwh": d.realised_kwh,
        "ratio": d.ratio,
        "effective": d.effective,
        "band": list(d.band),
        "compensation_cny": None if c is None else c.total_cny,
    }
    if d.compliance is not None:
        row["cap_kw"] = d.compliance.cap_kw
        row["intervals_over_cap"] = d.compliance.intervals_over
        row["kwh_over_cap"] = d.compliance.e_over_kwh
        row["compliant_frac"] = d.compliance.compliant_frac
    return row


def _ev(result) -> dict:
    run = result.horizon
    sessions = [x for x in result.sessions if x.arrival >= run.start]
    return {
        "ev_requested_kwh": sum(x.requested_kwh for x in sessions),
        "ev_delivered_kwh": sum(min(x.delivered_kwh, x.requested_kwh) for x in sessions),
        "ev_unmet_kwh": sum(x.unmet_kwh for x in sessions),
        "ev_sessions": len(sessions),
        "ev_sessions_unmet": sum(1 for x in sessions if x.unmet_kwh > 0.01),
        "ev_to_car_kwh": float(np.sum(result.series["ev_to_car_kw"]) * run.dt_h),
    }


def _network(result) -> dict:
    b = _breaches(result)
    imp, exp = b["connection_import"], b["connection_export"]
    g = result.realised_grid
    plan = [c.grid_violation for c in result.cycles]

    def peak(x):
        return float(np.nanmax(x)) if g.checked and x.size and np.isfinite(x).any() else None

    return {
        "grid_violation_steps": g.violation_steps if g.checked else None,
        "grid_violations": g.by_element,
        "plan_grid_violation_steps": int(sum(1 for v in plan if v)) if result.grid else None,
        "trafo_loading_max_percent": peak(g.trafo_loading_max_percent),
        "line_loading_max_percent": peak(g.line_loading_max_percent),
        "v_min_pu": float(np.nanmin(g.v_min_pu)) if peak(g.v_min_pu) is not None else None,
        "v_max_pu": peak(g.v_max_pu),
        "connection_import_breach_steps": imp.steps,
        "connection_import_breach_kwh": imp.energy_kwh,
        "connection_export_breach_steps": exp.steps,
    }


def _factor_words(result) -> str:
    """The factor the CO2 figure stands on: the series (name, kind, intervals) and the
    annual factor elsewhere."""
    ef = result.site.carbon.emission_factor
    annual = f"{ef.region} {ef.year} factor {ef.ef_kg_per_kwh:g} kg/kWh (location-based)"
    spec, n = ef.series, result.horizon.n
    if spec is None:
        return annual
    k = int(np.sum(result.series.get("ef_from_series", np.zeros(n))))
    return f"series {spec.name!r} ({spec.kind}) on {k} of {n} intervals, {annual} on {n - k}"


def _price_words(result) -> str:
    """What the energy cost was billed at: the tariff's series where it covered, else TOU."""
    t, n = result.site.tariff, result.horizon.n
    if t.energy_series is None:
        return f"tariff {t.name!r} time-of-use prices"
    k = int(np.sum(result.series.get("price_from_series", np.zeros(n))))
    es = t.energy_series
    return (
        f"series {es.name!r} + network {es.network_cny_per_kwh:g} + funds "
        f"{es.fund_cny_per_kwh:g} CNY/kWh on {k} of {n} intervals (cleared, else the latest "
        f"forecast), tariff {t.name!r} time-of-use prices on {n - k}"
    )


def _notes(result) -> dict[str, str]:
    notes = {
        "measured_on": (
            "every figure is what the simulated park did; names starting with plan_ are "
            "what the dispatch intended"
        ),
        "dr_baseline": (
            "gbt37016_5of10: mean of the 5 highest-load of the last 10 similar days (3 of 5 "
            "for rest days), DR days excluded, fixed when the event is announced from the "
            "complete days before; metered import during the run, and before the start the "
            "park's import without the VPP (loads - PV, EVs and shiftable loads uncontrolled)"
        ),
        "demand_charge": (
            "monthly rate x each calendar month's realised peak import, pro-rated by the "
            "share of the month the run covers (demand_by_month)"
            if result.demand_prorate
            else "monthly rate x each calendar month's realised peak import; not pro-rated: "
            "a month the run covers in part pays the whole month's charge"
        ),
        "stored_energy": (
            "battery energy at the start less at the end, valued at the planner's terminal "
            "value (configured, else the run's mean import price x discharge efficiency)"
        ),
        "energy_tce": "all electricity consumed (import - export + PV used)",
        "ev": "sessions that arrived and departed within the run",
        "co2": f"grid import x {_factor_words(result)}; exports not credited",
        "prices": _price_words(result),
        "grid_violation_steps": (
            "AC power flow of the power each bus actually drew, every interval"
            if result.realised_grid.checked
            else result.realised_grid.note
        ),
    }
    if not result.grid:
        notes["plan_grid_violation_steps"] = (
            "the planner ran without the AC check (--grid); the realised check ran regardless"
        )
    if result.site.value_added_10k_cny_per_year is None:
        notes["intensity_tce_per_10k_cny"] = "no value added configured"
    return notes
