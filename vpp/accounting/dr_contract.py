"""DR contract semantics in the open: what happens next to an event, and whether the park's
auto-confirm policy (``dr_policy`` in the park file) confirms an invitation on receipt.

Pure computation. The dispatch honours confirmed and active events only
(:data:`vpp.plan.dr_targets.DR_ACTIVE`); an announced invitation changes nothing until it is
confirmed (by an operator, or by the policy), and the runtime declines it once its confirm
deadline passes. :func:`next_step` says this for one event; :func:`coverage` says whether
the current plan's flexibility envelope (:func:`vpp.accounting.flexibility.envelope`) can
hold the request; :func:`auto_confirm` applies the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult
from vpp.accounting.flexibility import envelope, uncontrolled_net_kw
from vpp.park.model import (
    DemandResponseEvent,
    DrAutoConfirm,
    DrContractType,
    DrDirection,
    DrPolicy,
    DrStatus,
)

AWAITING = "awaiting_confirmation"
IN_FORCE = "in_force"
CLOSED = "closed"


@dataclass(frozen=True)
class Coverage:
    """Whether the envelope holds the request in every window interval.

    ``worst_margin_kw``: the smallest margin over the window's intervals in the horizon
    (kW; negative = short by that much), None when no interval is in the horizon.
    """

    covered: bool
    reason: str
    worst_margin_kw: float | None = None


def coverage(
    event: DemandResponseEvent,
    problem: DispatchProblem,
    plan: DispatchResult,
    margin_frac: float = 0.0,
) -> Coverage:
    """Whether the plan's flexibility can hold ``event`` in every interval of its windows.

    Parameters
    ----------
    event : the DR event (a cap on import, or a change of ``target_kw`` against the baseline).
    problem, plan : the current plan's problem and result (the envelope and the baseline the
        plan's DR limits use; the uncontrolled forecast when the problem has none).
    margin_frac : the envelope must hold the request plus this fraction of it (0-1).

    Returns
    -------
    Coverage
        Not covered when part of a window lies outside the horizon (it cannot be judged).
    """
    times = problem.horizon.times()
    mask = np.array([any(w.start <= t < w.end for w in event.windows) for t in times])
    dt_s = problem.dt_h * 3600.0
    needed = sum(round((w.end - w.start).total_seconds() / dt_s) for w in event.windows)
    if int(mask.sum()) < needed:
        return Coverage(
            False,
            f"only {int(mask.sum())} of the window's {needed} intervals are in the plan's "
            f"horizon (to {problem.horizon.end.isoformat()}): coverage cannot be judged",
        )
    env = envelope(problem, plan)
    if problem.dr_baseline_kw is not None:
        base = np.asarray(problem.dr_baseline_kw, dtype=float)
    else:
        base = uncontrolled_net_kw(problem)
    shaving = event.direction is DrDirection.PEAK_SHAVING
    if shaving and event.import_cap_kw is not None:
        need = f"import at most {event.import_cap_kw:g} kW"
        margin = event.import_cap_kw * (1.0 - margin_frac) - env.p_import_min_kw
    elif shaving:
        need = f"a reduction of {event.target_kw * (1 + margin_frac):g} kW"
        margin = base - env.p_import_min_kw - event.target_kw * (1.0 + margin_frac)
    else:
        need = f"an increase of {event.target_kw * (1 + margin_frac):g} kW"
        margin = env.p_import_max_kw - base - event.target_kw * (1.0 + margin_frac)
    margin = margin[mask]
    k = int(np.argmin(margin))
    worst = float(margin[k])
    at = times[np.flatnonzero(mask)[k]].isoformat(timespec="minutes")
    if worst >= -1e-6:
        return Coverage(True, f"the envelope holds {need} in every window interval", worst)
    return Coverage(
        False, f"the envelope cannot hold {need} at {at}: short by {-worst:.1f} kW", worst
    )


def auto_confirm(
    policy: DrPolicy,
    event: DemandResponseEvent,
    problem: DispatchProblem | None,
    plan: DispatchResult | None,
) -> tuple[bool, str]:
    """Whether ``policy`` confirms the invitation ``event`` on receipt, and the note for its
    history (why, or why it is left for an operator)."""
    if policy.auto_confirm is DrAutoConfirm.ALWAYS:
        return True, "auto-confirmed: dr_policy.auto_confirm is always"
    if policy.auto_confirm is DrAutoConfirm.NEVER:
        return False, "announced: awaiting an operator's confirmation (dr_policy: never)"
    if problem is None or plan is None:
        return False, (
            "announced: dr_policy when_covered could not judge coverage (no plan with its "
            "problem yet); awaiting an operator's confirmation"
        )
    c = coverage(event, problem, plan, policy.margin_frac)
    if c.covered:
        return True, f"auto-confirmed (dr_policy when_covered): {c.reason}"
    return False, f"announced: not auto-confirmed (dr_policy when_covered): {c.reason}"


def next_step(
    status: DrStatus | str,
    contract_type: DrContractType | str,
    confirm_deadline: datetime | None,
    window_start: datetime,
    window_end: datetime,
    now: datetime,
) -> dict:
    """What happens next to an event, for the API: ``state`` (``awaiting_confirmation``,
    ``in_force`` or ``closed``), ``honoured_by_plan`` (whether the dispatch plans for it),
    ``until`` (ISO time the state lasts to at most: the confirm deadline, or the window's
    end), ``action`` (what a person must do, if anything) and ``says`` (one sentence)."""
    status = DrStatus(status)
    if status is DrStatus.ANNOUNCED:
        until = confirm_deadline or window_end
        if confirm_deadline is not None:
            tail = f"unconfirmed at {confirm_deadline.isoformat()} it is declined"
        else:
            tail = "it has no confirm deadline: it can be confirmed until its window ends"
        late = " (the deadline has passed; the next cycle declines it)" if now > until else ""
        return {
            "state": AWAITING,
            "honoured_by_plan": False,
            "until": until.isoformat(),
            "action": "an operator confirms (POST .../confirm) or declines (POST .../decline)",
            "says": (
                f"invitation: the plan does not honour it until it is confirmed; {tail}{late}"
            ),
        }
    if status in (DrStatus.CONFIRMED, DrStatus.ACTIVE):
        how = "pre-agreed" if DrContractType(contract_type) is DrContractType.PRE_AGREED else ""
        when = (
            f"in its window now, until {window_end.isoformat()}"
            if status is DrStatus.ACTIVE or now >= window_start
            else f"from {window_start.isoformat()} to {window_end.isoformat()}"
        )
        return {
            "state": IN_FORCE,
            "honoured_by_plan": True,
            "until": window_end.isoformat(),
            "action": None,
            "says": f"{how + ', ' if how else ''}in force: the plan honours it {when}; "
            "settled on the park meter after the window",
        }
    return {
        "state": CLOSED,
        "honoured_by_plan": False,
        "until": None,
        "action": None,
        "says": f"{status.value}: the plan no longer plans for it"
        + ("; settled on the park meter" if status is DrStatus.COMPLETED else ""),
    }
