"""Device blocks of the dispatch model: one per device kind, vectorised over the devices.

Each block is built once for a park *structure* (how many devices, session slots, windows),
owns its ``cp.Parameter``s, and is refreshed every interval by ``update(problem)``. A block
exposes:

- ``p_kw``: an expression (devices x n) of power at the grid terminal, load convention;
- ``rows``: (asset name, bus) for each device row, to sum per bus;
- ``constraints``, ``terms`` (name -> cost expression, CNY) and ``slacks``;
- ``extract(...)``: schedules and relaxations after a solve.

Soft constraints get a non-negative slack when ``soft`` is true; with ``soft`` false the slack
is the constant 0, which gives the hard problem (used to test that relaxations appear exactly
when the hard problem is infeasible).

Units: kW, kWh, CNY; ``dt_h`` hours per interval. Infinite limits become +-``BIG``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from controllers.battery_rows import SegmentRows, taper_rows
from controllers.problem import AssetSchedule, DispatchProblem, Relaxation

BIG = 1e7  # stands for "no limit" in a Parameter (cvxpy Parameters cannot hold inf)
TOL = 1e-3  # slack below this (kW or kWh) is numerical noise, not a relaxation
PV_CURTAIL_CNY_PER_KWH = 1e-3  # breaks ties in favour of using PV


def finite(a: np.ndarray, big: float = BIG) -> np.ndarray:
    """``a`` with infinities (and anything beyond) replaced by +-``big``."""
    return np.clip(np.nan_to_num(np.asarray(a, dtype=float), posinf=big, neginf=-big), -big, big)


@dataclass
class Slack:
    """A named slack: which constraint, unit and penalty, and the asset of each row.

    ``penalty`` is one weight for every row, or one per row: an array (structure, a
    constant) or a ``cp.Parameter`` (a value, set every interval: a Parameter times the
    slack, a Variable without Parameter bounds, stays DPP).
    """

    constraint: str
    var: cp.Variable | None
    assets: list[str]
    unit: str
    penalty: float | np.ndarray | cp.Parameter
    per_step: bool = True  # False: one value per row (an energy target)

    def cost(self, dt_h: float) -> cp.Expression | float:
        if self.var is None:
            return 0.0
        scale = dt_h if (self.per_step and self.unit == "kW") else 1.0
        if isinstance(self.penalty, int | float):
            return self.penalty * scale * cp.sum(self.var)
        rows = self.var if self.var.ndim == 1 else cp.sum(self.var, axis=1)
        return scale * cp.sum(cp.multiply(self.penalty, rows))

    def relaxations(self, dt_h: float) -> list[Relaxation]:
        if self.var is None or self.var.value is None:
            return []
        v = np.atleast_2d(np.asarray(self.var.value))
        if v.shape[0] != len(self.assets):
            v = v.reshape(len(self.assets), -1)
        out = []
        for i, name in enumerate(self.assets):
            row = v[i]
            steps = tuple(int(k) for k in np.nonzero(row > TOL)[0])
            if not steps:
                continue
            amount = float(row.max()) if self.unit == "kW" else float(row.sum())
            out.append(
                Relaxation(self.constraint, name, steps if self.per_step else (), amount, self.unit)
            )
        return out


class EnergySlack(Slack):
    """A per-step power (kW, ``var``) that gives way in energy: priced and reported in kWh
    (``dt_h`` x the power), with the steps it was used in. For a curtailable load's comfort:
    its curtailment is a decision variable of its own, never fixed at zero."""

    def cost(self, dt_h: float) -> cp.Expression | float:
        return dt_h * cp.sum(cp.multiply(self.penalty, cp.sum(self.var, axis=1)))

    def relaxations(self, dt_h: float) -> list[Relaxation]:
        if self.var.value is None:
            return []
        v = np.atleast_2d(np.asarray(self.var.value))
        out = []
        for i, name in enumerate(self.assets):
            steps = tuple(int(k) for k in np.nonzero(v[i] > TOL)[0])
            if name != "-" and steps:
                amount = float(dt_h * v[i][list(steps)].sum())
                out.append(Relaxation(self.constraint, name, steps, amount, "kWh"))
        return out


class Block:
    """``p_kw`` = ``p_var`` (free of Parameters) + ``p_const`` (Parameters only, or None)."""

    kind = ""
    p_const: cp.Expression | None = None

    def __init__(self, soft: bool):
        self.soft = soft
        self.constraints: list[cp.Constraint] = []
        self.terms: dict[str, cp.Expression] = {}
        self.slacks: list[Slack] = []
        self.rows: list[tuple[str, str]] = []

    def slack(
        self,
        shape: tuple[int, ...],
        constraint: str,
        assets: list[str],
        unit: str,
        penalty: float | np.ndarray | cp.Parameter,
        per_step: bool = True,
        ub: cp.Parameter | None = None,
    ) -> cp.Variable | float:
        var = None
        if self.soft:
            bounds = [0, ub] if ub is not None else None
            var = cp.Variable(shape, nonneg=ub is None, bounds=bounds, name=f"slack_{constraint}")
        self.slacks.append(Slack(constraint, var, assets, unit, penalty, per_step))
        return var if var is not None else 0.0

    def add_term(self, name: str, expr: cp.Expression) -> None:
        self.terms[name] = self.terms[name] + expr if name in self.terms else expr


# --------------------------------------------------------------------------------------------
# Batteries (site batteries and the PEDF buildings' batteries)
# --------------------------------------------------------------------------------------------
def battery_reserves_kwh(problem: DispatchProblem) -> np.ndarray:
    """Reserve above the minimum per battery (plain batteries first, then PEDF ones) and
    interval (kWh, >= 0), at most half the usable range."""
    n = problem.n
    out = [np.zeros(n) for _ in problem.batteries]
    for pe in problem.pedfs:
        b = pe.spec.battery
        r = np.zeros(n) if pe.e_reserve_kwh is None else np.asarray(pe.e_reserve_kwh, float)
        out.append(np.clip(r, 0.0, 0.5 * max(b.e_max_kwh - b.e_min_kwh, 0.0)))
    return np.array(out).reshape(len(out), n)


class BatteryBlock(Block):
    kind = "battery"

    def __init__(self, problem: DispatchProblem, soft: bool):
        super().__init__(soft)
        specs = [b.spec for b in problem.batteries] + [p.spec.battery for p in problem.pedfs]
        self.rows = [(b.name, b.bus) for b in specs]
        m, n, dt = len(specs), problem.n, problem.dt_h
        self.pc_max = cp.Parameter((m, n), nonneg=True)
        self.pd_max = cp.Parameter((m, n), nonneg=True)

        # Efficiencies and degradation cost are part of the structure (constants): a Variable
        # with Parameter bounds may not also be multiplied by a Parameter (DPP).
        def col(xs):
            return np.array(xs, dtype=float).reshape(-1, 1)

        gain_c = col([b.eta_charge * dt for b in specs])
        gain_d = col([dt / b.eta_discharge for b in specs])
        deg = col([b.degradation_cny_per_kwh * dt for b in specs])
        self.e0 = cp.Parameter(m)
        self.e_min = cp.Parameter((m, n))
        self.e_max = cp.Parameter((m, n))
        self.terminal = cp.Parameter(m, nonneg=True)
        self.pc = cp.Variable((m, n), bounds=[0, self.pc_max], name="battery_charge_kw")
        self.pd = cp.Variable((m, n), bounds=[0, self.pd_max], name="battery_discharge_kw")
        self.e = cp.Variable((m, n + 1), name="battery_e_kwh")
        pen = problem.penalties.soc_bounds_cny_per_kwh
        names = [r[0] for r in self.rows]
        # SOC slack absorbs only a measured SOC that is already outside its bounds (never
        # infeasible because of the world); it cannot buy a plan beyond them.
        self.lo_room = cp.Parameter((m, n), nonneg=True)
        self.hi_room = cp.Parameter((m, n), nonneg=True)
        lo = self.slack((m, n), "soc_min", names, "kWh", pen, ub=self.lo_room)
        hi = self.slack((m, n), "soc_max", names, "kWh", pen, ub=self.hi_room)
        # Optional detail (controllers.battery_rows): nothing added for a plain battery.
        self.seg = SegmentRows(specs, self.pc, self.pd, dt)
        flow = cp.multiply(self.seg.mask(gain_c), self.pc) - cp.multiply(
            self.seg.mask(gain_d), self.pd
        )
        if self.seg.flow is not None:
            flow = flow + self.seg.flow
        # A reserve above the minimum (PEDF batteries, against forecast error behind their
        # converter); going under it is priced, not forbidden (term margin_shortfall).
        self.reserve = cp.Parameter((m, n), nonneg=True)
        short = cp.Variable((m, n), bounds=[0, self.reserve], name="battery_reserve_short_kwh")
        self.constraints += [
            self.e[:, 0] == self.e0,
            self.e[:, 1:] == self.e[:, :-1] + flow,
            self.e[:, 1:] >= self.e_min - lo,
            self.e[:, 1:] >= self.e_min + self.reserve - lo - short,
            self.e[:, 1:] <= self.e_max + hi,
            *self.seg.constraints,
            *taper_rows(specs, self.pc, self.e),
        ]
        self.add_term("margin_shortfall", problem.reserve_cny_per_kwh_h * dt * cp.sum(short))
        self.add_term("degradation", cp.sum(cp.multiply(deg, self.pc + self.pd)))
        self.add_term("terminal_value", -cp.sum(cp.multiply(self.terminal, self.e[:, n])))
        self.p_kw = self.pc - self.pd
        self.p_var = self.p_kw

    def update(self, problem: DispatchProblem) -> None:
        inputs = [(b.spec, b.e_init_kwh, b.terminal_value_cny_per_kwh) for b in problem.batteries]
        inputs += [
            (p.spec.battery, p.e_init_kwh, p.terminal_value_cny_per_kwh) for p in problem.pedfs
        ]
        n = problem.n

        def full(xs: list[float]) -> np.ndarray:
            return np.repeat(np.array(xs, dtype=float).reshape(-1, 1), n, axis=1)

        specs = [s for s, _, _ in inputs]
        self.pc_max.value = full([s.p_charge_max_kw for s in specs])
        self.pd_max.value = full([s.p_discharge_max_kw for s in specs])
        self.e0.value = np.array([e for _, e, _ in inputs], dtype=float)
        self.e_min.value = full([s.e_min_kwh for s in specs])
        self.reserve.value = battery_reserves_kwh(problem)
        self.e_max.value = full([s.e_max_kwh for s in specs])
        e0 = self.e0.value
        self.lo_room.value = full(list(np.maximum([s.e_min_kwh for s in specs] - e0, 0.0)))
        self.hi_room.value = full(list(np.maximum(e0 - [s.e_max_kwh for s in specs], 0.0)))
        self.terminal.value = np.array([t for _, _, t in inputs], dtype=float)

    def extract(self, out: dict[str, AssetSchedule]) -> None:
        pc, pd, e = self.pc.value, self.pd.value, self.e.value
        for i, (name, bus) in enumerate(self.rows):
            out[name] = AssetSchedule(
                name,
                "battery",
                bus,
                pc[i] - pd[i],
                e[i].copy(),
                {"p_charge_kw": pc[i].copy(), "p_discharge_kw": pd[i].copy()} | self.seg.detail(i),
            )


# --------------------------------------------------------------------------------------------
# PV arrays (site arrays and PEDF arrays)
# --------------------------------------------------------------------------------------------
class PvBlock(Block):
    kind = "pv"

    def __init__(self, problem: DispatchProblem, soft: bool):
        super().__init__(soft)
        specs = [p.spec for p in problem.pv] + [p.spec.pv for p in problem.pedfs]
        self.rows = [(s.name, s.bus) for s in specs]
        m, n = len(specs), problem.n
        self.avail = cp.Parameter((m, n), nonneg=True)
        self.must = cp.Parameter((m, n), nonneg=True)  # lower bound: avail when not curtailable
        self.used = cp.Variable((m, n), bounds=[self.must, self.avail], name="pv_used_kw")
        self.add_term(
            "pv_curtailment", PV_CURTAIL_CNY_PER_KWH * problem.dt_h * cp.sum(self.avail - self.used)
        )
        self.p_kw = -self.used
        self.p_var = self.p_kw

    def update(self, problem: DispatchProblem) -> None:
        items = [(p.spec, p.p_available_kw) for p in problem.pv]
        items += [(p.spec.pv, p.pv_available_kw) for p in problem.pedfs]
        avail = np.array([np.maximum(a, 0.0) for _, a in items]).reshape(len(items), problem.n)
        self.avail.value = avail
        self.must.value = np.array(
            [a * (0.0 if s.curtailable else 1.0) for (s, _), a in zip(items, avail, strict=True)]
        ).reshape(avail.shape)

    def extract(self, out: dict[str, AssetSchedule]) -> None:
        used, avail = self.used.value, self.avail.value
        for i, (name, bus) in enumerate(self.rows):
            out[name] = AssetSchedule(
                name,
                "pv",
                bus,
                -used[i],
                detail={"p_available_kw": avail[i].copy(), "curtail_kw": avail[i] - used[i]},
            )


# --------------------------------------------------------------------------------------------
# Curtailable loads (site loads and PEDF flexible loads)
# --------------------------------------------------------------------------------------------
class CurtailableBlock(Block):
    kind = "curtailable"

    def __init__(self, problem: DispatchProblem, soft: bool):
        super().__init__(soft)
        specs = [c.spec for c in problem.curtailables]
        specs += [p.spec.flexible_load for p in problem.pedfs if p.spec.flexible_load]
        self.rows = [(s.name, s.bus) for s in specs]
        m, n = len(specs), problem.n
        self.baseline = cp.Parameter((m, n), nonneg=True)
        self.cut_max = cp.Parameter((m, n), nonneg=True)
        cost = np.array([s.cost_cny_per_kwh * problem.dt_h for s in specs]).reshape(-1, 1)
        self.cut = cp.Variable((m, n), bounds=[0, self.cut_max], name="curtail_kw")
        self.add_term("load_curtailment", cp.sum(cp.multiply(cost, self.cut)))
        # Comfort gives way by priority: a load at give_way first is curtailed for its cost
        # alone; normal and last ones also weigh in the penalties, ranked with EV and
        # shiftable energy (constants: a spec's priority is part of the structure).
        pen = problem.penalties
        weight = np.array([pen.give_way_cny_per_kwh("comfort", s.give_way) for s in specs])
        if weight.any():
            names = [s.name if w > 0 else "-" for s, w in zip(specs, weight, strict=True)]
            self.slacks.append(EnergySlack("comfort", self.cut, names, "kWh", weight))
        self.p_kw = self.baseline - self.cut
        self.p_var = -self.cut
        self.p_const = self.baseline

    def update(self, problem: DispatchProblem) -> None:
        items = [(c.spec, c.baseline_kw) for c in problem.curtailables]
        items += [
            (p.spec.flexible_load, p.flex_baseline_kw)
            for p in problem.pedfs
            if p.spec.flexible_load
        ]
        base = np.array([np.maximum(b, 0.0) for _, b in items]).reshape(len(items), problem.n)
        self.baseline.value = base
        frac = np.array([s.curtail_max_frac for s, _ in items]).reshape(-1, 1)
        self.cut_max.value = base * frac

    def extract(self, out: dict[str, AssetSchedule]) -> None:
        cut, base = self.cut.value, self.baseline.value
        for i, (name, bus) in enumerate(self.rows):
            out[name] = AssetSchedule(
                name,
                "curtailable",
                bus,
                base[i] - cut[i],
                detail={"baseline_kw": base[i].copy(), "curtail_kw": cut[i].copy()},
            )
