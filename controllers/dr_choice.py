"""Follow a called DR event or not: the cheaper plan, valued as the settlement pays.

A DR response is all or nothing: inside its band the event is paid its subsidy on the whole
delivery, below it the subsidy is lost and the non-performance penalty is due on the
shortfall. A penalty weight on the DR rows cannot say that; it made the plan charge empty
batteries at full power in the critical-peak tier just before a short-notice window, and
set a new month peak, for a call that paid less than the demand charge it cost. So the
choice is made explicitly, per event (pure computation around a solve function):

1. the plan that follows every event is solved (the DR rows held, their weights making the
   plan follow whenever it physically can);
2. for each event with compensation terms (one without any is followed at least cost: there
   is nothing to weigh), the plan that does not follow it
   (:func:`controllers.dr_rows.without`: its rows off, no subsidy, its non-performance
   penalty priced in the LP, term ``dr_penalty``);
3. each plan is valued as energy + demand charge (on the projected month peak, as the
   objective does) + everything else the objective prices in money - the DR compensation:
   for a followed event what the settlement would pay on the plan
   (:func:`controllers.dr_rows.settle`, the settlement's own rule
   :func:`vpp.park.dr_rules.money`), for one not followed no subsidy (a plan that gave the
   event up and lands in its band anyway is luck: counting it would prefer plans on the
   band's edge) and its non-performance penalty. The linear DR terms of the LP, its
   penalty weights and the price of using a forecast-error margin (:data:`NOT_MONEY`) are
   left out; the margin a plan uses is named in the decision. An event is followed unless
   not following it is cheaper.

Decisions carry over between cycles (the controller keeps the last): a choice changes only
when the other wins by :data:`HYSTERESIS_FRAC` (hysteresis), and an event the plan followed
whose window has begun is kept unless giving it up saves more than :data:`COMMIT_FACTOR`
times what it earns (commitment: a response given up half way is paid nothing and leaves
the utility short).

Contract types: a confirmed event, pre-agreed or an invitation the park confirmed, is
followed at least cost: following it, or not following it and paying its non-performance
penalty, whichever the plan's figures say costs less (the contract's penalty is what makes
following worth it). An invitation not yet answered is judged the same way with no penalty,
declining being free (:mod:`vpp.sim.dr_calls` confirms it only when it pays). A *binding*
event (``DrEventRow.binding``: a command the park acknowledged, such as an IEC 104 set-point
it confirmed with a positive ACT_CON inside the flexibility it published) is never weighed:
the park promised it, so the plan follows it whatever it costs.

The reserve a window not begun is planned with (:func:`vpp.plan.dr_targets.dr_targets`) is a
margin for a worse forecast, not part of what following costs: the plans that decide are made
without it (:func:`controllers.dr_rows.without_reserve`), the plan applied keeps it.

Extra solves happen only in cycles with an open event on the horizon: one per event, one
more while a reserve is held, one more when a plan without some events must be made again
(they reuse the built model: the variants change Parameter values only). Every decision is in the
result's ``dr_decisions`` and messages: ``DR <id>: following costs X CNY in demand charge
and Y CNY in energy and the rest, earns Z CNY; followed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from controllers import dr_rows
from controllers.problem import TERMS, DispatchProblem, DispatchResult, DrDecision, DrEventRow

# Not money: slack weights, the LP's DR proxies, and the price of using a forecast-error
# margin (the network rows', the converters', the batteries' reserves). A margin is the
# plan's hedge inside a limit that stays hard in both plans, priced high (500 CNY/kWh on a
# network row) so the plan uses it only to serve what would otherwise give way. Counted as
# money it made the manufacturing DR week's pre-agreed evening call (seed 0) "cost"
# 61,000-490,000 CNY (120-980 kWh of network margin at 500 CNY/kWh) against 300 CNY of
# subsidy and 200-330 CNY of energy: not followed from 16:30 on, the batteries were not kept
# for it and it delivered 15 % of its request; weighed on money, 65 %. The margin a plan
# uses is named in its decision.
NOT_MONEY = ("penalties", "dr_revenue", "dr_penalty", "margin_shortfall", "grid_friendly")
EPS_CNY = 1e-6
# Hysteresis: a decision taken in an earlier cycle is changed only when the other choice wins
# by this share of the larger of the two figures (or HYSTERESIS_CNY, whichever is more). Near
# a tie the forecasts' cycle-to-cycle wobble flipped the demo's afternoon call between
# "followed" and "not followed" every few cycles; each flip moved the battery the other way.
HYSTERESIS_FRAC = 0.1
HYSTERESIS_CNY = 5.0
# Commitment: an event the plan followed whose window has begun (the interval decided now is
# one of its own, or part of it is metered) is kept unless giving it up saves more than this
# many times what it earns (and COMMIT_CNY). Re-weighed every cycle like any other, the
# manufacturing week's short-notice call was followed at 15:45, given up at 16:00 for a
# demand-charge estimate that moved with one interval's load, taken up again at 16:15 and
# given up at 16:30: the battery discharged for price in between and the call ended at
# 345 % of its request, outside its band, for nothing. A utility needs a firm response.
COMMIT_FACTOR = 10.0
COMMIT_CNY = 100.0


def money_cny(result: DispatchResult) -> float:
    """What the plan costs in money but DR compensation (CNY)."""
    return float(sum(result.terms_cny.get(t, 0.0) for t in TERMS if t not in NOT_MONEY))


def compensation_cny(problem: DispatchProblem, result: DispatchResult) -> dict[str, float]:
    """Per event, what it is worth to the plan (CNY, + income; :func:`dr_rows.value_cny`):
    a followed event's settlement on the plan, an event not followed its penalty only."""
    return {
        row.event_id: dr_rows.value_cny(problem, row, result.p_net_kw) for row in problem.dr_rows
    }


def _has_terms(row: DrEventRow) -> bool:
    t = row.terms
    return max(t.subsidy_cny_per_kwh, t.subsidy_cny_per_kw, t.nonperformance_cny_per_kwh) > 0


def open_rows(problem: DispatchProblem) -> list[DrEventRow]:
    """The events the plan may choose not to follow: those with compensation terms to weigh
    (an event without any is followed at least cost: there is nothing to weigh), and not
    binding (a command the park acknowledged is followed whatever it costs)."""
    return [r for r in problem.dr_rows if r.follow and not r.binding and _has_terms(r)]


def _unweighed(row: DrEventRow) -> str:
    if row.binding:
        return (
            f"DR {row.event_id}: binding (a command the park acknowledged): followed "
            "whatever it costs, not weighed"
        )
    return f"DR {row.event_id}: no compensation terms to weigh: followed at least cost"


def dispatch(
    solve: Callable[[DispatchProblem], DispatchResult],
    problem: DispatchProblem,
    before: dict[str, bool] | None = None,
) -> DispatchResult:
    """The cheaper plan of following each open DR event or not (see the module doc);
    ``before``: per event id, what an earlier cycle decided (kept unless the other choice
    wins by the hysteresis margin, :data:`HYSTERESIS_FRAC`)."""
    before = before or {}
    if not problem.dr_rows:
        return solve(problem)
    follow = solve(problem)
    candidates = open_rows(problem)
    weighed = {r.event_id for r in candidates}
    decisions = {
        r.event_id: DrDecision(r.event_id, True, weighed=False, says=_unweighed(r))
        for r in problem.dr_rows
        if r.follow and r.event_id not in weighed
    }
    if not follow.ok or not candidates:
        return _attach(follow, problem, decisions)
    t0 = time.perf_counter()
    # The choice is made on plans without the reserves of windows not begun (a margin for
    # a worse forecast, not part of what following costs); the plan applied keeps them.
    base_p = dr_rows.without_reserve(problem)
    judge = follow if base_p is problem else solve(base_p)
    solves = len(candidates) + (base_p is not problem)
    if not judge.ok:
        judge, base_p = follow, problem
    dropped: dict[str, tuple[DispatchProblem, DispatchResult]] = {}
    for row in candidates:
        decisions[row.event_id], alt = _weigh(solve, base_p, judge, row, before.get(row.event_id))
        if alt is not None:
            dropped[row.event_id] = alt
    chosen, chosen_p = follow, problem
    if len(dropped) == 1 and base_p is problem:
        chosen_p, chosen = next(iter(dropped.values()))
    elif dropped:  # the plan without them, with the reserves of the events still followed
        chosen_p = dr_rows.without(problem, set(dropped))
        chosen = solve(chosen_p)
        solves += 1
        if not chosen.ok:  # keep the plan that follows
            chosen, chosen_p = follow, problem
            for k in dropped:
                decisions[k] = _kept(decisions[k], "the plan without them failed")
    chosen.timings_s["dr_choice_s"] = time.perf_counter() - t0
    chosen.timings_s["dr_choice_solves"] = float(solves)
    return _attach(chosen, chosen_p, decisions)


def _weigh(
    solve: Callable[[DispatchProblem], DispatchResult],
    problem: DispatchProblem,
    follow: DispatchResult,
    row: DrEventRow,
    before: bool | None = None,
) -> tuple[DrDecision, tuple[DispatchProblem, DispatchResult] | None]:
    """The decision on ``row``'s event: ``follow`` (the plan following every event) against
    the plan without it; that plan and its problem when it is the cheaper, else None.
    ``before``: the earlier cycles' decision, which the other choice must beat by the
    hysteresis margin."""
    alt_p = dr_rows.without(problem, {row.event_id})
    try:
        alt = solve(alt_p)
    except RuntimeError as exc:  # the solver failed on the variant: follow, say why
        return _kept(row, f"the plan without it failed ({exc})"), None
    if not alt.ok:
        return _kept(row, f"the plan without it is {alt.status}"), None
    extra = money_cny(follow) - money_cny(alt)
    earns = sum(compensation_cny(problem, follow).values())
    earns -= sum(compensation_cny(alt_p, alt).values())
    demand = follow.terms_cny.get("demand_charge", 0.0) - alt.terms_cny.get("demand_charge", 0.0)
    followed = earns >= extra - EPS_CNY * max(1.0, abs(extra))
    held = ""
    begun = bool(len(row.owned) and row.owned[0]) or abs(row.delivered_kwh) > 1e-9
    if before and begun and not followed:
        limit = max(COMMIT_FACTOR * abs(earns), COMMIT_CNY)
        if extra - earns <= limit:
            followed = True
            held = (
                f" (committed: its window has begun and the plan follows it; giving it up "
                f"would save {extra - earns:,.0f} CNY, under {limit:,.0f} CNY)"
            )
    elif before is not None and followed != before:
        margin = max(HYSTERESIS_FRAC * max(abs(earns), abs(extra)), HYSTERESIS_CNY)
        if abs(earns - extra) < margin:
            followed = before
            held = (
                f" (kept from earlier cycles: the other choice wins by less than {margin:,.0f} CNY)"
            )
    margin = follow.terms_cny.get("margin_shortfall", 0.0) - alt.terms_cny.get(
        "margin_shortfall", 0.0
    )
    says = _says(row, demand, extra, earns, followed) + held + _margin_note(margin)
    decision = DrDecision(row.event_id, followed, extra, earns, True, says)
    return decision, None if followed else (alt_p, alt)


def _kept(row: DrEventRow | DrDecision, why: str) -> DrDecision:
    return DrDecision(row.event_id, True, weighed=False, says=f"DR {row.event_id}: followed: {why}")


def _says(row: DrEventRow, demand: float, extra: float, earns: float, followed: bool) -> str:
    verdict = (
        "followed" if followed else f"not followed: it does not pay ({extra - earns:,.0f} CNY)"
    )
    return (
        f"DR {row.event_id}: following costs {demand:+,.0f} CNY in demand charge and "
        f"{extra - demand:+,.0f} CNY in energy and the rest, earns {earns:,.0f} CNY "
        f"(subsidy if effective, less the penalty not following would pay); {verdict}"
    )


def _margin_note(margin_cny: float) -> str:
    """What following does to the forecast-error margins (priced, not money: see
    :data:`NOT_MONEY`), when it moves them by a CNY or more."""
    if abs(margin_cny) < 1.0:
        return ""
    more = "uses more" if margin_cny > 0 else "uses less"
    return (
        f"; following {more} of the forecast-error margins (priced {abs(margin_cny):,.0f} "
        f"CNY, a hedge inside the limits, not counted as money)"
    )


def _attach(
    result: DispatchResult, problem: DispatchProblem, decisions: dict[str, DrDecision]
) -> DispatchResult:
    """``result`` with the decisions (each with the settlement's verdict on the plan) and
    the events' notes in its messages."""
    for row in problem.dr_rows:
        d = decisions.get(row.event_id)
        if d is None:
            continue
        eff = dr_rows.settle(problem, row, result.p_net_kw)[0]
        says = d.says
        if not d.followed and eff:
            says += "; the cheaper plan is effective all the same"
        decisions[row.event_id] = replace(d, effective=eff, says=says)
    notes = [r.note for r in problem.dr_rows if r.note]
    says = [d.says for d in decisions.values() if d.says]
    messages = [*result.messages, *notes, *says]
    return replace(result, messages=messages, dr_decisions={**result.dr_decisions, **decisions})
