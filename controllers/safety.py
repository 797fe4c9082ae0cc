"""The last safety layer: every setpoint sent to a device lies within that device's limits,
whatever the solver returned (NaN, a tolerance overshoot, a stale plan).

Pure: it takes the problem (limits, measured state) and proposed setpoints for interval
``k`` and returns clamped setpoints with a record of every change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controllers.problem import DispatchProblem
from controllers.step_rounding import drop_lifts, round_chargers, stepped
from vpp.park.battery_detail import charge_for_room_kw, charge_limit_kw, discharge_for_energy_kw


@dataclass(frozen=True)
class Clamp:
    asset: str
    proposed_kw: float
    sent_kw: float
    reason: str


def _interval(lo: float, hi: float, value: float) -> float:
    return min(max(value, lo), hi)


def limits_kw(problem: DispatchProblem, k: int = 0) -> dict[str, tuple[float, float]]:
    """The power range (load convention) each controllable device may be sent at interval k."""
    p, dt = problem, problem.dt_h
    out: dict[str, tuple[float, float]] = {}
    bats = [(b.spec, b.e_init_kwh) for b in p.batteries] + [
        (pe.spec.battery, pe.e_init_kwh) for pe in p.pedfs
    ]
    for spec, e0 in bats if k == 0 else [(s, None) for s, _ in bats]:
        hi, lo = spec.p_charge_max_kw, -spec.p_discharge_max_kw
        if e0 is not None and (spec.taper is not None or spec.efficiency_segments):
            # The optional detail, as the simulated park has it (vpp.park.battery_detail).
            hi = min(hi, float(charge_limit_kw(spec, e0)))
            hi = min(hi, charge_for_room_kw(spec, spec.e_max_kwh - e0, dt))
            lo = max(lo, -discharge_for_energy_kw(spec, e0 - spec.e_min_kwh, dt))
        elif e0 is not None:  # the measured SOC limits what the next interval can do
            hi = min(hi, max(spec.e_max_kwh - e0, 0.0) / (spec.eta_charge * dt))
            lo = max(lo, -max(e0 - spec.e_min_kwh, 0.0) * spec.eta_discharge / dt)
        out[spec.name] = (lo, hi)
    pv = [(x.spec, x.p_available_kw[k]) for x in p.pv] + [
        (pe.spec.pv, pe.pv_available_kw[k]) for pe in p.pedfs
    ]
    for spec, avail in pv:
        out[spec.name] = (
            (-min(spec.inverter_kw, max(avail, 0.0)), 0.0)
            if spec.curtailable
            else (-min(spec.inverter_kw, max(avail, 0.0)), -min(spec.inverter_kw, max(avail, 0.0)))
        )
    for ch in p.ev_chargers:
        here = [s for s in ch.sessions if s.arrival_k <= k < s.departure_k]
        p_max = min([ch.spec.p_max_kw] + [s.p_max_kw for s in here]) if here else 0.0
        out[ch.spec.name] = (-p_max if ch.spec.v2g else 0.0, p_max)
    for sh in p.shiftables:
        inside = any(w.start_k <= k < w.end_k for w in sh.windows)
        out[sh.spec.name] = (0.0, sh.spec.p_max_kw if inside else 0.0)
    cur = [(c.spec, c.baseline_kw[k]) for c in p.curtailables]
    cur += [
        (pe.spec.flexible_load, pe.flex_baseline_kw[k]) for pe in p.pedfs if pe.spec.flexible_load
    ]
    for spec, base in cur:
        out[spec.name] = (base * (1.0 - spec.curtail_max_frac), base)
    for pe in p.pedfs:
        out[pe.spec.name] = (-pe.spec.converter_kw, pe.spec.converter_kw)
    return out


def safe_setpoint_kw(problem: DispatchProblem, asset: str, k: int = 0) -> float:
    """What a device is held at when its plan cannot be trusted (stale telemetry, NaN):
    storage and chargers idle, PV uncurtailed, loads at their baseline."""
    lo, hi = limits_kw(problem, k)[asset]
    pv = {x.spec.name for x in problem.pv} | {pe.spec.pv.name for pe in problem.pedfs}
    if asset in pv:
        return lo  # all the PV available: never curtail blind
    return _interval(lo, hi, 0.0) if lo <= 0.0 else hi


HELD_STALE = "held: telemetry stale"  # the one reason an asset is held for stale telemetry


def held_reasons(problem: DispatchProblem, hold: frozenset[str]) -> dict[str, str]:
    """The assets of ``hold`` that are actually held, with why: the controllable ones
    (those :func:`limits_kw` bounds). One definition for the setpoints (:func:`clamp`), the
    plan's schedules (:func:`vpp.plan.cycle.hold_plan`) and the flexibility envelope: an
    uncontrollable asset (a base load) in ``hold`` is sent nothing and so is not held.

    Parameters
    ----------
    problem : DispatchProblem
        The interval's problem (limits, measured state).
    hold : frozenset of str
        Asset names to hold (stale telemetry).

    Returns
    -------
    dict of str to str
        Held asset name -> reason (:data:`HELD_STALE`).
    """
    lim = limits_kw(problem, 0)
    return {name: HELD_STALE for name in sorted(hold) if name in lim}


def pinned(problem: DispatchProblem, hold: frozenset[str]) -> DispatchProblem:
    """``problem`` with the assets of ``hold`` that :func:`held_reasons` holds pinned at their
    safe setpoint over the horizon, so that the plan does not count on what it cannot steer:
    a battery idle (no charge, no discharge), a charger idle (its sessions left out: it can
    deliver nothing while held), a shiftable load off (its windows left out), a curtailable
    load at its baseline, a PV array uncurtailed. The plan's import is then what the park
    will draw with them held; before, a DR cap was "met" on paper by discharging a storage
    PCS that was not answering and was sent 0 kW (:func:`vpp.plan.cycle.hold_plan` made the
    schedules agree only after the solve, not the decisions around them).

    A PEDF building's converter is not pinned here (held at 0 kW exchange for the whole
    horizon the building would have to island, which a one-interval telemetry gap does not
    mean); its held exchange is applied after the solve, as before. Its battery and PV,
    when they are the stale ones, are pinned like the others."""
    held = set(held_reasons(problem, hold))
    if not held:
        return problem
    from dataclasses import replace

    def idle(spec):
        return replace(spec, p_charge_max_kw=0.0, p_discharge_max_kw=0.0)

    bats = tuple(
        replace(b, spec=idle(b.spec)) if b.spec.name in held else b for b in problem.batteries
    )
    evs = tuple(
        replace(c, spec=replace(c.spec, p_max_kw=0.0, v2g=False), sessions=())
        if c.spec.name in held
        else c
        for c in problem.ev_chargers
    )
    shifts = tuple(replace(x, windows=()) if x.spec.name in held else x for x in problem.shiftables)
    curts = tuple(
        replace(c, spec=replace(c.spec, curtail_max_frac=0.0)) if c.spec.name in held else c
        for c in problem.curtailables
    )
    pvs = tuple(
        replace(x, spec=replace(x.spec, curtailable=False)) if x.spec.name in held else x
        for x in problem.pv
    )
    pedfs = tuple(
        replace(
            pe,
            spec=replace(
                pe.spec,
                battery=idle(pe.spec.battery) if pe.spec.battery.name in held else pe.spec.battery,
                pv=replace(pe.spec.pv, curtailable=False)
                if pe.spec.pv.name in held
                else pe.spec.pv,
            ),
        )
        for pe in problem.pedfs
    )
    return replace(
        problem,
        batteries=bats,
        ev_chargers=evs,
        shiftables=shifts,
        curtailables=curts,
        pv=pvs,
        pedfs=pedfs,
    )


def held_schedule_kw(problem: DispatchProblem, asset: str) -> np.ndarray:
    """The held asset's power over the horizon (kW, load convention): its safe setpoint
    (:func:`safe_setpoint_kw`) in every interval, as if its telemetry stays stale."""
    return np.array([safe_setpoint_kw(problem, asset, k) for k in range(problem.n)])


def _min_power(problem: DispatchProblem, name: str, value: float, k: int) -> tuple[float, str]:
    """Chargers and shiftable loads with a minimum running power: a setpoint between 0 and
    the minimum goes to the nearer of the two, except that a charger whose plugged car still
    needs energy charges at the minimum (the car stops when full): rounding its remainder
    down would repeat every interval until the car left unserved."""
    mins = {c.spec.name: c.spec.p_min_kw for c in problem.ev_chargers}
    mins |= {s.spec.name: s.spec.p_min_kw for s in problem.shiftables}
    p_min = mins.get(name, 0.0)
    if p_min > 0 and 0 < abs(value) < p_min:
        up = abs(value) >= p_min / 2 or (value > 0 and _car_needs_energy(problem, name, k))
        snapped = math.copysign(p_min, value) if up else 0.0
        return snapped, f"below the minimum running power {p_min} kW"
    return value, ""


def _car_needs_energy(problem: DispatchProblem, name: str, k: int) -> bool:
    for c in problem.ev_chargers:
        if c.spec.name == name:
            return any(
                s.arrival_k <= k < s.departure_k and s.e_needed_kwh > 1e-6 for s in c.sessions
            )
    return False


def _asset_buses(problem: DispatchProblem) -> dict[str, str]:
    """The bus of every charger and shiftable load (the assets a minimum power can raise)."""
    out = {c.spec.name: c.spec.bus for c in problem.ev_chargers}
    out |= {s.spec.name: s.spec.bus for s in problem.shiftables}
    return out


def _room_kw(
    problem: DispatchProblem, k: int, plan_bus_kw: dict[str, float], plan_net_kw: float
) -> tuple[dict[str, float], float]:
    """What the plan left under each bus limit and under the park's import limit (the
    connection, less nothing, and a DR cap) at interval ``k`` (kW, >= 0)."""
    bus_max = np.asarray(problem.bus_max(), dtype=float)
    rooms = {}
    for i, b in enumerate(problem.buses):
        cap = bus_max[i, k] if bus_max.ndim == 2 else bus_max[i]
        rooms[b] = max(float(cap) - plan_bus_kw.get(b, 0.0), 0.0)
    park_cap = min(float(problem.import_max_kw[k]), float(problem.dr_max()[k]))
    return rooms, max(park_cap - plan_net_kw, 0.0)


def clamp(
    problem: DispatchProblem,
    setpoints_kw: dict[str, float],
    k: int = 0,
    hold: frozenset[str] = frozenset(),
    plan_bus_kw: dict[str, float] | None = None,
    plan_net_kw: float | None = None,
) -> tuple[dict[str, float], list[Clamp]]:
    """Setpoints within limits; ``hold``: assets to hold at their safe setpoint.

    ``plan_bus_kw`` / ``plan_net_kw``: the plan's power per bus and the park's net import at
    ``k``. Given them, a minimum running power never lifts a setpoint over a limit the plan
    kept: what a rounding up to ``p_min_kw`` adds must fit in the room the plan left under
    the bus limit and under the park's import limit (connection, DR cap), rounding by
    rounding in the order of the setpoints; one that does not fit is rounded down to 0
    instead (two chargers at 1.664 kW minimum on a bus capped at 1.0 kW, planned {0, 1.0},
    were sent 1.664 kW; now {0, 0})."""
    lim = limits_kw(problem, k)
    held = held_reasons(problem, hold)
    out: dict[str, float] = {}
    events: list[Clamp] = []
    guard = plan_bus_kw is not None and plan_net_kw is not None
    # With limit groups or pilot steps, chargers are rounded against every row at once
    # (controllers.step_rounding), after the per-device clamp; without, as before.
    rows_round = stepped(problem)
    chargers = {c.spec.name for c in problem.ev_chargers} if rows_round else set()
    lifted: list[str] = []  # loads lifted to their minimum running power (rows_round)
    if guard:
        rooms, park_room = _room_kw(problem, k, plan_bus_kw, plan_net_kw)
        bus_of = _asset_buses(problem)
    for name, value in setpoints_kw.items():
        if name not in lim:
            out[name] = value  # uncontrollable (a base load): informational
            continue
        lo, hi = lim[name]
        if name in held:
            sent, reason = safe_setpoint_kw(problem, name, k), held[name]
        elif value is None or not math.isfinite(value):
            sent, reason = safe_setpoint_kw(problem, name, k), "not a number"
        else:
            sent = _interval(lo, hi, value)
            reason = f"outside [{lo:.3f}, {hi:.3f}] kW" if abs(sent - value) > 1e-6 else ""
            if name in chargers:
                out[name] = sent
                if reason:
                    events.append(Clamp(name, float(value), sent, reason))
                continue
            before = sent
            sent, why = _min_power(problem, name, sent, k)
            reason = reason or why
            sent = _interval(lo, hi, sent)
            raised = sent - before
            if rows_round and raised > 1e-9:
                lifted.append(name)  # kept only where every row keeps room (below)
            if guard and raised > 1e-9 and name in bus_of:
                bus = bus_of[name]
                if raised <= rooms.get(bus, 0.0) + 1e-9 and raised <= park_room + 1e-9:
                    rooms[bus] = rooms.get(bus, 0.0) - raised
                    park_room -= raised
                else:
                    sent = 0.0
                    reason = (
                        f"below the minimum running power, rounded down: rounding up would "
                        f"break the limit of bus {bus} or the park's import limit"
                    )
        out[name] = sent
        if reason:
            events.append(
                Clamp(name, float(value) if value is not None else math.nan, sent, reason)
            )
    if rows_round:
        free = {c for c in chargers if c in out and c not in held and _finite(setpoints_kw[c])}
        proposed = {c: float(setpoints_kw[c]) for c in free}
        out, rounded = round_chargers(problem, k, out, proposed, lim)
        out, dropped = drop_lifts(problem, k, out, lifted)
        more = [Clamp(*e) for e in rounded]
        more += [Clamp(n, float(setpoints_kw[n]), 0.0, why) for n, why in dropped]
        events = [e for e in events if e.asset not in {m.asset for m in more}] + more
    return out, events


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)
