"""The DR event rows of a dispatch problem as arrays (pure computation).

One place for the arithmetic that the optimiser's rows (:mod:`controllers.mpc`), the
yardstick (:mod:`controllers.costs`), the invariants and the choice between following an
event or not (:mod:`controllers.dr_choice`) must share. An event's delivery over its own
intervals ``owned`` on the horizon is, in kWh and in the event's direction::

    D = sign * (B - a @ net)      a = dt * owned,  B = a @ baseline

(``sign`` +1 for peak shaving: less import delivers; -1 for valley filling). A row held in
``[e_min, e_max]`` is therefore a bound on the import energy ``a @ net``. A row the plan does
not follow pays its non-performance penalty on the shortfall to the band's lower edge::

    short >= lo * requested - delivered_so_far - D,   short >= 0

and a cap-only event not followed pays it on the energy above its cap.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult, DrEventRow
from vpp.park import dr_rules

CAP_TOL_KW = 1e-3  # a planned interval at its cap (to rounding) complies
# CNY per kWh of planned import away from an event's per-interval aim: far below any price
# difference between intervals (a tie-break, not a trade), so that of the plans an event's
# row and corridor allow and that cost the same, the one spread evenly at the aim is taken.
# Without it the LP picks a vertex: the whole response in the last intervals of a window,
# whose forecast error no later cycle can correct (seen in closed-loop simulation).
AIM_CNY_PER_KWH = 0.01
# CNY per kWh of a reserve for a window not begun that the plan does not hold: above any
# energy price (the plan holds it where stored energy or cheap import allow), below what a
# new month peak costs per kWh of an interval (a demand charge of 32 CNY/kW-month is 128 CNY
# per kWh charged in one 15-minute interval): a reserve is never bought with a new peak.
RESERVE_CNY_PER_KWH = 10.0


def baseline_kw(problem: DispatchProblem) -> np.ndarray:
    """The DR baseline the rows stand on (kW per interval; zeros when the problem has none)."""
    if problem.dr_baseline_kw is None:
        return np.zeros(problem.n)
    return np.nan_to_num(np.asarray(problem.dr_baseline_kw, dtype=float))


def owner_ids(problem: DispatchProblem) -> list[str]:
    """The event id that owns each interval (``""`` where none)."""
    out = [""] * problem.n
    for row in problem.dr_rows:
        for k in np.flatnonzero(row.owned):
            out[int(k)] = row.event_id
    return out


def _a(problem: DispatchProblem, row: DrEventRow) -> np.ndarray:
    return problem.dt_h * np.asarray(row.owned, dtype=float)


def aim_kw(problem: DispatchProblem) -> tuple[np.ndarray, np.ndarray]:
    """``(aim, on)``: the import each followed energy-tracked event aims at (the middle of
    its corridor, kW) and where (bool); ``aim`` is 0 elsewhere."""
    aim, on = np.zeros(problem.n), np.zeros(problem.n, dtype=bool)
    hi, lo = problem.dr_max(), problem.dr_min()
    for row in problem.dr_rows:
        if not row.follow or row.cap_kw is not None:
            continue
        mine = np.asarray(row.owned, dtype=bool) & np.isfinite(hi) & np.isfinite(lo)
        aim[mine] = 0.5 * (hi[mine] + lo[mine])
        on |= mine
    return aim, on


def delivered_kwh(problem: DispatchProblem, row: DrEventRow, net_kw: np.ndarray) -> float:
    """Delivery of ``row``'s event over its own intervals on the horizon under ``net_kw``
    (kWh, in the event's direction)."""
    a = _a(problem, row)
    return float(row.sign * a @ (baseline_kw(problem) - np.asarray(net_kw, dtype=float)))


def energy_rows(problem: DispatchProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(c, bot, top)``: the rows ``bot <= c @ net <= top`` of the followed events with an
    energy band, ``c = sign * dt * owned``: ``c @ net`` above ``top`` is delivery short of
    ``e_min_kwh``, below ``bot`` delivery over ``e_max_kwh``. Zero rows with infinite
    bounds for the others."""
    r, n = len(problem.dr_rows), problem.n
    c_all, bot, top = np.zeros((r, n)), np.full(r, -np.inf), np.full(r, np.inf)
    base = baseline_kw(problem)
    for i, row in enumerate(problem.dr_rows):
        if not row.follow or not (np.isfinite(row.e_min_kwh) or np.isfinite(row.e_max_kwh)):
            continue
        c = row.sign * _a(problem, row)
        d0 = float(c @ base)  # delivery = d0 - c @ net
        c_all[i] = c
        bot[i], top[i] = d0 - row.e_max_kwh, d0 - row.e_min_kwh
    return c_all, bot, top


def penalty_rows(problem: DispatchProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(g, g0, w)``: the shortfall of each event the plan does not follow is
    ``max(g0 + g @ net, 0)`` kWh, priced ``w`` CNY/kWh (zero rows for the others)."""
    r, n = len(problem.dr_rows), problem.n
    g, g0, w = np.zeros((r, n)), np.zeros(r), np.zeros(r)
    base = baseline_kw(problem)
    for i, row in enumerate(problem.dr_rows):
        rate = row.terms.nonperformance_cny_per_kwh
        if row.follow or row.cap_kw is not None or rate <= 0 or row.requested_kwh <= 0:
            continue
        a = _a(problem, row)
        g[i] = row.sign * a
        g0[i] = row.band[0] * row.requested_kwh - row.delivered_kwh - row.sign * float(a @ base)
        w[i] = rate
    return g, g0, w


def cap_penalty(problem: DispatchProblem) -> tuple[np.ndarray, np.ndarray]:
    """``(cap, w)``: the caps of the cap-only events the plan does not follow on their own
    intervals (``+inf`` elsewhere) and their non-performance price (CNY/kWh, 0 elsewhere)."""
    cap, w = np.full(problem.n, np.inf), np.zeros(problem.n)
    for row in problem.dr_rows:
        if row.follow or row.cap_kw is None:
            continue
        mine = np.asarray(row.owned, dtype=bool)
        cap[mine] = row.cap_kw
        w[mine] = row.terms.nonperformance_cny_per_kwh
    return cap, w


def dr_penalty_cny(problem: DispatchProblem, net_kw: np.ndarray) -> float:
    """Non-performance penalty (CNY) the plan ``net_kw`` prices for the events it does not
    follow (the objective's ``dr_penalty`` term)."""
    net = np.asarray(net_kw, dtype=float)
    g, g0, w = penalty_rows(problem)
    out = float(w @ np.maximum(g0 + g @ net, 0.0)) if len(w) else 0.0
    cap, cw = cap_penalty(problem)
    over = np.where(np.isfinite(cap), np.maximum(net - np.nan_to_num(cap, posinf=0.0), 0.0), 0.0)
    return out + float(problem.dt_h * cw @ over)


def energy_excess_kwh(
    problem: DispatchProblem, net_kw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how far ``net_kw`` leaves its energy band: ``(short, over)`` (kWh, >= 0)."""
    c, bot, top = energy_rows(problem)
    x = c @ np.asarray(net_kw, dtype=float)
    return np.maximum(x - top, 0.0), np.maximum(bot - x, 0.0)


def settle(problem: DispatchProblem, row: DrEventRow, net_kw: np.ndarray) -> tuple[bool, float]:
    """``(effective, compensation_cny)`` the settlement would give ``row``'s event if the
    park did ``net_kw`` on the horizon (:func:`vpp.park.dr_rules.money`; + is income).

    The whole event counts: what was metered so far, the plan on the horizon (a followed
    event at most its aim + tol: more is the reserve of a window not begun, dropped when it
    opens) and, after the horizon, delivery at the band's middle when followed, none when
    not."""
    net = np.asarray(net_kw, dtype=float)
    hours = row.hours
    if row.cap_kw is not None:
        mine = np.asarray(row.owned, dtype=bool)
        over_kw = np.maximum(net - row.cap_kw, 0.0)[mine]
        over = row.e_over_cap_kwh + float(over_kw[over_kw > CAP_TOL_KW].sum() * problem.dt_h)
        ok = row.e_over_cap_kwh <= 0 and not (over_kw > CAP_TOL_KW).any()
        got = row.delivered_kwh + delivered_kwh(problem, row, net)
        parts = dr_rules.money(got, row.requested_kwh, hours, row.band, row.terms, ok, over)
    else:
        beyond = row.aim_frac * row.requested_beyond_kwh if row.follow else 0.0
        ahead = delivered_kwh(problem, row, net)
        if row.follow:  # beyond aim + tol is a reserve for a window not begun (DrEventRow)
            ahead = min(ahead, row.e_aim_kwh + row.tol_kwh)
        got = row.delivered_kwh + ahead + beyond
        ok = dr_rules.in_band(got, row.requested_kwh, row.band)
        parts = dr_rules.money(got, row.requested_kwh, hours, row.band, row.terms, ok)
    return ok, parts[3] + parts[4] - parts[5]


def value_cny(problem: DispatchProblem, row: DrEventRow, net_kw: np.ndarray) -> float:
    """What ``row``'s event is worth to a plan ``net_kw`` when choosing whether to follow it
    (CNY, + income). A followed event: the settlement on the plan (:func:`settle`). An event
    not followed earns no subsidy whatever its plan delivers (a plan that gave the event up
    and lands in the band anyway is luck, not a plan), and pays the non-performance penalty
    on its shortfall, as the LP prices it (:func:`penalty_rows`, :func:`cap_penalty`)."""
    if row.follow:
        return settle(problem, row, net_kw)[1]
    one = replace(problem, dr_rows=(row,))
    return -dr_penalty_cny(one, net_kw)


def without(problem: DispatchProblem, event_ids: set[str]) -> DispatchProblem:
    """``problem`` for a plan that does not follow the events ``event_ids``: their corridor
    and energy rows off, their subsidy not credited, their penalty priced."""
    if not event_ids:
        return problem
    dr_max, dr_min = problem.dr_max().copy(), problem.dr_min().copy()
    credit = problem.dr_credit_cny_per_kwh
    credit = np.zeros(problem.n) if credit is None else np.asarray(credit, dtype=float).copy()
    rows = []
    for row in problem.dr_rows:
        if row.event_id in event_ids:
            mine = np.asarray(row.owned, dtype=bool)
            dr_max[mine], dr_min[mine], credit[mine] = np.inf, -np.inf, 0.0
            row = replace(row, follow=False)
        rows.append(row)
    return replace(
        problem,
        dr_import_max_kw=dr_max,
        dr_import_min_kw=dr_min,
        dr_credit_cny_per_kwh=credit,
        dr_rows=tuple(rows),
    )


def without_reserve(problem: DispatchProblem) -> DispatchProblem:
    """``problem`` with the reserves of windows not begun taken out (the rows' tops back at
    aim + tol): the plans that decide whether to follow an event are made on it."""
    if not any(r.reserve_kw is not None for r in problem.dr_rows):
        return problem
    rows = []
    for row in problem.dr_rows:
        if row.reserve_kw is not None:
            held = float(np.sum(row.reserve_kw)) * problem.dt_h
            row = replace(row, e_max_kwh=row.e_max_kwh - held, reserve_kw=None)
        rows.append(row)
    return replace(problem, dr_rows=tuple(rows))


def reserve_limits(problem: DispatchProblem) -> tuple[np.ndarray, np.ndarray]:
    """``(max, min)``: the import limits with the reserve of the followed events' windows not
    begun (kW; the cap of peak shaving lowered, the floor of valley filling raised by the
    reserve), infinite elsewhere. Soft at :data:`RESERVE_CNY_PER_KWH`."""
    hi, lo = np.full(problem.n, np.inf), np.full(problem.n, -np.inf)
    cap, floor = problem.dr_max(), problem.dr_min()
    for row in problem.dr_rows:
        if not row.follow or row.reserve_kw is None:
            continue
        rsv = np.asarray(row.reserve_kw, dtype=float)
        mine = np.asarray(row.owned, dtype=bool) & (rsv > 0)
        if row.sign > 0:
            hi[mine] = (cap - rsv)[mine]
        else:
            lo[mine] = (floor + rsv)[mine]
    return hi, lo


def _tracked_owned(problem: DispatchProblem) -> np.ndarray:
    """Where a followed event settled on energy owns the interval."""
    out = np.zeros(problem.n, dtype=bool)
    for row in problem.dr_rows:
        if row.follow and row.cap_kw is None:
            out |= np.asarray(row.owned, dtype=bool)
    return out


def credit_cny_per_kwh(problem: DispatchProblem) -> np.ndarray:
    """The linear DR credit the objective applies (CNY per kWh below the baseline): the
    problem's, but nothing on the intervals of followed events settled on energy. Those
    are paid all or nothing, which the middle of their band is surest to earn: a credit
    per kWh would push every plan to its row's top, a systematic bias towards the band's
    edge; their subsidy is credited at the aim instead (:func:`revenue_at_aim_cny`)."""
    c = problem.dr_credit_cny_per_kwh
    credit = np.zeros(problem.n) if c is None else np.asarray(c, dtype=float).copy()
    credit[_tracked_owned(problem)] = 0.0
    return credit


def revenue_at_aim_cny(problem: DispatchProblem) -> float:
    """The subsidy the followed events settled on energy earn at their aim (CNY)."""
    out = 0.0
    for row in problem.dr_rows:
        if not row.follow or row.cap_kw is not None or row.requested_kwh <= 0:
            continue
        beyond = row.aim_frac * row.requested_beyond_kwh
        got = row.delivered_kwh + row.e_aim_kwh + beyond
        ok = dr_rules.in_band(got, row.requested_kwh, row.band)
        parts = dr_rules.money(got, row.requested_kwh, row.hours, row.band, row.terms, ok)
        out += parts[3] + parts[4]
    return out


def dr_revenue_cny(problem: DispatchProblem, net_kw: np.ndarray) -> float:
    """DR revenue the objective credits a plan (CNY, + income; its ``dr_revenue`` term is
    minus this): the linear credit (:func:`credit_cny_per_kwh`) and the subsidy at aim."""
    resp = baseline_kw(problem) - np.asarray(net_kw, dtype=float)
    linear = float(problem.dt_h * credit_cny_per_kwh(problem) @ resp)
    return linear + revenue_at_aim_cny(problem)


def as_followed(problem: DispatchProblem, result: DispatchResult) -> DispatchProblem:
    """``problem`` as ``result``'s plan treats it: without the events it decided not to
    follow (:attr:`DispatchResult.dr_decisions`), so that its limits are the plan's own."""
    dropped = {k for k, d in result.dr_decisions.items() if not d.followed}
    return without(problem, dropped & {r.event_id for r in problem.dr_rows if r.follow})
