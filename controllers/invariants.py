"""Physics invariants checked on every dispatch, in tests and at run time.

``check(problem, result)`` returns a list of violations (empty when all hold): energy balance
per interval and per bus, SOC trajectories consistent with powers and efficiencies, SOC
bounds, device limits, EV energy by departure, connection, limit-group and PEDF converter
limits, and the objective equal to the sum of its terms. A limit may be exceeded only by what
the result reports as relaxed.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from controllers import dr_rows, group_block, on_off
from controllers.on_off import has_on_off
from controllers.problem import DispatchProblem, DispatchResult
from vpp.park.battery_detail import charge_limit_kw, stored_kw


def terminal_kw(result: DispatchResult) -> np.ndarray:
    """Sum of every device's grid-terminal power (PEDF aggregates excluded: their members are
    listed one by one)."""
    total = np.zeros(result.horizon.n)
    for s in result.assets.values():
        if s.kind != "pedf":
            total = total + s.p_kw
    return total


def _relaxed(result: DispatchResult) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = defaultdict(float)
    for r in result.relaxed:
        if r.avoidable:  # an unavoidable shortfall is outside the problem's needs already
            out[(r.constraint, r.asset)] = max(out[(r.constraint, r.asset)], r.amount)
    return out


def check(problem: DispatchProblem, result: DispatchResult, tol_kw: float = 1e-3) -> list[str]:
    v: list[str] = []
    problem = dr_rows.as_followed(problem, result)  # the DR limits the plan chose to hold
    relaxed = _relaxed(result)
    dt = problem.dt_h
    scale = max(1.0, float(np.abs(result.p_net_kw).max(initial=0.0)))
    tol = tol_kw + 1e-6 * scale
    gap = np.abs(terminal_kw(result) - result.p_net_kw).max(initial=0.0)
    if gap > tol:
        v.append(f"energy balance: park net differs from the sum of devices by {gap:.4f} kW")
    bus_sum = sum(result.bus_p_kw.values()) if result.bus_p_kw else result.p_net_kw
    gap = np.abs(bus_sum - result.p_net_kw).max(initial=0.0)
    if gap > tol:
        v.append(f"bus balance: sum of bus loads differs from park net by {gap:.4f} kW")
    v += _battery_checks(problem, result, relaxed, dt, tol)
    v += _device_checks(problem, result, tol)
    v += _ev_checks(problem, result, relaxed, dt)
    v += _site_checks(problem, result, relaxed, tol)
    # Every limit-group row (controllers.group_block), to tol_kw + 1e-6 x the park's scale.
    v += group_block.violations(problem, result, tol)
    total = sum(result.terms_cny.values())
    if result.terms_cny and abs(total - result.objective_cny) > 1e-3 + 1e-6 * abs(total):
        v.append(f"objective {result.objective_cny:.4f} != sum of its terms {total:.4f}")
    return v


def _battery_checks(p, r, relaxed, dt, tol) -> list[str]:
    v = []
    items = [(b.spec, b.e_init_kwh) for b in p.batteries]
    items += [(pe.spec.battery, pe.e_init_kwh) for pe in p.pedfs]
    for spec, e0 in items:
        s = r.assets.get(spec.name)
        if s is None:
            v.append(f"battery {spec.name}: missing from the result")
            continue
        pc = s.detail.get("p_charge_kw", np.maximum(s.p_kw, 0))
        pd = s.detail.get("p_discharge_kw", np.maximum(-s.p_kw, 0))
        if pc.max(initial=0) > spec.p_charge_max_kw + tol or pc.min(initial=0) < -tol:
            v.append(f"battery {spec.name}: charge power outside [0, {spec.p_charge_max_kw}] kW")
        if pd.max(initial=0) > spec.p_discharge_max_kw + tol or pd.min(initial=0) < -tol:
            v.append(
                f"battery {spec.name}: discharge power outside [0, {spec.p_discharge_max_kw}] kW"
            )
        if s.e_kwh is None:
            continue
        e = s.e_kwh
        # Segments filled in order, the efficient one first (vpp.park.battery_detail).
        expect = e0 + np.concatenate([[0.0], np.cumsum(stored_kw(spec, pc, pd) * dt)])
        gap = np.abs(e - expect).max(initial=0)
        if gap > 1e-3 + 1e-6 * spec.e_kwh:
            v.append(f"battery {spec.name}: SOC trajectory off its power by {gap:.4f} kWh")
        if spec.taper is not None:
            over = pc - charge_limit_kw(spec, e[:-1])
            if over.max(initial=0.0) > tol:
                v.append(f"battery {spec.name}: charge above its taper by {over.max():.4f} kW")
        lo = spec.e_min_kwh - relaxed.get(("soc_min", spec.name), 0.0) - 1e-3
        hi = spec.e_max_kwh + relaxed.get(("soc_max", spec.name), 0.0) + 1e-3
        if e[1:].min(initial=lo) < lo or e[1:].max(initial=hi) > hi:
            v.append(f"battery {spec.name}: SOC outside its bounds beyond what was relaxed")
    return v


def _device_checks(p, r, tol) -> list[str]:
    v = []
    pv_items = [(x.spec, x.p_available_kw) for x in p.pv] + [
        (pe.spec.pv, pe.pv_available_kw) for pe in p.pedfs
    ]
    for spec, avail in pv_items:
        s = r.assets[spec.name]
        gen = -s.p_kw
        if (gen > avail + tol).any() or (gen < -tol).any():
            v.append(f"pv {spec.name}: generation outside [0, available]")
        if not spec.curtailable and (gen < avail - tol).any():
            v.append(f"pv {spec.name}: curtailed although not curtailable")
    cur = [(c.spec, c.baseline_kw) for c in p.curtailables]
    cur += [(pe.spec.flexible_load, pe.flex_baseline_kw) for pe in p.pedfs if pe.spec.flexible_load]
    for spec, base in cur:
        s = r.assets[spec.name]
        if (s.p_kw > base + tol).any() or (s.p_kw < base * (1 - spec.curtail_max_frac) - tol).any():
            v.append(f"curtailable {spec.name}: outside [baseline x (1 - max fraction), baseline]")
    for sh in p.shiftables:
        s = r.assets[sh.spec.name]
        allowed = np.zeros(p.n, dtype=bool)
        for w in sh.windows:
            allowed[max(w.start_k, 0) : min(w.end_k, p.n)] = True
        if (s.p_kw > sh.spec.p_max_kw + tol).any() or (s.p_kw < -tol).any():
            v.append(f"shiftable {sh.spec.name}: power outside [0, {sh.spec.p_max_kw}] kW")
        if (np.abs(s.p_kw[~allowed]) > tol).any():
            v.append(f"shiftable {sh.spec.name}: runs outside its window")
        if has_on_off(sh) and not _relaxed_on_off(r):
            v += on_off.violations(sh, s.p_kw, tol)
    return v


def _relaxed_on_off(result: DispatchResult) -> bool:
    """The fallback solver dropped the integrality of on/off states, and said so."""
    return on_off.RELAXED_MESSAGE in result.messages


def _ev_checks(p, r, relaxed, dt) -> list[str]:
    v = []
    for ch in p.ev_chargers:
        s = r.assets[ch.spec.name]
        present = np.zeros(p.n, dtype=bool)
        for sess in ch.sessions:
            a, d = max(sess.arrival_k, 0), min(sess.departure_k, p.n)
            present[a:d] = True
            into = s.detail.get("p_to_car_kw", s.p_kw * ch.spec.eta)[a:d].sum() * dt
            short = sess.e_needed_kwh - into - relaxed.get(("ev_energy", sess.session_id), 0.0)
            if short > 1e-2:
                v.append(f"ev session {sess.session_id}: {short:.3f} kWh short at departure")
        if (np.abs(s.p_kw[~present]) > 1e-3).any():
            v.append(f"ev charger {ch.spec.name}: power while no car is plugged in")
        lo = -ch.spec.p_max_kw if ch.spec.v2g else 0.0
        if (s.p_kw > ch.spec.p_max_kw + 1e-3).any() or (s.p_kw < lo - 1e-3).any():
            v.append(f"ev charger {ch.spec.name}: power outside [{lo}, {ch.spec.p_max_kw}] kW")
    return v


def _site_checks(p, r, relaxed, tol) -> list[str]:
    v = []
    imp = np.maximum(r.p_net_kw, 0)
    exp = np.maximum(-r.p_net_kw, 0)
    over = imp - p.import_max_kw - relaxed.get(("import_limit", "connection"), 0.0)
    if over.max(initial=0) > tol:
        v.append(
            f"connection: import above its limit by {over.max():.3f} kW beyond what was relaxed"
        )
    over = exp - p.export_max_kw - relaxed.get(("export_limit", "connection"), 0.0)
    if over.max(initial=0) > tol:
        v.append(
            f"connection: export above its limit by {over.max():.3f} kW beyond what was relaxed"
        )
    # The corridor's relaxations are named after the event owning each interval.
    dr_relaxed = max((a for (c, _), a in relaxed.items() if c == "dr_import_cap"), default=0.0)
    over = r.p_net_kw - p.dr_max() - dr_relaxed
    if over.max(initial=0) > tol:
        v.append(f"demand response: import above the DR cap by {over.max():.3f} kW")
    for pe in p.pedfs:
        s = r.assets.get(pe.spec.name)
        if s is None:
            continue
        lim = pe.spec.converter_kw + relaxed.get(("pedf_converter", pe.spec.name), 0.0)
        if np.abs(s.p_kw).max(initial=0) > lim + tol:
            v.append(
                f"pedf {pe.spec.name}: exchange beyond the converter's {pe.spec.converter_kw} kW"
            )
    return v
