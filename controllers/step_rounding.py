"""Charger setpoints rounded to what the chargers can do, never over a limit.

A charger takes a pilot current from a list (:attr:`controllers.problem.EvChargerInput.
steps_kw`) or any power in ``[p_min_kw, p_max_kw]``, or 0. The plan is a continuous LP, so its
first interval must be rounded; the rounding must keep every limit the plan kept: each limit
group row (:class:`controllers.problem.GroupRow`), each bus limit, the connection (import,
and the DR cap) and the connection's export limit.

:func:`round_chargers`, in three moves, at interval ``k``:

1. **down**: every charger to the allowed power at or below its clamped plan value (0 below
   its first step or ``p_min_kw``). Lowering a consuming charger never raises a row whose
   coefficient on it is >= 0 (import rows, phase rows of consumers, bus and connection
   import);
2. **shed**: while such a row is still over its limit (an over-limit plan, a stale one), the
   charger of lowest priority that draws on it steps down one allowed power (to 0 at worst).
   Every step lowers the row; with all its chargers at 0 a row is at what the other assets
   and the fixed loads draw, so a row the chargers alone overload always ends within its
   limit;
3. **up**: in priority order, a charger rounded down goes to the allowed power above (at
   most its device limit) when its plan value is at least half-way there, or, without pilot
   steps, when the plan gave it something below its minimum and its car still needs energy
   (the car stops when full), or when, rounded down, its car could not get the energy it
   needs even at full power in the intervals it has left (in its last interval: whenever it
   is still short). Such cars go first, and may step down, lowest priority first, chargers
   whose cars can still finish later. A move is kept only when no row it raises goes over
   its limit (checked on the final setpoints, those stepped down included; a row already
   over may not get worse). A move that breaks no row cannot make any row break: rows it
   lowers only gain room.

Hence every row that held with the chargers rounded down (1-2) holds at the end; the moves
change chargers only. What it cannot do: a row broken by other assets or by fixed loads alone
stays broken (no charger can fix it), and an export row whose charger coefficients are
negative may lose room in 1-2 (a charger lowered under PV exports more); 3 gives some back
only where it lifts a charger. :func:`drop_lifts` does the same for the loads the safety layer
lifts to their minimum running power (shiftables): dropped to 0 where the lift leaves a row
they draw on over its limit.

Priority: sessions that give way ``last`` first, then ``normal``, then ``first``; ties in the
problem's order.
"""

from __future__ import annotations

import math

import numpy as np

from controllers.problem import DispatchProblem, EvChargerInput

TOL_KW = 1e-6
_RANK = {"last": 0, "normal": 1, "first": 2}


def stepped(problem: DispatchProblem) -> bool:
    """Whether chargers are rounded against the rows (limit groups or pilot steps)."""
    return bool(problem.group_rows) or any(c.steps_kw for c in problem.ev_chargers)


def allowed_kw(ch: EvChargerInput, hi_kw: float) -> tuple[float, ...] | None:
    """The charger's allowed powers up to ``hi_kw`` (ascending, 0 first), or None when any
    power in ``[p_min_kw, hi_kw]`` is allowed."""
    if not ch.steps_kw:
        return None
    return tuple(x for x in ch.steps_kw if x <= hi_kw + TOL_KW) or (0.0,)


def _floor(x: float, steps, p_min: float) -> float:
    if x <= TOL_KW:
        return min(x, 0.0) if x < 0 else 0.0
    if steps is None:
        return x if x >= p_min - TOL_KW else 0.0
    return max(s for s in steps if s <= x + TOL_KW)


def _next_up(x: float, steps, p_min: float, hi: float) -> float | None:
    if steps is None:
        return p_min if 0 <= x < p_min - TOL_KW and p_min <= hi + TOL_KW else None
    above = [s for s in steps if s > x + TOL_KW]
    return above[0] if above else None


def _next_down(x: float, steps, p_min: float) -> float:
    if steps is None:
        return 0.0
    below = [s for s in steps if s < x - TOL_KW]
    return below[-1] if below else 0.0


def rows_at(problem: DispatchProblem, k: int) -> list[tuple[str, dict[str, float], float, float]]:
    """Every limit at interval ``k`` as ``(name, coeff per asset, fixed kW, limit kW)``:
    the group rows, each bus's import limit, the connection's import (and DR cap) and its
    export. A PEDF building counts by its exchange."""
    p = problem
    bus_of = {x.spec.name: x.spec.bus for x in [*p.pv, *p.batteries, *p.ev_chargers]}
    bus_of |= {x.spec.name: x.spec.bus for x in [*p.shiftables, *p.curtailables, *p.pedfs]}
    base = dict.fromkeys(p.buses, 0.0)
    for b in p.base_loads:
        base[b.bus] += float(b.p_kw[k])
    out = []
    for r in p.group_rows:
        fixed = 0.0 if r.fixed_kw is None else float(np.asarray(r.fixed_kw)[k])
        coeff: dict[str, float] = {}
        for a, c in zip(r.assets, r.coeff, strict=True):
            coeff[a] = coeff.get(a, 0.0) + c
        out.append((f"group {r.group}/{r.kind}", coeff, fixed, float(r.limit_kw)))
    bus_max = np.asarray(p.bus_max(), dtype=float)
    for i, b in enumerate(p.buses):
        cap = float(bus_max[i, k] if bus_max.ndim == 2 else bus_max[i])
        if math.isfinite(cap):
            on = {a: 1.0 for a, bus in bus_of.items() if bus == b}
            out.append((f"bus {b}", on, base[b], cap))
    total = sum(base.values())
    imp = min(float(p.import_max_kw[k]), float(p.dr_max()[k]))
    out.append(("connection import", dict.fromkeys(bus_of, 1.0), total, imp))
    exp = float(p.export_max_kw[k])
    out.append(("connection export", dict.fromkeys(bus_of, -1.0), -total, exp))
    return out


def row_excess_kw(rows, sent: dict[str, float]) -> list[float]:
    """How far each row is over its limit under ``sent`` (kW, <= 0 when it holds)."""
    return [
        fixed + sum(c * sent.get(a, 0.0) for a, c in coeff.items()) - lim
        for _, coeff, fixed, lim in rows
    ]


def _needs_energy(ch: EvChargerInput, k: int) -> bool:
    return any(s.arrival_k <= k < s.departure_k and s.e_needed_kwh > 1e-6 for s in ch.sessions)


def _behind(ch: EvChargerInput, k: int, down_kw: float, top_kw: float, dt_h: float) -> bool:
    """A car that, given ``down_kw`` in interval ``k``, could not get the energy it still needs
    even at ``top_kw`` (the charger's highest allowed power) in every interval it has left:
    what rounding down takes from it now, no later interval gives back. In its last interval
    that is any car still short after ``down_kw``."""
    for s in ch.sessions:
        if not (s.arrival_k <= k < s.departure_k) or s.e_needed_kwh <= 1e-6:
            continue
        top = min(top_kw, s.p_max_kw) if s.p_max_kw > 0 else top_kw
        later_kwh = (s.departure_k - k - 1) * top * ch.spec.eta * dt_h
        if s.e_needed_kwh - down_kw * ch.spec.eta * dt_h > later_kwh + 1e-9:
            return True
    return False


def _priority(ch: EvChargerInput, k: int) -> int:
    here = [s for s in ch.sessions if s.arrival_k <= k < s.departure_k]
    return min((_RANK.get(str(s.give_way), 1) for s in here), default=1)


def round_chargers(
    problem: DispatchProblem,
    k: int,
    sent: dict[str, float],
    proposed: dict[str, float],
    lim: dict[str, tuple[float, float]],
) -> tuple[dict[str, float], list[tuple[str, float, float, str]]]:
    """``sent`` with the chargers of ``proposed`` (their plan values, finite) rounded to
    allowed powers within every row (see the module docstring); ``sent`` holds their values
    clamped to ``lim`` (device limits). Returns the new setpoints and, per charger moved,
    ``(asset, proposed_kw, sent_kw, reason)``."""
    out = dict(sent)
    chs = [c for c in problem.ev_chargers if c.spec.name in proposed]
    chs.sort(key=lambda c: _priority(c, k))  # stable: ties keep the problem's order
    steps = {c.spec.name: allowed_kw(c, lim[c.spec.name][1]) for c in chs}
    pmin = {c.spec.name: c.spec.p_min_kw for c in chs}
    why: dict[str, str] = {}
    for c in chs:
        name = c.spec.name
        down = _floor(out[name], steps[name], pmin[name])
        if abs(down - out[name]) > TOL_KW:
            why[name] = "rounded down to an allowed power"
        out[name] = down
    rows = rows_at(problem, k)
    _shed(rows, out, chs, steps, pmin, why)
    top = {
        c.spec.name: steps[c.spec.name][-1] if steps[c.spec.name] else lim[c.spec.name][1]
        for c in chs
    }

    def behind(c: EvChargerInput, kw: float) -> bool:
        return _behind(c, k, kw, top[c.spec.name], problem.dt_h)

    # Cars that would leave short go first: they may take room from cars that have time.
    order = sorted(chs, key=lambda c: not behind(c, out[c.spec.name]))
    donors: set[str] = set()  # stepped down to give room: not rounded up again
    for c in order:
        name = c.spec.name
        if name in donors:
            continue
        x = sent[name]  # the plan's value within the device's limits
        up = _next_up(out[name], steps[name], pmin[name], lim[name][1])
        if x <= TOL_KW or up is None:
            continue
        needs = steps[name] is None and x < pmin[name] and _needs_energy(c, k)
        late = behind(c, out[name])
        if not (x >= 0.5 * (out[name] + up) - TOL_KW or needs or late):
            continue
        trial = dict(out, **{name: up})
        before = row_excess_kw(rows, out)
        lowered = _make_room(rows, trial, before, name, chs, steps, pmin, behind) if late else []
        after = row_excess_kw(rows, trial)
        if _holds(after, before):
            why[name] = "rounded up to an allowed power, within every limit"
            for d in lowered:
                why[d] = f"stepped down to give room to {name}, whose car would leave short"
                donors.add(d)
            out.update(trial)
        else:
            why[name] = "rounded down: rounding up would break " + _broken(rows, after)
    events = [(n, proposed[n], out[n], why[n]) for n in why if abs(out[n] - proposed[n]) > TOL_KW]
    return out, events


def _holds(after: list[float], before: list[float]) -> bool:
    """Every row within its limit, or no further over it than before."""
    return all(a <= TOL_KW or a <= b + TOL_KW for a, b in zip(after, before, strict=True))


def _make_room(rows, trial, before, name, chs, steps, pmin, behind) -> list[str]:
    """Step down, lowest priority first, chargers (not ``name``) drawing on a row ``trial``
    breaks, each only while its own car can still finish at full power later, until every
    row holds; ``trial`` is changed in place. Returns the chargers stepped down."""
    lowered: list[str] = []
    for c in reversed(chs):
        d = c.spec.name
        while d != name and trial[d] > TOL_KW:
            excess = row_excess_kw(rows, trial)
            if _holds(excess, before):
                return lowered
            over = [i for i, e in enumerate(excess) if e > TOL_KW]
            if not any(rows[i][1].get(d, 0.0) > 0 for i in over):
                break
            lower = _next_down(trial[d], steps[d], pmin[d])
            if behind(c, lower):
                break
            trial[d] = lower
            if d not in lowered:
                lowered.append(d)
    return lowered


def _broken(rows, excess: list[float]) -> str:
    names = [r[0] for r, e in zip(rows, excess, strict=True) if e > TOL_KW]
    return ", ".join(names) or "a limit"


def _shed(rows, out, chs, steps, pmin, why) -> None:
    """Step chargers down, lowest priority first, while a row they draw on is over."""
    for _ in range(sum(len(s or (0, 0)) for s in steps.values()) + len(chs) + 1):
        excess = row_excess_kw(rows, out)
        over = [i for i, e in enumerate(excess) if e > TOL_KW]
        pick = None
        for c in reversed(chs):
            name = c.spec.name
            if out[name] > TOL_KW and any(rows[i][1].get(name, 0.0) > 0 for i in over):
                pick = name
                break
        if pick is None:
            return
        out[pick] = _next_down(out[pick], steps[pick], pmin[pick])
        why[pick] = "stepped down: " + _broken(rows, excess) + " over its limit"


def drop_lifts(
    problem: DispatchProblem, k: int, sent: dict[str, float], lifted: list[str]
) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Loads (shiftables) the safety layer lifted to their minimum running power, sent 0
    instead where the lift leaves a row they draw on over its limit. Dropping a load only
    gives rows room, so the chargers' rounding stays within every row."""
    out = dict(sent)
    rows = rows_at(problem, k)
    dropped = []
    for name in lifted:
        excess = row_excess_kw(rows, out)
        over = [i for i, e in enumerate(excess) if e > TOL_KW and rows[i][1].get(name, 0.0) > 0]
        if over:
            out[name] = 0.0
            dropped.append(
                (
                    name,
                    "below the minimum running power, rounded down: rounding up would "
                    "break " + ", ".join(rows[i][0] for i in over),
                )
            )
    return out, dropped
