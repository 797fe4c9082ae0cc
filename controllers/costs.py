"""The objective, evaluated in numpy on any schedule: the yardstick every controller is
measured by (the optimiser's own terms must agree with it; a baseline that breaks a limit pays
the same penalty the optimiser would).
"""

from __future__ import annotations

import numpy as np

from controllers import dr_rows, grid_friendly, meter_block
from controllers.blocks import PV_CURTAIL_CNY_PER_KWH, battery_reserves_kwh
from controllers.problem import DispatchProblem, DispatchResult, Relaxation, effective_export_price


def evaluate(problem: DispatchProblem, result: DispatchResult) -> dict[str, float]:
    """Objective terms (CNY) of ``result`` under ``problem``'s prices, limits and penalties
    (the DR events the plan chose not to follow priced as such: ``dr_penalty``)."""
    p, dt = dr_rows.as_followed(problem, result), problem.dt_h
    pen = p.penalties
    imp = np.maximum(result.p_net_kw, 0.0)
    exp = np.maximum(-result.p_net_kw, 0.0)
    peak = max(float((imp + p.peak_margin()).max(initial=0.0)), p.month_peak_import_kw)
    terms = {
        "energy_import": float(dt * p.price_import_cny_per_kwh @ imp),
        "energy_export": -float(dt * effective_export_price(p) @ exp),
        "demand_charge": p.demand_charge_cny_per_kw * (peak - p.month_peak_import_kw),
        "carbon": float(dt * (p.ef() * p.carbon_price_cny_per_kg) @ imp),
        "degradation": 0.0,
        "terminal_value": 0.0,
        "pv_curtailment": 0.0,
        "load_curtailment": 0.0,
        "pedf_target": 0.0,
        "dr_revenue": -dr_rows.dr_revenue_cny(p, result.p_net_kw),
        "dr_penalty": dr_rows.dr_penalty_cny(p, result.p_net_kw),
        "grid_friendly": grid_friendly.cost_cny(
            p,
            result.p_net_kw,
            _throughput_kw(p, result),
            _curtailed_kw(p, result),
        ),
    }
    if meter_block.active(p):  # each meter billed on its own (controllers.meter_block)
        terms |= meter_block.meter_terms_cny(p, result.bus_p_kw)
    penalty = 0.0
    bats = [(b.spec, b.terminal_value_cny_per_kwh) for b in p.batteries]
    bats += [(pe.spec.battery, pe.terminal_value_cny_per_kwh) for pe in p.pedfs]
    terms["margin_shortfall"] = 0.0
    for (spec, _), reserve in zip(bats, battery_reserves_kwh(p), strict=True):
        e = result.assets[spec.name].e_kwh
        if e is not None and reserve.any():
            short = np.clip(spec.e_min_kwh + reserve - e[1:], 0.0, reserve)
            terms["margin_shortfall"] += p.reserve_cny_per_kwh_h * dt * float(short.sum())
    for spec, tv in bats:
        s = result.assets[spec.name]
        pc = s.detail.get("p_charge_kw", np.maximum(s.p_kw, 0.0))
        pd = s.detail.get("p_discharge_kw", np.maximum(-s.p_kw, 0.0))
        terms["degradation"] += spec.degradation_cny_per_kwh * dt * float((pc + pd).sum())
        e = s.e_kwh if s.e_kwh is not None else np.zeros(p.n + 1)
        terms["terminal_value"] -= tv * float(e[-1])
        below = np.maximum(spec.e_min_kwh - e[1:], 0.0)
        above = np.maximum(e[1:] - spec.e_max_kwh, 0.0)
        penalty += pen.soc_bounds_cny_per_kwh * float((below + above).sum())
    pv = [(x.p_available_kw, x.spec.name) for x in p.pv]
    pv += [(pe.pv_available_kw, pe.spec.pv.name) for pe in p.pedfs]
    for avail, name in pv:
        terms["pv_curtailment"] += (
            PV_CURTAIL_CNY_PER_KWH * dt * float((avail + result.assets[name].p_kw).sum())
        )
    cur = [(c.spec, c.baseline_kw) for c in p.curtailables]
    cur += [(pe.spec.flexible_load, pe.flex_baseline_kw) for pe in p.pedfs if pe.spec.flexible_load]
    for spec, base in cur:
        cut = np.maximum(base - result.assets[spec.name].p_kw, 0.0)
        terms["load_curtailment"] += spec.cost_cny_per_kwh * dt * float(cut.sum())
        penalty += pen.give_way_cny_per_kwh("comfort", spec.give_way) * dt * float(cut.sum())
    penalty += _ev_penalty(p, result) + _shiftable_penalty(p, result)
    penalty += _site_penalty(p, result, imp, exp)
    for pe in p.pedfs:
        s = result.assets.get(pe.spec.name)
        if s is not None:
            conv = pe.spec.converter_kw
            over = np.maximum(np.abs(s.p_kw) - conv, 0.0)
            penalty += pen.pedf_converter_cny_per_kwh * dt * float(over.sum())
            imp_lim, exp_lim = pe.converter_limits_kw(p.n)
            into = np.clip(s.p_kw - imp_lim, 0.0, conv - imp_lim)
            into += np.clip(-s.p_kw - exp_lim, 0.0, conv - exp_lim)
            terms["margin_shortfall"] += p.reserve_cny_per_kwh_h * dt * float(into.sum())
            if pe.exchange_target_kw is not None:
                has = np.isfinite(pe.exchange_target_kw)
                dev = np.abs(s.p_kw - np.where(has, pe.exchange_target_kw, 0.0))[has]
                terms["pedf_target"] += pe.target_weight_cny_per_kwh * dt * float(dev.sum())
    terms["penalties"] = penalty
    return terms


def _curtailed_kw(p: DispatchProblem, result: DispatchResult) -> float:
    """PV curtailed, summed over arrays (PEDF ones too) and intervals (kW)."""
    pv = [(x.p_available_kw, x.spec.name) for x in p.pv]
    pv += [(pe.pv_available_kw, pe.spec.pv.name) for pe in p.pedfs]
    return sum(float((avail + result.assets[name].p_kw).sum()) for avail, name in pv)


def _throughput_kw(p: DispatchProblem, result: DispatchResult) -> np.ndarray:
    """Every battery's charge + discharge power (kW, (m, n)): batteries, then PEDF ones."""
    specs = [b.spec for b in p.batteries] + [pe.spec.battery for pe in p.pedfs]
    rows = []
    for spec in specs:
        s = result.assets[spec.name]
        pc = s.detail.get("p_charge_kw", np.maximum(s.p_kw, 0.0))
        pd = s.detail.get("p_discharge_kw", np.maximum(-s.p_kw, 0.0))
        rows.append(np.asarray(pc) + np.asarray(pd))
    return np.array(rows).reshape(len(specs), p.n)


def total(terms: dict[str, float]) -> float:
    return float(sum(terms.values()))


def _ev_penalty(p: DispatchProblem, r: DispatchResult) -> float:
    out = 0.0
    for ch in p.ev_chargers:
        s = r.assets[ch.spec.name]
        into = s.detail.get("p_to_car_kw", s.p_kw * ch.spec.eta)
        for sess in ch.sessions:
            a, d = max(sess.arrival_k, 0), min(sess.departure_k, p.n)
            short = max(sess.e_needed_kwh - float(into[a:d].sum()) * p.dt_h, 0.0)
            weight = p.penalties.give_way_cny_per_kwh("ev_energy", sess.give_way)
            out += weight * short
            if sess.target_k is not None:
                got = float(into[a : min(sess.target_k, d)].sum()) * p.dt_h
                out += weight * max(sess.target_e_kwh - got, 0.0)
    return out


def _shiftable_penalty(p: DispatchProblem, r: DispatchResult) -> float:
    out = 0.0
    for sh in p.shiftables:
        pw = r.assets[sh.spec.name].p_kw
        weight = p.penalties.give_way_cny_per_kwh("shiftable_energy", sh.spec.give_way)
        for w in sh.windows:
            done = float(pw[max(w.start_k, 0) : min(w.end_k, p.n)].sum()) * p.dt_h
            out += weight * max(w.e_kwh - done, 0.0)
    return out


def _site_penalty(p: DispatchProblem, r: DispatchResult, imp: np.ndarray, exp: np.ndarray) -> float:
    pen, dt = p.penalties, p.dt_h
    out = pen.connection_cny_per_kwh * dt * float(np.maximum(imp - p.import_max_kw, 0.0).sum())
    out += pen.connection_cny_per_kwh * dt * float(np.maximum(exp - p.export_max_kw, 0.0).sum())
    net = r.p_net_kw
    out += pen.dr_cny_per_kwh * dt * float(np.maximum(net - p.dr_max(), 0.0).sum())
    out += pen.dr_cny_per_kwh * dt * float(np.maximum(p.dr_min() - net, 0.0).sum())
    short, over = dr_rows.energy_excess_kwh(p, net)
    out += pen.dr_cny_per_kwh * float(short.sum() + over.sum())
    aim, on = dr_rows.aim_kw(p)
    out += dr_rows.AIM_CNY_PER_KWH * dt * float(np.abs(net - aim)[on].sum())
    rsv_max, rsv_min = dr_rows.reserve_limits(p)
    short = np.maximum(net - rsv_max, 0.0) + np.maximum(rsv_min - net, 0.0)
    out += dr_rows.RESERVE_CNY_PER_KWH * dt * float(short.sum())
    bus_max = p.bus_max()
    for i, b in enumerate(p.buses):
        if b in r.bus_p_kw and np.isfinite(bus_max[i]):
            out += (
                pen.network_cny_per_kwh
                * dt
                * float(np.maximum(r.bus_p_kw[b] - bus_max[i], 0).sum())
            )
    for c in p.network:
        coeff = np.asarray(c.coeff_per_kw)
        flow = sum(coeff[i] * r.bus_p_kw[b] for i, b in enumerate(p.buses) if b in r.bus_p_kw)
        out += pen.network_cny_per_kwh * dt * float(np.maximum(flow - c.limit, 0.0).sum())
    return out


def violations(problem: DispatchProblem, result: DispatchResult) -> list[Relaxation]:
    """What a schedule breaks, in the optimiser's terms (for heuristics, which have no slack):
    connection and DR limits (kW), EV energy (kWh per session), SOC bounds (kWh)."""
    p, out = problem, []

    def steps(mask: np.ndarray) -> tuple[int, ...]:
        return tuple(int(k) for k in np.nonzero(mask)[0])

    net = result.p_net_kw
    site = [
        ("import_limit", np.maximum(net, 0.0) - p.import_max_kw),
        ("export_limit", np.maximum(-net, 0.0) - p.export_max_kw),
        ("dr_import_cap", net - p.dr_max()),
        ("dr_import_floor", p.dr_min() - net),
    ]
    for name, over in site:
        if (over > 1e-6).any():
            out.append(Relaxation(name, "connection", steps(over > 1e-6), float(over.max()), "kW"))
    for ch in p.ev_chargers:
        s = result.assets[ch.spec.name]
        into = s.detail.get("p_to_car_kw", s.p_kw * ch.spec.eta)
        for sess in ch.sessions:
            a, d = max(sess.arrival_k, 0), min(sess.departure_k, p.n)
            short = sess.e_needed_kwh - float(into[a:d].sum()) * p.dt_h
            if short > 1e-6:
                out.append(Relaxation("ev_energy", sess.session_id, (), short, "kWh"))
    bats = [b.spec for b in p.batteries] + [pe.spec.battery for pe in p.pedfs]
    for spec in bats:
        e = result.assets[spec.name].e_kwh
        if e is None:
            continue
        for name, gap in (("soc_min", spec.e_min_kwh - e[1:]), ("soc_max", e[1:] - spec.e_max_kwh)):
            if (gap > 1e-6).any():
                out.append(Relaxation(name, spec.name, steps(gap > 1e-6), float(gap.max()), "kWh"))
    return out
