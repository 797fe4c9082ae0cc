"""EV sessions aggregated into virtual EVs: a smaller, always disaggregable dispatch model.

Sessions that share a charging window (arrival and departure step) and a similar *fill*
(the share of their stay they must charge at full power) become one virtual EV with one power
variable per step. Its grid-side energy ``G = sum(e_i / eta_i)`` must be delivered in the
window, and its power is bounded by

    P(t) <= min(sum_i p_i, G * min_i (p_i * eta_i / e_i))

so that splitting ``P`` in proportion to each session's grid-side energy,
``p_i(t) = P(t) * (e_i / eta_i) / G``, never exceeds a session's power and gives every
session exactly its energy (``eta_i * dt * sum_t p_i(t) = e_i``). The aggregate is therefore
a *restriction* of the full model: every plan it returns is feasible session by session, and
its optimum is at least the full optimum (the gap is what the benchmark measures). Grouping
by fill keeps the bound loose: a group's power may reach ``1 / max fill`` times its mean.

When no constraint depends on where a charger is connected (no finite bus import limit, no
network rows), groups span buses and bus loads are recomputed from the disaggregated
chargers; otherwise each group stays on one bus.

Sessions join a group only with sessions of the same priority (``give_way``): a group's
shortfall has one weight.

Only plain sessions are aggregated: chargers with V2G, a session with an intermediate target
or one that continues after the horizon stay in the exact per-slot model
(:class:`controllers.blocks_flex.EvBlock`), as do their other sessions.

Group rows are allocated in blocks (:data:`ROW_BLOCK`) with Parameter bounds, so new cars
re-use the same cvxpy model until the number of groups outgrows the allocation.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from controllers.blocks import Block, Slack
from controllers.blocks_flex import EvBlock
from controllers.problem import AssetSchedule, DispatchProblem, EvChargerInput, Relaxation

ROW_BLOCK = 16  # group rows are allocated in multiples of this
FILL_EDGES = (0.125, 0.25, 0.5, 0.75)  # fill classes: (0, .125], (.125, .25], ... (.75, 1]
E_MIN_KWH = 1e-6  # a session needing less than this gets no power
WINDOW_STEPS = 1  # windows snapped to this many steps (1: exact windows)


def aggregable(ch: EvChargerInput) -> bool:
    """Whether all of a charger's sessions can join virtual EVs."""
    return not ch.spec.v2g and all(
        s.target_k is None and not s.departs_after_horizon and s.e_dischargeable_kwh <= 0
        for s in ch.sessions
    )


def bus_free(problem: DispatchProblem) -> bool:
    """True when no constraint depends on the bus a charger is connected to (nor its
    meter's bill, when each meter is billed on its own)."""
    if problem.per_meter_billing and problem.meters:
        return False
    return not problem.network and not np.isfinite(problem.bus_max()).any()


def split(problem: DispatchProblem) -> tuple[tuple[int, ...], DispatchProblem]:
    """Indices of the aggregable chargers, and the problem left for the exact EV model.
    A charger a limit group names stays exact: a virtual EV spanning chargers would hide
    its row (``DispatchProblem.group_rows``)."""
    grouped = {a for r in problem.group_rows for a in r.assets}
    agg = tuple(
        i
        for i, ch in enumerate(problem.ev_chargers)
        if aggregable(ch) and ch.spec.name not in grouped
    )
    taken = set(agg)
    rest = tuple(ch for i, ch in enumerate(problem.ev_chargers) if i not in taken)
    return agg, dataclasses.replace(problem, ev_chargers=rest)


@dataclass(frozen=True)
class Member:
    charger: int  # index into problem.ev_chargers
    session: int  # index into the charger's sessions
    session_id: str
    grid_kwh: float  # e_needed / eta
    p_kw: float  # min(session, charger) power


@dataclass(frozen=True)
class Group:
    bus: str
    arrival_k: int
    departure_k: int
    members: tuple[Member, ...]
    give_way: str = "normal"  # the members' priority (vpp.park.model.GiveWay)

    @property
    def grid_kwh(self) -> float:
        return sum(m.grid_kwh for m in self.members)

    def p_max_kw(self) -> float:
        g = self.grid_kwh
        return min(
            sum(m.p_kw for m in self.members), min(g * m.p_kw / m.grid_kwh for m in self.members)
        )


def fill_class(grid_kwh: float, p_kw: float, steps: int, dt_h: float) -> int:
    fill = grid_kwh / max(p_kw * steps * dt_h, 1e-12)
    return bisect.bisect_left(FILL_EDGES, fill)  # np.searchsorted's "left", without numpy


def snap(a: int, d: int, grid_kwh: float, p_kw: float, dt_h: float, steps: int) -> tuple[int, int]:
    """The window ``[a, d)`` shrunk to multiples of ``steps`` (arrival up, departure down), or
    left as it is when the session's energy would no longer fit (a restriction either way)."""
    a2, d2 = -(-a // steps) * steps, (d // steps) * steps
    if d2 > a2 and grid_kwh <= p_kw * dt_h * (d2 - a2) * (1.0 - 1e-9):
        return a2, d2
    return a, d


def groups(
    problem: DispatchProblem, chargers: tuple[int, ...], by_bus: bool, steps: int | None = None
) -> list[Group]:
    """Sessions of ``chargers`` grouped by (bus if ``by_bus``, window snapped to ``steps``,
    fill class, priority)."""
    n, dt = problem.n, problem.dt_h
    steps = WINDOW_STEPS if steps is None else steps
    table: dict[tuple, list[Member]] = {}
    for i in chargers:
        ch = problem.ev_chargers[i]
        for j, s in enumerate(ch.sessions):
            a, d = max(s.arrival_k, 0), min(s.departure_k, n)
            p = min(s.p_max_kw, ch.spec.p_max_kw)
            if d <= a or p <= 0 or s.e_needed_kwh <= E_MIN_KWH:
                continue
            g = s.e_needed_kwh / ch.spec.eta
            a, d = snap(a, d, g, p, dt, steps)
            key = (ch.spec.bus if by_bus else "", a, d, fill_class(g, p, d - a, dt), s.give_way)
            table.setdefault(key, []).append(Member(i, j, s.session_id, g, p))
    return [Group(k[0], k[1], k[2], tuple(v), k[4]) for k, v in sorted(table.items())]


def rows_needed(count: int) -> int:
    """Rows to allocate for ``count`` groups: a quarter of headroom, in blocks."""
    return ROW_BLOCK * math.ceil(1.25 * count / ROW_BLOCK) if count else 0


def structure(problem: DispatchProblem) -> tuple:
    """What the aggregation adds to the model cache key: the aggregated chargers, whether
    groups span buses, and the group count (per bus when they do not)."""
    agg, _ = split(problem)
    free = bus_free(problem)
    gs = groups(problem, agg, by_bus=not free)
    names = tuple(problem.ev_chargers[i].spec.name for i in agg)
    if free:
        return (names, free, max(1, len(gs)))
    return (names, free, tuple(sum(1 for g in gs if g.bus == b) for b in problem.buses))


def allocation(key: tuple) -> int | tuple[int, ...]:
    """Rows a model built for structure ``key`` holds (per bus when groups stay on a bus)."""
    counts = key[2]
    return rows_needed(counts) if isinstance(counts, int) else tuple(map(rows_needed, counts))


def fits(built: tuple, wanted: tuple) -> bool:
    """Whether the model built for ``built`` holds the groups of ``wanted``: same chargers and
    bus mode, enough rows everywhere. A model is re-used until its rows run out."""
    if built[:2] != wanted[:2]:
        return False
    have, need = allocation(built), wanted[2]
    if isinstance(have, int):
        return have >= need
    return all(h >= w for h, w in zip(have, need, strict=True))


class _GroupSlack(Slack):
    """The virtual EVs' energy slack, reported per session (a group's shortfall is shared in
    proportion to the members' energy, as the disaggregation shares its power)."""

    block: EvAggregateBlock | None = None

    def relaxations(self, dt_h: float) -> list[Relaxation]:
        if self.var is None or self.var.value is None or self.block is None:
            return []
        short = np.asarray(self.var.value).ravel()
        out = []
        for r, g in enumerate(self.block.active):
            if g is None or short[r] <= 1e-3:
                continue
            total = g.grid_kwh
            for m in g.members:
                eta = self.block.eta[m.charger]
                amount = float(short[r] * m.grid_kwh / total * eta)
                out.append(Relaxation("ev_energy", m.session_id, (), amount, "kWh"))
        return out


class EvAggregateBlock(Block):
    """Virtual EVs: one row per group of sessions, disaggregated in :meth:`extract`."""

    kind = "ev_charger"

    def __init__(self, problem: DispatchProblem, soft: bool, key: tuple):
        super().__init__(soft)
        names, self.free = key[0], key[1]
        alloc = allocation(key)
        self.names = names
        self.charger_idx = tuple(
            i for i, ch in enumerate(problem.ev_chargers) if ch.spec.name in set(names)
        )
        if self.free:
            self.row_bus = [problem.buses[0]] * alloc
        else:
            self.row_bus = [b for b, k in zip(problem.buses, alloc, strict=True) for _ in range(k)]
        m, n, dt = len(self.row_bus), problem.n, problem.dt_h
        self.rows = [(f"ev-group-{r}", b) for r, b in enumerate(self.row_bus)]
        self.ub = cp.Parameter((m, n), nonneg=True)
        self.grid_kwh = cp.Parameter(m, nonneg=True)
        self.x = cp.Variable((m, n), bounds=[0, self.ub], name="ev_group_kw")
        # Each group's shortfall weighs by its members' priority (a Parameter per row).
        self.weight = cp.Parameter(m, nonneg=True)
        var = cp.Variable(m, nonneg=True, name="slack_ev_energy_group") if soft else None
        slack = _GroupSlack("ev_energy", var, ["-"] * m, "kWh", self.weight, per_step=False)
        slack.block = self
        self.slacks.append(slack)
        total = dt * cp.sum(self.x, axis=1)
        # One equality row per group: delivered + shortfall = needed (the shortfall is the
        # penalised slack). Two rows (>= needed - shortfall, <= needed) give the same optimum
        # and a larger LP.
        self.constraints += [total + (var if var is not None else 0.0) == self.grid_kwh]
        self.p_kw = self.x
        self.p_var = self.x
        self.active: list[Group | None] = [None] * m
        self.eta = {i: ch.spec.eta for i, ch in enumerate(problem.ev_chargers)}
        self._problem = problem

    def update(self, problem: DispatchProblem) -> None:
        m, n = len(self.rows), problem.n
        ub, need = np.zeros((m, n)), np.zeros(m)
        pen = problem.penalties
        weight = np.full(m, pen.ev_energy_cny_per_kwh)
        gs = groups(problem, self.charger_idx, by_bus=not self.free)
        self.active = [None] * m
        free_rows = {b: [r for r, rb in enumerate(self.row_bus) if rb == b] for b in problem.buses}
        for g in gs:
            pool = free_rows[problem.buses[0] if self.free else g.bus]
            if not pool:
                raise ValueError("more EV groups than the model allocated (structure key stale)")
            r = pool.pop(0)
            ub[r, g.arrival_k : g.departure_k] = g.p_max_kw()
            need[r] = g.grid_kwh
            weight[r] = pen.give_way_cny_per_kwh("ev_energy", g.give_way)
            self.active[r] = g
        self.ub.value = ub
        self.grid_kwh.value = need
        self.weight.value = weight
        self.eta = {i: ch.spec.eta for i, ch in enumerate(problem.ev_chargers)}
        self._problem = problem

    def extract(self, out: dict[str, AssetSchedule]) -> None:
        p = self._problem
        x = np.maximum(np.asarray(self.x.value), 0.0)
        power = {i: np.zeros(p.n) for i in self.charger_idx}
        for r, g in enumerate(self.active):
            if g is None:
                continue
            total = g.grid_kwh
            for mem in g.members:
                power[mem.charger] += x[r] * (mem.grid_kwh / total)
        for i in self.charger_idx:
            spec = p.ev_chargers[i].spec
            out[spec.name] = AssetSchedule(
                spec.name,
                "ev_charger",
                spec.bus,
                power[i],
                detail={"p_to_car_kw": spec.eta * power[i]},
            )


class ExactEvBlock(EvBlock):
    """The per-slot EV model on the chargers the aggregation leaves out."""

    def __init__(self, problem: DispatchProblem, soft: bool, slots: int, targets: bool):
        super().__init__(split(problem)[1], soft, slots, targets)

    def update(self, problem: DispatchProblem) -> None:
        super().update(split(problem)[1])


def ev_blocks(problem: DispatchProblem, soft: bool, slots: int, targets: bool) -> list[Block]:
    """The EV blocks of an aggregated model: virtual EVs plus the exact model for the rest."""
    out: list[Block] = [EvAggregateBlock(problem, soft, structure(problem))]
    if split(problem)[1].ev_chargers:
        out.append(ExactEvBlock(problem, soft, slots, targets))
    return out


def bus_loads(problem: DispatchProblem, assets: dict[str, AssetSchedule]) -> dict[str, np.ndarray]:
    """Every bus's load from the device schedules (PEDF aggregates excluded)."""
    out = {b: np.zeros(problem.n) for b in problem.buses}
    for s in assets.values():
        if s.kind != "pedf" and s.bus in out:
            out[s.bus] = out[s.bus] + s.p_kw
    return out


def cache_key(cached, key: tuple, wanted: tuple) -> tuple:
    """The model cache key for a problem whose base key is ``key`` and aggregation structure
    ``wanted``: an existing model that can hold the groups if there is one (so a few more or
    fewer cars do not rebuild), else a new key."""
    for k in cached:
        if len(k) == len(key) + 1 and k[:-1] == key and fits(k[-1], wanted):
            return k
    return (*key, wanted)
