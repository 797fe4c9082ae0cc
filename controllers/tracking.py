"""Grid-point tracking: the park meter held to the plan between cycles, by the batteries.

A plan is made every interval from forecasts; the park's load then does what it does, and
over 15 minutes a building's load can stray hundreds of kW from its forecast. A DR response
is settled on the metered energy, the demand charge on the metered interval mean and the
connection on the metered power, so the error lands on exactly the figures the plan was
made for. Every battery system with a site meter can do what the plan cannot: hold the
meter (the point of common coupling) at a target by moving its own power as the meter
reading moves, the "grid-point" or "peak-shaving" mode of commercial storage controllers.

This module is the computation of that local loop, pure: :func:`target` turns a cycle's
plan into a :class:`TrackingTarget` for its first interval, and :func:`correct` turns a
meter reading into battery setpoints. The field driver runs it on every park-meter reading
(:mod:`vpp.drivers.field`); the simulated park runs it on the interval's realised mean
(:mod:`vpp.sim.simulated_park`), which is the local loop at its limit (instant, exact), so
the simulation's figures with tracking are what a fast local loop achieves, no better.

What the target holds (net import at the park meter, kW, + import):

- ``cap_kw``: never above the connection's import limit, a DR cap, or the month's peak so
  far (unless the plan itself means to set a new peak: then its planned import);
- ``floor_kw``: never below the export limit or a DR floor (valley filling);
- ``aim_kw``: inside a DR event's own interval that the plan follows, the plan's import
  itself, since the event is settled on energy: the meter is held there, both directions.

Each battery's room is what the safety layer allows it this interval
(:func:`controllers.safety.limits_kw`, SOC included) and what its bus's limit leaves around
the plan (above it for charging, below it for discharging into a bus that exports); a
battery that is stale, held or inside a PEDF building is not used.
Whatever the reading, :func:`correct` never leaves a battery's room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult

DEADBAND_KW = 1.0  # a deviation smaller than this is not corrected (meter noise)


@dataclass(frozen=True)
class BatteryRoom:
    """One battery the loop may move: the plan's setpoint and the range it may be sent
    (load convention, kW: + charge)."""

    name: str
    planned_kw: float
    lo_kw: float
    hi_kw: float


@dataclass(frozen=True)
class TrackingTarget:
    """What the local loop holds at the park meter over one interval."""

    start: datetime
    end: datetime
    planned_import_kw: float  # the plan's net import (+) at the park meter
    cap_kw: float  # +inf: no cap
    floor_kw: float  # -inf: no floor
    aim_kw: float | None  # None: only the corridor is held
    batteries: tuple[BatteryRoom, ...] = ()
    why: tuple[str, ...] = field(default_factory=tuple)  # what set the cap, floor and aim

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def as_dict(self) -> dict:
        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(float(x), 3)

        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "planned_import_kw": num(self.planned_import_kw),
            "cap_kw": num(self.cap_kw),
            "floor_kw": num(self.floor_kw),
            "aim_kw": num(self.aim_kw),
            "batteries": [
                {
                    "name": b.name,
                    "planned_kw": num(b.planned_kw),
                    "lo_kw": num(b.lo_kw),
                    "hi_kw": num(b.hi_kw),
                }
                for b in self.batteries
            ],
            "why": list(self.why),
        }


def target(
    problem: DispatchProblem,
    result: DispatchResult,
    setpoints_kw: dict[str, float],
    limits_kw: dict[str, tuple[float, float]],
    excluded: frozenset[str] = frozenset(),
) -> TrackingTarget | None:
    """The tracking target of the plan's first interval.

    Parameters
    ----------
    problem, result : the interval's problem and the plan carried out (after holds).
    setpoints_kw : the setpoints sent this interval (after the safety clamp).
    limits_kw : :func:`controllers.safety.limits_kw` of the problem at interval 0.
    excluded : batteries the loop must not move (stale, held).

    Returns
    -------
    TrackingTarget, or None when the plan has no interval or no battery may move.
    """
    if problem.n == 0 or len(result.p_net_kw) == 0:
        return None
    planned = float(result.p_net_kw[0])
    why: list[str] = []
    cap = float(problem.import_max_kw[0])
    if math.isfinite(cap):
        why.append(f"connection import limit {cap:.0f} kW")
    dr_cap, dr_floor = float(problem.dr_max()[0]), float(problem.dr_min()[0])
    if dr_cap < cap:
        cap = dr_cap
        why.append(f"DR cap {dr_cap:.0f} kW")
    if problem.demand_charge_cny_per_kw > 0:
        peak = max(problem.month_peak_import_kw, planned)
        if peak < cap:
            cap = peak
            why.append(f"month peak {peak:.0f} kW (demand charge)")
    floor = -float(problem.export_max_kw[0])
    if dr_floor > floor:
        floor = dr_floor
        why.append(f"DR floor {dr_floor:.0f} kW")
    aim = None
    for row in problem.dr_rows:
        if row.follow and len(row.owned) and bool(row.owned[0]):
            aim = planned
            why.append(f"DR event {row.event_id}: held at the plan's import (settled on energy)")
            break
    pedf_batteries = {pe.spec.battery.name for pe in problem.pedfs}
    plan_bus = {b: float(v[0]) for b, v in result.bus_p_kw.items() if len(v)}
    rooms = []
    for b in problem.batteries:
        name = b.spec.name
        if name in excluded or name in pedf_batteries or name not in setpoints_kw:
            continue
        lo, hi = limits_kw.get(name, (0.0, 0.0))
        sp = float(setpoints_kw[name])
        up, down = _bus_room_kw(problem, b.spec.bus, plan_bus)
        hi, lo = min(hi, sp + up), max(lo, sp - down)
        lo, hi = min(lo, sp), max(hi, sp)  # the sent setpoint is always in its own room
        if hi - lo > 1e-9:
            rooms.append(BatteryRoom(name, sp, lo, hi))
    if not rooms:
        return None
    start = problem.horizon.start
    return TrackingTarget(
        start, start + problem.horizon.step, planned, cap, floor, aim, tuple(rooms), tuple(why)
    )


def _bus_room_kw(
    problem: DispatchProblem, bus: str, plan_bus: dict[str, float]
) -> tuple[float, float]:
    """How much more the bus may draw than planned, and how much less (kW, >= 0; +inf
    without a bus limit). A building transformer's limit holds both ways: the bus may not
    export more than its import limit either."""
    if bus not in problem.buses or bus not in plan_bus:
        return math.inf, math.inf
    lim = float(np.asarray(problem.bus_max(), dtype=float)[problem.bus_index(bus)])
    if not math.isfinite(lim):
        return math.inf, math.inf
    return max(lim - plan_bus[bus], 0.0), max(lim + plan_bus[bus], 0.0)


def wanted_change_kw(t: TrackingTarget, measured_import_kw: float) -> float:
    """How far the meter should move (kW, + = more import) given a reading taken with the
    batteries at their planned setpoints: to the aim, or into the corridor, else 0."""
    m = measured_import_kw
    if t.aim_kw is not None:
        goal = min(max(t.aim_kw, t.floor_kw), t.cap_kw)
    else:
        goal = min(max(m, t.floor_kw), t.cap_kw)
    d = goal - m
    return 0.0 if abs(d) < DEADBAND_KW else d


def correct(
    t: TrackingTarget, measured_import_kw: float, battery_now_kw: dict[str, float] | None = None
) -> dict[str, float]:
    """Battery setpoints that bring the meter to the target.

    Parameters
    ----------
    t : the interval's target.
    measured_import_kw : the park meter's net import (kW, + import) with the batteries at
        ``battery_now_kw``.
    battery_now_kw : what each battery of the target is doing when the reading is taken
        (default: its planned setpoint).

    Returns
    -------
    dict of battery name to setpoint (kW, load convention), each within its room. The
    change is shared in proportion to the room each battery has in the direction needed.
    """
    now = {b.name: b.planned_kw for b in t.batteries}
    if battery_now_kw:
        now.update({k: v for k, v in battery_now_kw.items() if k in now})
    # What the meter would read with every battery at its planned setpoint.
    base = measured_import_kw - sum(now[b.name] - b.planned_kw for b in t.batteries)
    d = wanted_change_kw(t, base)
    out = {b.name: min(max(b.planned_kw, b.lo_kw), b.hi_kw) for b in t.batteries}
    if d == 0.0:
        return out
    room = {
        b.name: (b.hi_kw - b.planned_kw) if d > 0 else (b.planned_kw - b.lo_kw) for b in t.batteries
    }
    total = sum(max(r, 0.0) for r in room.values())
    if total <= 0.0:
        return out
    share = min(abs(d) / total, 1.0)
    for b in t.batteries:
        move = max(room[b.name], 0.0) * share
        out[b.name] = min(max(b.planned_kw + math.copysign(move, d), b.lo_kw), b.hi_kw)
    return out
