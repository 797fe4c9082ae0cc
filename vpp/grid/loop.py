"""Closing the loop: validate a dispatch with AC power flow, feed violations back, re-solve.

:func:`dispatch_ac_feasible` calls ``controller.dispatch(problem)``, runs the power flow of
every step of ``result.bus_p_kw`` (:class:`vpp.grid.network.GridModel`) and, for each violated
element, adds one linear row to ``problem.network`` (a :class:`NetworkConstraint`):

* loading of a line or transformer: ``L(p) ~ L0[t] + s . (p - p0[t]) <= L_max - margin - u[t]``;
* voltage of a bus: ``V(p) ~ V0[t] + s . (p - p0[t]) <= V_max - margin - u[t]`` (or ``>= V_min``).

``u[t]`` is the margin for forecast error: the problem carries, per bus and interval, how much
more (``bus_error_up_kw``) or less (``bus_error_down_kw``) each bus may draw than planned at the
park's risk level (:func:`vpp.plan.prepare.bus_errors_kw`, from the forecasters' quantiles), and
``u[t] = sum_b max(s_b, 0) up[b, t] + max(-s_b, 0) down[b, t]``: the row holds, to first order,
for every realisation within those bounds. The plan is also checked with the AC power flow at
those bounds (every bus ``up``, then every bus ``down``): an element within its limit in the
plan but over it there is *at risk* and gets a row too, so that a transformer planned at 97 %
under a load forecast 20 % low does not reach 115 % in reality.

``s`` is the sensitivity to +1 kW of load at each bus from the power flow's Jacobian at the
step where the element is worst; ``L0[t]``, ``V0[t]``, ``p0[t]`` come from every step of the
last power flow, so the row is exact to first order at every step. Each row is divided by
its largest coefficient, so its unit (and the controller's slack on it) is kW at the most
sensitive bus: the network penalty per kWh then means the same for every row. Rows from
earlier rounds stay; an element that is still violated gets a new row with a wider margin.

Where the park's network is unbalanced (single-phase or line-to-line chargers on it,
:func:`vpp.grid.unbalanced.applies`), each plan is also run through pandapower's three-phase
flow at the step sent and the steps nearest a limit (``phase``: a
:class:`vpp.grid.unbalanced.PhaseCheck`). An element over its limit on its worst phase is a
violation like any other; its row is the balanced one with the limit divided by the
unbalance found (worst phase / balanced loading), or a voltage bound moved by the worst
phase's offset, and the checks under the forecast-error bounds apply the same unbalance.

The controller stays pure: it sees only arrays. If no dispatch within the rows exists (the
inflexible load alone overloads a transformer), the controller relaxes them at its network
penalty; the loop keeps the least-violating dispatch and names the element.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from controllers.problem import Controller, DispatchProblem, DispatchResult, NetworkConstraint
from vpp.grid.network import GridModel, GridReport, Violation, bus_q_kvar
from vpp.grid.unbalanced import PhaseCheck, apply_unbalance, fold, steps_to_check

LOADING_MARGIN_FRAC = 0.02  # of the loading limit, per round the element stays violated
VOLTAGE_MARGIN_PU = 0.002
# A row's bus sensitivities below this share of its strongest are held at the plan's value.
SENSITIVITY_FLOOR = 0.05
UNCONTROLLABLE = "uncontrollable"  # a Tightening's reason: no decision moves the element


@dataclass(frozen=True)
class Tightening:
    """One row added to the dispatch: which element, why, where it was worst."""

    round: int
    row: str
    element: str
    kind: str
    worst_step: int
    worst_value: float
    limit: float
    margin: float
    # "violated": the plan itself broke the limit; "at_risk": only the plan under the forecast
    # error bounds did; "uncontrollable": no decision moves it, so no row was added.
    # ``error_margin_max`` is the largest u[t] of the row (its unit: % loading or pu, as
    # ``limit``).
    reason: str = "violated"
    error_margin_max: float = 0.0


@dataclass
class LoopReport:
    """What the closed loop did: rounds, rows added, cost of the fix, final AC check."""

    feasible: bool
    rounds: int  # re-solves after the first dispatch
    reports: list[GridReport]
    tightened: list[Tightening]
    objective_initial_cny: float
    objective_final_cny: float
    terms_delta_cny: dict[str, float]
    solve_s: list[float]  # controller time of every solve, first included
    validate_s: list[float]
    infeasible_elements: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # Elements within their limits in the plan but over them under the forecast-error bounds
    # (the final round's stressed checks), and those checks' reports (up, then down).
    at_risk_elements: list[str] = field(default_factory=list)
    stressed: list[GridReport] = field(default_factory=list)
    # The network rows of the problem the kept dispatch solved (learnt and carried): what
    # the plan's explanation of who gave way must see.
    rows: tuple[NetworkConstraint, ...] = ()

    @property
    def cost_of_fix_cny(self) -> float:
        return self.objective_final_cny - self.objective_initial_cny

    @property
    def extra_solve_s(self) -> float:
        return float(sum(self.solve_s[1:]))

    @property
    def final(self) -> GridReport:
        return self.reports[-1]


class RowMemory:
    """Network rows carried from one cycle to the next, so that an element the park keeps
    pressing against starts the next cycle already constrained instead of costing a
    correction round every interval.

    After a cycle, the rows of its final dispatch that bind at some step (the dispatch sits
    within ``bind_kw`` of the row's limit) are kept; the next cycle's problem gets them
    shifted by the steps elapsed (a step beyond the old horizon has no limit). A row that no
    longer binds is dropped: if the element is violated again, the loop learns it anew. The
    AC check still validates every dispatch, so a carried row can cost money, never safety.
    """

    def __init__(self, bind_kw: float = 1.0):
        self.bind_kw = bind_kw
        self.rows: tuple[NetworkConstraint, ...] = ()
        self.start = None
        self.step = None

    def apply(self, problem: DispatchProblem) -> DispatchProblem:
        if not self.rows or self.start is None or problem.horizon.step != self.step:
            return problem
        shift = round((problem.horizon.start - self.start) / self.step)
        if shift < 0 or shift >= problem.n:
            return problem
        carried = []
        for r in self.rows:
            if len(r.coeff_per_kw) != len(problem.buses):
                return problem
            limit = np.full(problem.n, np.inf)
            old = np.asarray(r.limit, dtype=float)[shift:]
            limit[: len(old)] = old[: problem.n]
            margin = None
            if r.margin is not None:
                margin = np.zeros(problem.n)
                m_old = np.asarray(r.margin, dtype=float)[shift:]
                margin[: len(m_old)] = m_old[: problem.n]
            carried.append(dataclasses.replace(r, limit=limit, margin=margin))
        return dataclasses.replace(problem, network=problem.network + tuple(carried))

    def learn(self, problem: DispatchProblem, result: DispatchResult) -> None:
        p = np.stack([np.asarray(result.bus_p_kw[b], dtype=float) for b in problem.buses])
        keep = []
        for r in problem.network:
            slack = np.asarray(r.limit, dtype=float) - np.asarray(r.coeff_per_kw) @ p
            if (slack <= self.bind_kw).any():
                keep.append(r)
        self.rows = tuple(keep)
        self.start = problem.horizon.start
        self.step = problem.horizon.step


def dispatch_ac_feasible(
    controller: Controller,
    problem: DispatchProblem,
    grid: GridModel,
    max_rounds: int = 3,
    memory: RowMemory | None = None,
    phase: PhaseCheck | None = None,
) -> tuple[DispatchResult, LoopReport]:
    """A dispatch that holds in the AC power flow, or the least-violating one, and a report.

    Parameters
    ----------
    controller : anything with ``dispatch(problem) -> DispatchResult``.
    problem : the dispatch problem; ``problem.buses`` must be buses of ``grid``.
    grid : the park network with its limits.
    max_rounds : re-solves allowed after the first dispatch.
    memory : rows learnt in earlier cycles (:class:`RowMemory`), applied first and updated.
    phase : the park's unbalanced flow (:class:`vpp.grid.unbalanced.PhaseCheck`), where its
        network is unbalanced: each plan is also checked per phase at the step sent and the
        steps nearest a limit (:func:`vpp.grid.unbalanced.steps_to_check`), and an element
        over its limit on a phase gets a row on the balanced model at its unbalance.
    """
    missing = sorted(set(problem.buses) - set(grid.buses))
    if missing:
        raise ValueError(f"problem buses not in the network model: {missing}")
    results, reports, stressed, solve_s, validate_s = [], [], [], [], []
    tightened: list[Tightening] = []
    times_hit: dict[tuple[str, str], int] = {}
    current = memory.apply(problem) if memory is not None else problem
    problems = []
    for rnd in range(max_rounds + 1):
        problems.append(current)
        t0 = time.perf_counter()
        result = controller.dispatch(current)
        solve_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        q = _plan_q_kvar(grid, result)
        report = validate_result(grid, result, q)
        stress = stressed_reports(grid, result, current, q)
        if phase is not None and result.ok:
            check_phases(phase, result, report, stress)
        validate_s.append(time.perf_counter() - t0)
        results.append(result)
        reports.append(report)
        stressed.append(stress)
        if _all_ok(report, stress) or rnd == max_rounds or not result.ok:
            break
        rows, notes = correction_rows(grid, report, current, result, rnd + 1, times_hit, stress)
        tightened.extend(notes)
        if not rows:
            break
        current = dataclasses.replace(current, network=current.network + tuple(rows))
    best = _least_violating(reports, stressed)
    if memory is not None and results[best].ok:
        memory.learn(problems[best], results[best])
    out = _loop_report(results, reports, best, tightened, solve_s, validate_s)
    out.rows = problems[best].network
    _name_at_risk(out, reports[best], stressed[best])
    return results[best], out


def check_phases(
    phase: PhaseCheck, result: DispatchResult, report: GridReport, stress: list[GridReport]
) -> None:
    """The unbalanced flow of the plan at the steps nearest a limit, folded into its balanced
    ``report``; the checks under the forecast-error bounds take the unbalance it found."""
    schedules = {name: np.asarray(a.p_kw, dtype=float) for name, a in result.assets.items()}
    found = phase.check(schedules, report, steps_to_check(report), report.limits)
    fold(report, found)
    for r in stress:
        apply_unbalance(r, report.unbalance)


def _all_ok(report: GridReport, stress: list[GridReport]) -> bool:
    return report.ok and all(r.ok for r in stress)


def stressed_reports(
    grid: GridModel,
    result: DispatchResult,
    problem: DispatchProblem,
    q: dict[str, np.ndarray] | None = None,
) -> list[GridReport]:
    """AC checks of the plan with every bus drawing its forecast-error bound more (``up``),
    then less (``down``) than planned (:attr:`DispatchProblem.bus_error_up_kw`); none when
    the problem carries no error bounds. Reactive power as planned (``q``, if given)."""
    up, down = problem.bus_error_kw()
    if not np.any(up > 1e-6) and not np.any(down > 1e-6):
        return []
    q = _plan_q_kvar(grid, result) if q is None else q
    out = []
    for sign, err in ((1.0, up), (-1.0, down)):
        if not np.any(err > 1e-6):
            continue
        p = {b: np.asarray(v, dtype=float) for b, v in result.bus_p_kw.items()}
        for i, b in enumerate(problem.buses):
            p[b] = p.get(b, np.zeros(problem.n)) + sign * err[i]
        q_all = {b: q.get(b, np.zeros_like(v)) for b, v in p.items()}
        out.append(grid.validate(p, q_all))
    return out


def _name_at_risk(out: LoopReport, report: GridReport, stress: list[GridReport]) -> None:
    """Record (and say) which elements are over their limits only under the error bounds."""
    violated = {v.element for v in report.violations}
    risky: dict[tuple[str, str], Violation] = {}
    for r in stress:
        for key, v in r.worst().items():
            if key[0] not in violated and (key not in risky or v.excess() > risky[key].excess()):
                risky[key] = v
    out.stressed = stress
    out.at_risk_elements = sorted({k[0] for k in risky})
    for (el, kind), v in sorted(risky.items()):
        out.messages.append(
            f"at risk under the forecast-error bounds: {el} {kind} {v.value:.4g} against "
            f"{v.limit:.4g} at step {v.step} (within the limit at P50)"
        )


def _plan_q_kvar(grid: GridModel, result: DispatchResult) -> dict[str, np.ndarray]:
    """Reactive power per bus of a dispatch (kvar), from the consumption's power factor."""
    return bus_q_kvar(result.assets, grid.buses, grid.options.load_power_factor)


def validate_result(
    grid: GridModel, result: DispatchResult, q: dict[str, np.ndarray] | None = None
) -> GridReport:
    """AC check of every step of a dispatch (Q from the consumption's power factor, or
    ``q`` when the caller has it already)."""
    q = _plan_q_kvar(grid, result) if q is None else q
    q_all = {
        b: q.get(b, np.zeros_like(np.asarray(p, dtype=float))) for b, p in result.bus_p_kw.items()
    }
    return grid.validate(result.bus_p_kw, q_all)


def _worst_of(report: GridReport, stress: list[GridReport]) -> dict:
    """The worst violation of each (element, kind) in the plan, then in the stressed checks
    (as ``(violation, reason)``): the plan's own violation names the row where there is one."""
    out = {k: (v, "violated") for k, v in report.worst().items()}
    for r in stress:
        for k, v in r.worst().items():
            if k not in out or (out[k][1] == "at_risk" and v.excess() > out[k][0].excess()):
                out[k] = (v, "at_risk")
    return out


def correction_rows(
    grid: GridModel,
    report: GridReport,
    problem: DispatchProblem,
    result: DispatchResult,
    rnd: int,
    times_hit: dict[tuple[str, str], int],
    stress: list[GridReport] = (),
) -> tuple[list[NetworkConstraint], list[Tightening]]:
    """One linear row per violated or at-risk (element, kind), linearised around the plan's
    power flow, with the margin for forecast error of the module docstring."""
    flow = report.flow
    cols = np.array([grid.buses.index(b) for b in problem.buses])
    p0 = np.stack([np.asarray(result.bus_p_kw.get(b, np.zeros(problem.n))) for b in problem.buses])
    err_up, err_down = problem.bus_error_kw()
    controllable = controllable_buses(problem)
    sens_cache: dict[int, object] = {}
    rows, notes = [], []
    for (element, kind), (worst, reason) in sorted(_worst_of(report, stress).items()):
        if kind == "not_converged" or flow.V is None:
            continue
        t = worst.step
        if t not in sens_cache:
            sens_cache[t] = grid.sensitivity(flow.V[t])
        hits = times_hit.get((element, kind), 0) + 1
        times_hit[(element, kind)] = hits
        s_all, x0, bound, margin = _row_data(grid, report, sens_cache[t], element, kind, hits)
        c = s_all[cols]
        if kind == "undervoltage":  # V >= Vmin  <=>  -V <= -Vmin
            c, x0, bound = -c, -x0, -bound
        u = np.maximum(c, 0.0) @ err_up + np.maximum(-c, 0.0) @ err_down
        scale = float(np.abs(c).max())
        if not scale > 1e-12:
            continue
        # The row moves only the buses that matter to it: a sensitivity under
        # SENSITIVITY_FLOOR of the strongest is held at the plan's value (exact at the
        # linearisation point). Kept, a transformer's row that no plan can meet reached the
        # chargers of another building through a 1 % voltage coupling, and at the network
        # penalty that outbid their cars' energy.
        c = np.where(np.abs(c) >= SENSITIVITY_FLOOR * scale, c, 0.0)
        name = f"{element} {kind} r{rnd}"
        u_max = float(u.max(initial=0.0))
        note = Tightening(
            rnd, name, element, kind, t, worst.value, worst.limit, margin, reason, u_max
        )
        if not np.any(c[controllable] != 0.0):
            # No decision moves it (no controllable asset where it is sensitive): a row would
            # only add a constant penalty to every plan. Said, and left to the realised check.
            notes.append(dataclasses.replace(note, reason=UNCONTROLLABLE))
            continue
        limit = bound - x0 + c @ p0 - u
        x0_ok = np.where(np.isfinite(limit), limit, np.inf)
        # The margins inside the limit the plan may use at a price, never the limit itself:
        # the forecast-error margin u, and for a row that is only at risk (within its limit
        # at P50) the linearisation margin as well; a violated row keeps that one hard.
        soft = u + (margin if reason == "at_risk" else 0.0)
        rows.append(NetworkConstraint(name, element, c / scale, x0_ok / scale, soft / scale))
        notes.append(note)
    return rows, notes


def controllable_buses(problem: DispatchProblem) -> np.ndarray:
    """Per bus of ``problem.buses``: whether any decision of the dispatch sits there."""
    buses = set()
    buses |= {b.spec.bus for b in problem.batteries}
    buses |= {x.spec.bus for x in problem.pv if x.spec.curtailable}
    buses |= {c.spec.bus for c in problem.ev_chargers}
    buses |= {s.spec.bus for s in problem.shiftables}
    buses |= {c.spec.bus for c in problem.curtailables}
    buses |= {pe.spec.bus for pe in problem.pedfs}
    return np.array([b in buses for b in problem.buses], dtype=bool)


def _row_data(grid: GridModel, report: GridReport, sens, element: str, kind: str, hits: int):
    """Sensitivity per grid bus, the quantity at every step, its bound and the margin."""
    lim = report.limits
    flow = report.flow
    if kind in ("overvoltage", "undervoltage"):
        i = grid.element_names("bus").index(element)
        margin = VOLTAGE_MARGIN_PU * hits
        # Unbalanced: the worst phase lies ``off`` pu beyond the balanced voltage.
        off = max(report.unbalance.get((element, kind), 0.0), 0.0)
        if kind == "overvoltage":
            bound = lim.v_max_pu - margin - off
        else:
            bound = lim.v_min_pu + margin + off
        return sens.vm_pu[i], flow.vm_pu[:, i], bound, margin
    margin = LOADING_MARGIN_FRAC * lim.loading_max_percent * hits
    # Unbalanced: the worst phase runs at ``u`` times the balanced loading.
    u = max(report.unbalance.get((element, kind), 1.0), 1.0)
    bound = (lim.loading_max_percent - margin) / u
    if kind == "trafo_loading":
        i = grid.element_names("trafo").index(element)
        return sens.trafo_percent[i], flow.trafo_loading_percent[:, i], bound, margin
    i = grid.element_names("line").index(element)
    return sens.line_percent[i], flow.line_loading_percent[:, i], bound, margin


def _least_violating(reports: list[GridReport], stressed: list[list[GridReport]]) -> int:
    """The round whose plan violates least; among equals, the least at risk; among those,
    the latest (it carries every row learnt so far)."""
    sev = [
        (round(r.severity(), 6), round(sum(x.severity() for x in s), 6))
        for r, s in zip(reports, stressed, strict=True)
    ]
    best = min(sev)
    return max(i for i, s in enumerate(sev) if s <= best)


def _loop_report(results, reports, best, tightened, solve_s, validate_s) -> LoopReport:
    final, first = results[best], results[0]
    terms = {
        k: final.terms_cny.get(k, 0.0) - first.terms_cny.get(k, 0.0)
        for k in sorted(set(final.terms_cny) | set(first.terms_cny))
    }
    rep = reports[best]
    infeasible = sorted({v.element for v in rep.violations})
    msgs = []
    if infeasible:
        msgs.append(
            f"no AC-feasible dispatch after {len(results) - 1} correction round(s); kept the "
            f"least-violating one (round {best}). Still violated: " + "; ".join(rep.summary())
        )
    relaxed = [r for r in final.relaxed if r.constraint == "network"]
    for r in relaxed:
        msgs.append(f"the controller could not keep {r.asset} within its limit: {r.describe()}")
    return LoopReport(
        feasible=rep.ok,
        rounds=len(results) - 1,
        reports=reports,
        tightened=tightened,
        objective_initial_cny=first.objective_cny,
        objective_final_cny=final.objective_cny,
        terms_delta_cny=terms,
        solve_s=solve_s,
        validate_s=validate_s,
        infeasible_elements=infeasible,
        messages=msgs,
    )


def describe(report: LoopReport) -> list[str]:
    """Lines a person reads: rounds, what was tightened, the cost, what is left."""
    out = [
        f"AC-feasible: {'yes' if report.feasible else 'NO'} after {report.rounds} correction "
        f"round(s); cost of the fix {report.cost_of_fix_cny:+.2f} CNY "
        f"(objective {report.objective_initial_cny:.2f} -> {report.objective_final_cny:.2f}); "
        f"extra solve time {report.extra_solve_s:.3f} s"
    ]
    for t in report.tightened:
        if t.reason == UNCONTROLLABLE:
            out.append(
                f"  round {t.round}: {t.element} {t.kind} {t.worst_value:.4g} (limit "
                f"{t.limit:.4g}) at step {t.worst_step}: no controllable asset moves it, no row"
            )
            continue
        how = "was" if t.reason == "violated" else "would be, under the forecast-error bounds,"
        out.append(
            f"  round {t.round}: {t.element} {t.kind} {how} {t.worst_value:.4g} "
            f"(limit {t.limit:.4g}) at step {t.worst_step}; row added with margin {t.margin:.3g}"
            f" and up to {t.error_margin_max:.3g} for forecast error"
        )
    out.extend(report.messages)
    return out


__all__ = [
    "LoopReport",
    "RowMemory",
    "Tightening",
    "Violation",
    "correction_rows",
    "describe",
    "dispatch_ac_feasible",
    "stressed_reports",
    "validate_result",
]
