"""Model-predictive dispatch: one cvxpy LP/MILP over the horizon, re-solved every interval.

The problem is built once per park *structure* (devices, session slots, network rows) with
every number a ``cp.Parameter`` (DPP), and re-solved with new values each interval; it is
rebuilt only when the structure changes. HiGHS solves it (MILP when a shiftable load has a
minimum power or run); when HiGHS fails, Clarabel solves the same LP (integrality relaxed, and
said so in the result's messages).

Objective (CNY over the horizon): energy bought - energy sold + rise of the month's peak
times the demand charge + battery degradation + carbon cost + load curtailment cost + a tiny
PV curtailment cost - the value of energy left in batteries at the end + penalties on slack.

With called DR events on the horizon, ``dispatch`` makes the plan that follows each and the
plan that does not, and keeps the cheaper as the settlement would pay them
(:mod:`controllers.dr_choice`; the event rows: :mod:`controllers.dr_block`).

Constraints are soft where the world can make them impossible (SOC bounds with a measured SOC
outside them, EV energy by departure, DR limits, connection, transformer and network limits,
PEDF converter limits): each has a slack with a penalty, and every slack used is reported as a
:class:`~controllers.problem.Relaxation`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from controllers import (
    dr_block,
    dr_choice,
    dr_rows,
    grid_friendly,
    group_block,
    meter_block,
    on_off,
    relaxations,
)
from controllers.blocks import (
    BatteryBlock,
    Block,
    CurtailableBlock,
    PvBlock,
    finite,
)
from controllers.blocks_flex import EvBlock, ShiftableBlock, ev_has_targets, ev_slots
from controllers.ev_aggregate import bus_free, bus_loads, cache_key, ev_blocks, structure
from controllers.highs_hot import HotHighs
from controllers.problem import (
    TERMS,
    AssetSchedule,
    DispatchProblem,
    DispatchResult,
    Relaxation,
    add_pedf_schedules,
    effective_export_price,
    park_scale_kw,
)

OK_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


class SolverFailure(RuntimeError):  # noqa: N818 - a failure, named as the runtime reports it
    """Neither the primary nor the fallback solver returned a usable optimum."""


def _key(problem: DispatchProblem, soft: bool, integer: bool, slots: int, windows: int) -> tuple:
    return (
        problem.n,
        round(problem.dt_h, 9),
        # Specs are part of the structure: efficiencies, costs and power ratings are constants.
        tuple(p.spec for p in problem.pv),
        tuple(_valueless(b.spec) for b in problem.batteries),
        tuple(
            (
                dataclasses.replace(p.spec, battery=_valueless(p.spec.battery)),
                p.target_weight_cny_per_kwh,
            )
            for p in problem.pedfs
        ),
        tuple(c.spec for c in problem.curtailables),
        tuple(c.spec for c in problem.ev_chargers),
        tuple(s.spec for s in problem.shiftables),
        tuple((b.name, b.bus) for b in problem.base_loads),
        problem.buses,
        problem.reserve_cny_per_kwh_h,
        _network_rows(problem),
        group_block.structure(problem),  # limit-group rows: assets and coefficients
        dr_block.row_count(problem),  # DR event rows, in blocks (controllers.dr_block)
        grid_friendly.structure(problem),  # day-peak and ramp rows when their weights are set
        meter_block.structure(problem),  # per-meter billing: the meters' buses
        # The penalty weights are constants of the structure (shiftable and comfort
        # priorities come with the specs above; EV sessions' are Parameters).
        problem.penalties,
        soft,
        integer,
        slots,
        windows,
        ev_has_targets(problem),
    )


def _valueless(battery):
    """A battery's spec without its end value: the value is a Parameter of the built model
    (the problem's ``terminal_value_cny_per_kwh``), so a new one must not force a rebuild."""
    if battery.terminal_value_cny_per_kwh is None:
        return battery
    return dataclasses.replace(battery, terminal_value_cny_per_kwh=None)


def _network_rows(problem: DispatchProblem) -> int:
    """Network rows are allocated in blocks of 8 so that new rows rarely force a rebuild."""
    r = len(problem.network)
    return 0 if r == 0 else 8 * ((r + 7) // 8)


def _incidence(rows: list[tuple[str, str]], buses: tuple[str, ...]) -> np.ndarray:
    a = np.zeros((len(buses), len(rows)))
    for j, (_, bus) in enumerate(rows):
        a[buses.index(bus), j] = 1.0
    return a


@dataclass
class _Model:
    """One built cvxpy problem and the handles to refresh and read it."""

    problem: cp.Problem
    blocks: list[Block]
    params: dict[str, cp.Parameter]
    exprs: dict[str, cp.Expression]
    terms: dict[str, cp.Expression]
    slacks: list = field(default_factory=list)
    integer: bool = False
    hot: HotHighs | None = None  # HiGHS kept between re-solves (MpcController hot_start)

    def update(self, p: DispatchProblem) -> None:
        for b in self.blocks:
            b.update(p)
        pr = self.params
        dt = p.dt_h
        pr["price_imp"].value = dt * np.asarray(p.price_import_cny_per_kwh, dtype=float)
        pr["price_exp"].value = dt * effective_export_price(p)
        pr["carbon"].value = dt * np.maximum(p.ef() * p.carbon_price_cny_per_kg, 0.0)
        big = 10.0 * park_scale_kw(p)  # "no limit", on the park's own scale
        pr["imp_max"].value = finite(p.import_max_kw, big)
        pr["exp_max"].value = finite(np.maximum(p.export_max_kw, 0.0), big)
        pr["dr_max"].value = finite(p.dr_max(), big)
        pr["dr_min"].value = finite(p.dr_min(), big)
        # The linear credit, and the subsidy of followed events at their aim (dr_rows).
        pr["dr_credit"].value = dt * dr_rows.credit_cny_per_kwh(p)
        pr["dr_credit_base"].value = float(
            pr["dr_credit"].value @ dr_rows.baseline_kw(p)
        ) + dr_rows.revenue_at_aim_cny(p)
        dr_block.update(pr, self.slacks, p, big)
        group_block.update(pr, p, big)
        grid_friendly.update(pr, p, big)
        meter_block.update(pr, p)
        pr["peak_max"].value = big
        pr["month_peak"].value = float(max(p.month_peak_import_kw, 0.0))
        pr["peak_margin"].value = np.maximum(np.nan_to_num(p.peak_margin()), 0.0)
        rate = float(max(p.demand_charge_cny_per_kw, 0.0))
        pr["demand_charge"].value = rate
        pr["demand_charge_base"].value = rate * pr["month_peak"].value
        pr["bus_max"].value = finite(p.bus_max(), big).reshape(-1, 1)
        base = np.zeros((len(p.buses), p.n))
        for b in p.base_loads:
            base[p.bus_index(b.bus)] += b.p_kw
        for pe in p.pedfs:
            base[p.bus_index(pe.spec.bus)] += pe.base_kw
        pr["bus_base"].value = base
        if "pedf_base" in pr:
            pr["pedf_base"].value = np.array([pe.base_kw for pe in p.pedfs]).reshape(
                len(p.pedfs), p.n
            )
            lims = [pe.converter_limits_kw(p.n) for pe in p.pedfs]
            pr["pedf_conv_imp"].value = np.array([lim[0] for lim in lims]).reshape(-1, p.n)
            pr["pedf_conv_exp"].value = np.array([lim[1] for lim in lims]).reshape(-1, p.n)
            conv = np.array([pe.spec.converter_kw for pe in p.pedfs]).reshape(-1, 1)
            pr["pedf_margin_imp"].value = conv - pr["pedf_conv_imp"].value
            pr["pedf_margin_exp"].value = conv - pr["pedf_conv_exp"].value
            tgt = np.zeros((len(p.pedfs), p.n))
            w = np.zeros((len(p.pedfs), p.n))
            for j, pe in enumerate(p.pedfs):
                if pe.exchange_target_kw is not None and pe.target_weight_cny_per_kwh > 0:
                    has = np.isfinite(pe.exchange_target_kw)
                    tgt[j] = np.where(has, pe.exchange_target_kw, 0.0)
                    w[j] = has.astype(float)
            pr["pedf_target"].value = tgt
            # Where there is no target the deviation is pinned to 0 and its rows switched off.
            pr["pedf_dev_max"].value = np.where(w > 0, big, 0.0)
            pr["pedf_off"].value = np.where(w > 0, 0.0, big)
        if "net_coeff" in pr:
            rows = pr["net_coeff"].shape[0]
            coeff = np.zeros((rows, len(p.buses)))
            lim = np.full((rows, p.n), big)
            margin = np.zeros((rows, p.n))
            for r, c in enumerate(p.network):
                coeff[r] = c.coeff_per_kw
                lim[r] = finite(c.limit, big)
                if c.margin is not None:
                    margin[r] = np.maximum(np.nan_to_num(np.asarray(c.margin, float)), 0.0)
            pr["net_coeff"].value = coeff
            pr["net_margin"].value = margin
            # The rows' elements name their slacks: the model is re-used while the loop adds
            # rows, so the names of its first build would leave the new rows unnamed and
            # their relaxations unreported (a plan paying millions in penalties, "no limit").
            for sl in self.slacks:
                if sl.constraint == "network":
                    sl.assets[:] = [c.element for c in p.network] + ["-"] * (rows - len(p.network))
            # The Parameter part of the bus loads moves to the right-hand side (DPP).
            pr["net_limit"].value = lim - coeff @ self._bus_const_value(p)

    def _bus_const_value(self, p: DispatchProblem) -> np.ndarray:
        """Value of the Parameter part of every bus's load (base loads, load baselines)."""
        return np.asarray(self.exprs["bus_const"].value).reshape(len(p.buses), p.n)


def build_model(
    p: DispatchProblem,
    soft: bool = True,
    integer: bool = True,
    slots: int = 2,
    windows: int = 2,
    ev_aggregate: bool = False,
) -> _Model:
    """Build the cvxpy problem for ``p``'s structure (values are set by ``_Model.update``).

    ``ev_aggregate``: plain EV sessions become virtual EVs (:mod:`controllers.ev_aggregate`),
    a smaller restriction of the per-slot model whose plans are feasible session by session.
    """
    n, dt, pen = p.n, p.dt_h, p.penalties
    targets = ev_has_targets(p)
    ev = ev_blocks(p, soft, slots, targets) if ev_aggregate else [EvBlock(p, soft, slots, targets)]
    blocks: list[Block] = [
        BatteryBlock(p, soft),
        PvBlock(p, soft),
        CurtailableBlock(p, soft),
        *ev,
        ShiftableBlock(p, soft, windows, integer),
    ]
    blocks = [b for b in blocks if b.rows]
    helper = Block(soft)
    params: dict[str, cp.Parameter] = {
        "price_imp": cp.Parameter(n),  # CNY/kWh * dt
        "price_exp": cp.Parameter(n),  # CNY/kWh * dt
        "carbon": cp.Parameter(n, nonneg=True),  # CNY/kWh * dt
        "imp_max": cp.Parameter(n),
        "exp_max": cp.Parameter(n, nonneg=True),
        "dr_max": cp.Parameter(n),
        "dr_min": cp.Parameter(n),
        "dr_credit": cp.Parameter(n),  # CNY/kWh * dt, per kWh below the DR baseline
        "dr_credit_base": cp.Parameter(),  # dr_credit @ dr_baseline (DPP)
        "month_peak": cp.Parameter(nonneg=True),
        "peak_margin": cp.Parameter(n, nonneg=True),
        "demand_charge": cp.Parameter(nonneg=True),
        "demand_charge_base": cp.Parameter(nonneg=True),  # demand_charge * month_peak (DPP)
        "bus_max": cp.Parameter((len(p.buses), 1)),
        "bus_base": cp.Parameter((len(p.buses), n)),
    }
    bus_const: cp.Expression = params["bus_base"]
    bus_var: cp.Expression | None = None
    for b in blocks:
        a = _incidence(b.rows, p.buses)
        bus_var = a @ b.p_var if bus_var is None else bus_var + a @ b.p_var
        if b.p_const is not None:
            bus_const = bus_const + a @ b.p_const
    if bus_var is None:
        bus_var = cp.Constant(np.zeros((len(p.buses), n)))
    bus_p = bus_const + bus_var
    net = cp.sum(bus_p, axis=0)
    imp = cp.Variable(n, nonneg=True, name="import_kw")
    exp = cp.Variable(n, nonneg=True, name="export_kw")
    # Bounded above (peak_max) so that, without a demand charge, the optimal face stays
    # bounded: an interior-point solver needs that.
    params["peak_max"] = cp.Parameter(nonneg=True)
    peak = cp.Variable(nonneg=True, name="peak_import_kw")
    s_imp = helper.slack((1, n), "import_limit", ["connection"], "kW", pen.connection_cny_per_kwh)
    s_exp = helper.slack((1, n), "export_limit", ["connection"], "kW", pen.connection_cny_per_kwh)
    s_drx = helper.slack((1, n), "dr_import_cap", ["connection"], "kW", pen.dr_cny_per_kwh)
    s_drn = helper.slack((1, n), "dr_import_floor", ["connection"], "kW", pen.dr_cny_per_kwh)
    s_bus = helper.slack(
        (len(p.buses), n), "bus_import_limit", list(p.buses), "kW", pen.network_cny_per_kwh
    )

    def row(s):
        return s[0, :] if isinstance(s, cp.Variable) else s

    cons = [
        imp - exp == net,
        imp <= params["imp_max"] + row(s_imp),
        exp <= params["exp_max"] + row(s_exp),
        net <= params["dr_max"] + row(s_drx),
        net >= params["dr_min"] - row(s_drn),
        bus_p <= params["bus_max"] + s_bus,
        peak >= imp + params["peak_margin"],
        peak >= params["month_peak"],
        peak <= params["peak_max"],  # a row, not a bound: the demand charge multiplies peak
    ]
    if p.pedfs:
        cons += _pedf(p, blocks, helper, params)
    cons += dr_block.build(p, helper, params, imp, exp)
    cons += group_block.build(p, blocks, helper, params)
    bat = next((b for b in blocks if isinstance(b, BatteryBlock)), None)
    pvb = next((b for b in blocks if isinstance(b, PvBlock)), None)
    friendly_rows, friendly = grid_friendly.build(
        p, params, imp, net, None if bat is None else bat.pc + bat.pd, pvb and pvb.used
    )
    cons += friendly_rows
    rows = _network_rows(p)
    if rows:
        params["net_coeff"] = cp.Parameter((rows, len(p.buses)))
        params["net_limit"] = cp.Parameter((rows, n))
        names = [c.element for c in p.network] + ["-"] * (rows - len(p.network))
        s_net = helper.slack((rows, n), "network", names, "kW", pen.network_cny_per_kwh)
        # A free copy of the bus loads: the sensitivities (Parameters) may multiply it, while
        # the device variables themselves have Parameter bounds (DPP forbids the product).
        bus_free = cp.Variable((len(p.buses), n), name="bus_load_kw")
        # The forecast-error margin inside each row is priced, not hard (term
        # margin_shortfall): the plan may use it to serve what would otherwise give way.
        params["net_margin"] = cp.Parameter((rows, n), nonneg=True)
        m_net = cp.Variable((rows, n), bounds=[0, params["net_margin"]], name="net_margin_kw")
        helper.add_term("margin_shortfall", pen.network_margin_cny_per_kwh * p.dt_h * cp.sum(m_net))
        cons += [
            bus_free == bus_var,
            params["net_coeff"] @ bus_free <= params["net_limit"] + m_net + s_net,
        ]
    terms: dict[str, cp.Expression] = {
        "energy_import": params["price_imp"] @ imp,
        "energy_export": -(params["price_exp"] @ exp),
        "demand_charge": params["demand_charge"] * peak - params["demand_charge_base"],
        "carbon": params["carbon"] @ imp,
        # - credit x (baseline - net); on imp - exp (= net) so that it stays DPP
        "dr_revenue": params["dr_credit"] @ (imp - exp) - params["dr_credit_base"],
        "grid_friendly": friendly,
    }
    if meter_block.active(p):  # each meter billed on its own: its terms replace the connection's
        meter_cons, meter_terms = meter_block.build(p, params, bus_p)
        cons += meter_cons
        terms |= meter_terms
    for b in [*blocks, helper]:
        cons += b.constraints
        for name, expr in b.terms.items():
            terms[name] = terms[name] + expr if name in terms else expr
    slacks = [s for b in [*blocks, helper] for s in b.slacks]
    penalty = sum((s.cost(dt) for s in slacks), start=cp.Constant(0.0))
    terms["penalties"] = penalty
    objective = cp.Minimize(sum(terms.values(), start=cp.Constant(0.0)))
    exprs = {
        "net": net,
        "bus_p": bus_p,
        "bus_const": bus_const,
        "imp": imp,
        "exp": exp,
        "peak": peak,
    }
    return _Model(cp.Problem(objective, cons), blocks, params, exprs, terms, slacks, integer)


def _pedf(p: DispatchProblem, blocks: list[Block], helper: Block, params: dict) -> list:
    """Each PEDF building's grid exchange = its base load + battery + flexible load - PV,
    within the converter limit, optionally following a target exchange."""
    n, j_n = p.n, len(p.pedfs)
    params["pedf_base"] = cp.Parameter((j_n, n))
    # Converter limits per interval, import and export, after the forecast-error margins.
    params["pedf_conv_imp"] = cp.Parameter((j_n, n), nonneg=True)
    params["pedf_conv_exp"] = cp.Parameter((j_n, n), nonneg=True)
    params["pedf_margin_imp"] = cp.Parameter((j_n, n), nonneg=True)
    params["pedf_margin_exp"] = cp.Parameter((j_n, n), nonneg=True)
    params["pedf_target"] = cp.Parameter((j_n, n))
    params["pedf_dev_max"] = cp.Parameter((j_n, n), nonneg=True)
    params["pedf_off"] = cp.Parameter((j_n, n), nonneg=True)
    exchange = params["pedf_base"]
    members = {pe.spec.battery.name: j for j, pe in enumerate(p.pedfs)}
    members |= {pe.spec.pv.name: j for j, pe in enumerate(p.pedfs)}
    members |= {
        pe.spec.flexible_load.name: j for j, pe in enumerate(p.pedfs) if pe.spec.flexible_load
    }
    for b in blocks:
        sel = np.zeros((j_n, len(b.rows)))
        for i, (name, _) in enumerate(b.rows):
            if name in members:
                sel[members[name], i] = 1.0
        if sel.any():
            exchange = exchange + sel @ b.p_kw
    names = [pe.spec.name for pe in p.pedfs]
    s = helper.slack(
        (j_n, n), "pedf_converter", names, "kW", p.penalties.pedf_converter_cny_per_kwh
    )
    # The weights are structure (constants), so the Parameter-bounded deviation may be priced.
    weight = np.array([pe.target_weight_cny_per_kwh * p.dt_h for pe in p.pedfs]).reshape(-1, 1)
    dev = cp.Variable((j_n, n), bounds=[0, params["pedf_dev_max"]], name="pedf_target_dev_kw")
    helper.add_term("pedf_target", cp.sum(cp.multiply(weight, dev)))
    # The margins for forecast error inside the rating are priced, not hard: the plan may
    # use them at the reserve price (term margin_shortfall) but never the rating itself.
    m_imp = cp.Variable((j_n, n), bounds=[0, params["pedf_margin_imp"]], name="pedf_margin_imp")
    m_exp = cp.Variable((j_n, n), bounds=[0, params["pedf_margin_exp"]], name="pedf_margin_exp")
    helper.add_term("margin_shortfall", p.reserve_cny_per_kwh_h * p.dt_h * cp.sum(m_imp + m_exp))
    return [
        exchange <= params["pedf_conv_imp"] + m_imp + s,
        exchange >= -params["pedf_conv_exp"] - m_exp - s,
        dev >= exchange - params["pedf_target"] - params["pedf_off"],
        dev >= params["pedf_target"] - exchange - params["pedf_off"],
    ]


def _on_off_broken(problem: DispatchProblem, result: DispatchResult) -> list[str]:
    """Every on/off rule the result's shiftable schedules break (controllers.on_off)."""
    return [
        v
        for sh in problem.shiftables
        if on_off.has_on_off(sh)
        for v in on_off.violations(sh, result.assets[sh.spec.name].p_kw)
    ]


class MpcController:
    """The optimiser behind the :class:`~controllers.problem.Controller` interface."""

    name = "mpc"

    def __init__(
        self,
        solver: str = "HIGHS",
        fallback: str | None = "CLARABEL",
        soft: bool = True,
        ev_aggregate: bool = False,
        hot_start: bool = True,
        relax_first: bool = True,
        highs_mode: str = "auto",
        highs_threads: int | None = None,
    ):
        self.solver = solver
        self.fallback = fallback
        self.soft = soft
        # Per DR event id, whether the last plan followed it (dr_choice's hysteresis).
        self._dr_followed: dict[str, bool] = {}
        self.ev_aggregate = ev_aggregate
        # LPs: keep one HiGHS object per model and restart it from the last basis
        # (controllers.highs_hot); a failed restart is solved again from scratch.
        self.hot_start = hot_start
        self.highs_mode = highs_mode  # controllers.highs_hot.HotHighs: auto, basis or reduced
        self.highs_threads = highs_threads  # None: controllers.highs_hot.DEFAULT_THREADS
        # MILPs: solve the LP relaxation first (hot) and keep its schedule when it already
        # obeys the on/off rules (controllers.on_off): it is then the MILP's optimum.
        self.relax_first = relax_first
        self.relaxation_hits = 0
        self._models: dict[tuple, _Model] = {}
        self.builds = 0

    def _model(self, p: DispatchProblem, integer: bool) -> tuple[_Model, float]:
        slots = max(2, ev_slots(p))
        windows = max([2] + [len(s.windows) for s in p.shiftables])
        key = _key(p, self.soft, integer, slots, windows)
        if self.ev_aggregate:
            key = cache_key(self._models, key, structure(p))
        t0 = time.perf_counter()
        if key not in self._models:
            if len(self._models) > 8:  # keep memory bounded when structures keep changing
                self._models.clear()
            self._models[key] = build_model(
                p, self.soft, integer, slots, windows, self.ev_aggregate
            )
            self.builds += 1
        return self._models[key], time.perf_counter() - t0

    def dispatch(self, problem: DispatchProblem) -> DispatchResult:
        """The plan for ``problem``; with called DR events on the horizon, the cheaper of
        following each or not, valued as the settlement pays (:mod:`controllers.dr_choice`)."""
        result = dr_choice.dispatch(self._dispatch_one, problem, self._dr_followed)
        ids = {r.event_id for r in problem.dr_rows}
        self._dr_followed = {
            k: d.followed for k, d in result.dr_decisions.items() if d.weighed and k in ids
        }
        return result

    def _dispatch_one(self, problem: DispatchProblem) -> DispatchResult:
        needs_int = any(on_off.has_on_off(s) for s in problem.shiftables)
        messages: list[str] = []
        timings: dict[str, float] = {}
        if needs_int and self.relax_first and self.solver == "HIGHS":
            hit = self._relaxation(problem, timings, messages)
            if hit is not None:
                return hit
        model, build_s = self._model(problem, integer=needs_int)
        t0 = time.perf_counter()
        model.update(problem)
        timings["build_s"] = timings.get("build_s", 0.0) + build_s
        timings["update_s"] = timings.get("update_s", 0.0) + time.perf_counter() - t0
        status, solver = self._solve(model, self.solver, problem, timings, messages)
        if status not in OK_STATUSES and self.fallback:
            fb = model
            if needs_int:
                fb, extra = self._model(problem, integer=False)
                timings["build_s"] += extra
                fb.update(problem)
                messages.append(on_off.RELAXED_MESSAGE)
            status, solver = self._solve(fb, self.fallback, problem, timings, messages)
            model = fb
        if status not in OK_STATUSES:
            raise SolverFailure("; ".join(messages) or f"solver status {status}")
        return self._result(problem, model, status, solver, timings, messages)

    def _relaxation(
        self, problem: DispatchProblem, timings: dict, messages: list[str]
    ) -> DispatchResult | None:
        """The LP relaxation's result when its schedule keeps every on/off rule, else None.

        The relaxation's optimum bounds the MILP's from below, so a schedule that is feasible
        for the MILP is optimal for it, exactly (no MIP gap)."""
        model, build_s = self._model(problem, integer=False)
        t0 = time.perf_counter()
        model.update(problem)
        timings["build_s"] = build_s
        timings["update_s"] = time.perf_counter() - t0
        lp_messages: list[str] = []
        lp_timings: dict[str, float] = {}
        status, solver = self._solve(model, self.solver, problem, lp_timings, lp_messages)
        timings["solve_relaxation_s"] = lp_timings.get("solve_highs_s", 0.0)
        if status not in OK_STATUSES:
            messages.append(f"LP relaxation: {'; '.join(lp_messages)}; solving the MILP")
            return None
        result = self._result(problem, model, status, solver, timings | lp_timings, [])
        broken = _on_off_broken(problem, result)
        if not broken:
            self.relaxation_hits += 1
            result.messages.append(on_off.RELAXATION_EXACT_MESSAGE)
            return result
        return self._repair(problem, model, result, timings, messages, broken[0])

    def _repair(
        self,
        problem: DispatchProblem,
        model: _Model,
        relaxed: DispatchResult,
        timings: dict,
        messages: list[str],
        why: str,
    ) -> DispatchResult | None:
        """Fix the on/off states to the relaxation's schedule rounded to the run rules
        (:func:`controllers.on_off.round_pattern`) and re-solve the LP. Kept when within the
        MILP's relative gap of the relaxation's optimum (a lower bound): the same guarantee
        HiGHS gives a MILP solve."""
        block = next(b for b in model.blocks if isinstance(b, ShiftableBlock))
        block.fixed_on = np.array(
            [
                on_off.round_pattern(sh, relaxed.assets[sh.spec.name].p_kw, problem.dt_h)
                for i, sh in enumerate(problem.shiftables)
                if i in block.on_rows
            ]
        )
        lp_messages: list[str] = []
        lp_timings: dict[str, float] = {}
        try:
            block.update(problem)
            status, solver = self._solve(model, self.solver, problem, lp_timings, lp_messages)
        finally:
            block.fixed_on = None
            block.update(problem)
        timings["solve_repair_s"] = lp_timings.get("solve_highs_s", 0.0)
        lower = relaxed.objective_cny
        if status in OK_STATUSES:
            result = self._result(problem, model, status, solver, timings | lp_timings, [])
            gap = (result.objective_cny - lower) / max(abs(result.objective_cny), 1.0)
            broken = _on_off_broken(problem, result)
            if not broken and gap <= problem.mip_rel_gap:
                self.relaxation_hits += 1
                result.messages.append(
                    f"{on_off.REPAIRED_MESSAGE}: {gap:.2e} above the relaxation's optimum"
                )
                return result
            messages.append(
                f"LP relaxation breaks on/off rules ({why}); its rounding is {gap:.2e} above "
                f"the bound{' and breaks them too' if broken else ''}: solving the MILP"
            )
        else:
            messages.append(
                f"LP relaxation breaks on/off rules ({why}); its rounding: "
                f"{'; '.join(lp_messages)}: solving the MILP"
            )
        return None

    def _solve(
        self, model: _Model, solver: str, p: DispatchProblem, timings: dict, messages: list[str]
    ) -> tuple[str, str]:
        opts: dict = {}
        if solver == "HIGHS":
            opts = {"time_limit": float(p.time_limit_s)}
            if model.integer:
                opts["mip_rel_gap"] = float(p.mip_rel_gap)
        elif solver == "CLARABEL":
            opts = {"time_limit": float(p.time_limit_s)}
        t0 = time.perf_counter()
        try:
            if solver == "HIGHS" and self.hot_start and not model.integer:
                model.hot = model.hot or HotHighs(self.highs_mode, self.highs_threads)
                model.hot.last_timings_s = {}
                model.hot.solve(model.problem, opts)
                for key, seconds in model.hot.last_timings_s.items():  # summed over solves
                    timings[key] = timings.get(key, 0.0) + seconds
            else:
                model.problem.solve(solver=solver, **opts)
            status = model.problem.status
        except (cp.SolverError, ValueError, ArithmeticError) as exc:
            status = "solver_error"
            messages.append(f"{solver}: {type(exc).__name__}: {exc}")
        timings[f"solve_{solver.lower()}_s"] = time.perf_counter() - t0
        timings["compile_s"] = float(getattr(model.problem, "compilation_time", 0.0) or 0.0)
        stats = model.problem.solver_stats
        if stats is not None and stats.solve_time is not None:
            timings["solver_s"] = float(stats.solve_time)
        if status not in OK_STATUSES:
            messages.append(f"{solver} returned status {status}")
        return status, solver

    def _result(
        self,
        p: DispatchProblem,
        model: _Model,
        status: str,
        solver: str,
        timings: dict,
        messages: list[str],
    ) -> DispatchResult:
        assets: dict[str, AssetSchedule] = {}
        for b in model.blocks:
            b.extract(assets)
        for bl in p.base_loads:
            assets[bl.name] = AssetSchedule(
                bl.name, "base_load", bl.bus, np.asarray(bl.p_kw).copy()
            )
        add_pedf_schedules(p, assets)
        bus_p = np.asarray(model.exprs["bus_p"].value)
        if self.ev_aggregate and bus_free(p):  # virtual EVs span buses: sum the devices
            loads = bus_loads(p, assets)
            bus_p = np.array([loads[b] for b in p.buses]).reshape(len(p.buses), p.n)
        relaxed: list[Relaxation] = []
        for s in model.slacks:
            if s.constraint in dr_block.CORRIDOR_SLACKS:  # named after the owning event
                relaxed.extend(dr_block.corridor_relaxations(p, s, p.dt_h))
                continue
            if s.constraint in dr_block.QUIET:  # a tie-break and margins: nothing given way
                continue
            relaxed.extend(r for r in s.relaxations(p.dt_h) if r.asset != "-")
        relaxed += relaxations.unavoidable(p)
        terms = dict.fromkeys(TERMS, 0.0)
        terms |= {k: float(np.asarray(v.value)) for k, v in model.terms.items()}
        status_out = "optimal" if status == cp.OPTIMAL else "optimal_inaccurate"
        return DispatchResult(
            controller=self.name,
            status=status_out,
            solver=solver,
            horizon=p.horizon,
            p_net_kw=np.asarray(model.exprs["net"].value).copy(),
            assets=assets,
            bus_p_kw={b: bus_p[i].copy() for i, b in enumerate(p.buses)},
            objective_cny=float(model.problem.value),
            terms_cny=terms,
            relaxed=relaxed,
            timings_s=timings,
            messages=messages,
        )
