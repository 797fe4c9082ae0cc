"""Demand response: a utility (or aggregator) creates, updates and cancels events; the park
(operator) confirms or declines. Every change asks the runtime for a re-solve at once (queued
right after a running cycle) and waits up to ``VPP_DR_RESPONSE_WAIT_S`` for it: the response's
``plan`` names the plan that follows the change (``planned``) or says it is ``pending``, and
``expected_delivery`` is that plan's.

Lifecycle: announced -> confirmed | declined; confirmed -> active (window starts) ->
completed (window ends); announced | confirmed | active -> cancelled. The plan honours
confirmed and active events only. A pre-agreed contract is confirmed on receipt; an invitation
is confirmed on receipt when the park's ``dr_policy`` says so (``always``, or
``when_covered`` and the flexibility covers it), else it awaits an operator until its confirm
deadline (then the runtime declines it). ``next_step`` says which, for every event.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from api.auth import Perm, Principal, require
from api.schemas import DrDecision, DrEventIn, DrEventOut, DrEventPatch, DrNextStep, DrPlanAfter
from vpp.accounting import dr_contract
from vpp.park import dr_checks
from vpp.park.model import DrContractType, DrStatus
from vpp.store import repo
from vpp.store.codec import dr_from_json

router = APIRouter(tags=["demand response"])
Reader = Annotated[Principal, Depends(require(Perm.READ))]
Utility = Annotated[Principal, Depends(require(Perm.DR_WRITE))]
Operator = Annotated[Principal, Depends(require(Perm.OPERATE))]
OPEN = {DrStatus.ANNOUNCED.value, DrStatus.CONFIRMED.value, DrStatus.ACTIVE.value}


def _out(
    row: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
    settled: dict[str, Any] | None = None,
    now: datetime | None = None,
    plan: DrPlanAfter | None = None,
) -> DrEventOut:
    return DrEventOut(
        event_id=row["event_id"],
        status=row["status"],
        version=row["version"],
        fields=row["body"],
        next_step=_next_step(row, now) if now is not None else None,
        plan=plan,
        expected_delivery=row["expected"],
        delivery=_delivery(settled, row["expected"]) if settled else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=[
            {"at": h["at"].isoformat(), "status": h["status"], "by": h["actor"], "note": h["note"]}
            for h in history or []
        ],
    )


def _next_step(row: dict[str, Any], now: datetime) -> DrNextStep | None:
    """What happens next to a stored event (None for a body that cannot be read)."""
    b = row["body"]
    try:
        windows = [
            (datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"]))
            for w in b["windows"]
        ]
        deadline = b.get("confirm_deadline")
        step = dr_contract.next_step(
            row["status"],
            b.get("contract_type") or DrContractType.INVITATION.value,
            datetime.fromisoformat(deadline) if deadline else None,
            min(w[0] for w in windows),
            max(w[1] for w in windows),
            now,
        )
    except (KeyError, TypeError, ValueError):
        return None
    return DrNextStep(**step)


def _delivery(s: dict[str, Any], expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored settlement as the API shows it. ``delivery_ratio`` is null when nothing was
    requested; ``compliance`` is set for a cap-only event; ``owned`` marks the intervals
    counted for this event (``shared_with``: the stricter events that took the others);
    ``baseline_note`` says when the plan's expected delivery used another baseline."""
    keys = (
        "delivered_kwh", "requested_kwh", "delivery_ratio", "effective", "baseline_method",
        "baseline_days", "baseline_kwh", "realised_kwh", "intervals", "intervals_metered",
        "step_minutes", "baseline_kw", "realised_kw",
    )  # fmt: skip
    out = {k: s[k] for k in keys}
    if out["delivery_ratio"] is not None:
        out["delivery_ratio"] = round(out["delivery_ratio"], 4)
    for k in ("delivered_kwh", "requested_kwh", "baseline_kwh", "realised_kwh"):
        out[k] = round(out[k], 3)
    out["window_start"] = s["window_start"].isoformat()
    out["settled_at"] = s["settled_at"].isoformat()
    out["owned"] = s.get("owned")
    out["shared_with"] = s.get("shared_with") or []
    out["compliance"] = None
    if s.get("cap_kw") is not None:
        out["compliance"] = {
            "cap_kw": s["cap_kw"],
            "intervals_over_cap": s["intervals_over_cap"],
            "e_over_cap_kwh": round(s["e_over_cap_kwh"], 3),
            "compliant_frac": s["compliant_frac"],
        }
    comp = s.get("compensation")
    out["compensation_cny"] = None if comp is None else round(s["compensation_cny"], 2)
    out["compensation"] = comp
    planned = (expected or {}).get("baseline_method")
    out["baseline_note"] = None
    if planned and planned != s["baseline_method"]:
        out["baseline_note"] = (
            f"settled against {s['baseline_method']}; the plan's expected delivery used "
            f"{planned}: the two figures are on different baselines"
        )
    return out


def _get(conn, event_id: str) -> dict[str, Any]:
    row = repo.get_dr(conn, event_id)
    if row is None:
        raise HTTPException(404, f"no DR event {event_id!r}; see GET /api/v1/dr-events")
    return row


def _resolve(request: Request, reason: str, before: int | None) -> DrPlanAfter:
    """Ask for the re-solve a change needs and wait for it (``dr_response_wait_s``); the plan
    that follows (``before``: the plan version in force before the change)."""
    rt = request.app.state.runtime
    t0 = time.monotonic()
    done = False
    try:
        ticket = rt.request_resolve(reason)
        done = rt.wait_resolved(ticket, rt.settings.dr_response_wait_s)
    except Exception as exc:  # the event is stored; the next boundary plans with it
        detail = getattr(request.state, "audit_detail", None) or {}
        request.state.audit_detail = {**detail, "resolve_error": f"{type(exc).__name__}: {exc}"}
    cur = rt.current
    version = cur.version if cur is not None else None
    planned = done and version is not None and version != before
    return DrPlanAfter(
        state="planned" if planned else "pending",
        version=version,
        cycle_id=cur.cycle_id if cur is not None else None,
        previous_version=before,
        waited_s=round(time.monotonic() - t0, 3),
    )


def _version(rt) -> int | None:
    return rt.current.version if rt.current is not None else None


def _fresh(request: Request, event_id: str, plan: DrPlanAfter | None = None) -> DrEventOut:
    rt = request.app.state.runtime
    with rt.engine.connect() as conn:
        row = _get(conn, event_id)
        return _out(
            row,
            repo.dr_history(conn, event_id),
            repo.settlement_of(conn, event_id),
            rt.clock.now(),
            plan,
        )


@router.post("/dr-events", status_code=201, summary="create a DR event (utility)")
def create(request: Request, body: DrEventIn, who: Utility) -> DrEventOut:
    """201 with ``next_step`` (awaiting confirmation until the deadline, or in force) and
    ``plan`` (the plan that follows, or pending). A pre-agreed event is confirmed on receipt;
    an invitation when the park's ``dr_policy`` confirms it (the note is in ``history``)."""
    rt = request.app.state.runtime
    fields = body.model_dump(mode="json")
    fields.setdefault("announce_time", None)
    fields["announce_time"] = fields["announce_time"] or rt.clock.now().isoformat()
    check_event(rt, fields)
    status, note = _on_receipt(rt, body, fields)
    request.state.audit_detail = {"event_id": body.event_id, "status": status.value}
    before = _version(rt)
    try:
        with rt.engine.begin() as conn:
            repo.insert_dr(conn, body.event_id, status.value, fields, who.name)
            if status is DrStatus.CONFIRMED:
                pre = body.contract_type is DrContractType.PRE_AGREED
                repo.log_dr(
                    conn, body.event_id, status.value, who.name if pre else "dr_policy", note
                )
    except IntegrityError:
        raise HTTPException(
            409, f"DR event {body.event_id!r} exists; update it with PATCH"
        ) from None
    plan = _resolve(request, "dr_event", before)
    return _fresh(request, body.event_id, plan)


def _on_receipt(rt, body: DrEventIn, fields: dict[str, Any]) -> tuple[DrStatus, str]:
    """The status a new event is stored with, and why: pre-agreed -> confirmed; an
    invitation -> what the park's ``dr_policy`` says (on the current plan's envelope)."""
    if body.contract_type is DrContractType.PRE_AGREED:
        return DrStatus.CONFIRMED, "pre-agreed: confirmed"
    event = dr_from_json({**fields, "status": DrStatus.ANNOUNCED.value})
    cur = rt.current
    ok, note = dr_contract.auto_confirm(
        rt.site.dr_policy, event, cur.problem if cur else None, cur.plan if cur else None
    )
    return (DrStatus.CONFIRMED if ok else DrStatus.ANNOUNCED), note


@router.get("/dr-events", summary="list DR events")
def list_events(
    request: Request,
    _: Reader,
    status: Annotated[DrStatus | None, Query()] = None,
) -> list[DrEventOut]:
    with request.app.state.runtime.engine.connect() as conn:
        rows = repo.list_dr(conn, status.value if status else None)
        ids = [r["event_id"] for r in rows]
        settled = {s["event_id"]: s for s in repo.settlements(conn, ids, limit=len(ids))}
    now = request.app.state.runtime.clock.now()
    return [_out(r, settled=settled.get(r["event_id"]), now=now) for r in rows]


@router.get("/dr-events/{event_id}", summary="one DR event with its lifecycle and delivery")
def get_event(request: Request, event_id: str, _: Reader) -> DrEventOut:
    return _fresh(request, event_id)


@router.patch("/dr-events/{event_id}", summary="update an open DR event (utility)")
def patch(request: Request, event_id: str, body: DrEventPatch, who: Utility) -> DrEventOut:
    rt = request.app.state.runtime
    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        raise HTTPException(422, "nothing to change: send at least one field")
    before = _version(rt)
    with rt.engine.begin() as conn:
        row = _get(conn, event_id)
        if row["status"] not in OPEN:
            raise HTTPException(409, f"DR event {event_id!r} is {row['status']}; it is closed")
        fields = {**row["body"], **changes}
        _still_valid(rt, fields)
        repo.update_dr(
            conn, event_id, row["status"], fields, who.name, f"updated {sorted(changes)}"
        )
    request.state.audit_detail = {"event_id": event_id, "changed": sorted(changes)}
    plan = _resolve(request, "dr_event", before)
    return _fresh(request, event_id, plan)


def _still_valid(rt, fields: dict[str, Any]) -> None:
    """The event after a patch must still be a valid event (e.g. floor <= cap)."""
    try:
        DrEventIn.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None
    check_event(rt, fields)


_API_NAMES = {"min_duration": "min_duration_minutes"}  # the model's names -> the body's


def check_event(rt, fields: dict[str, Any]) -> None:
    """The park's checks of a DR event (:mod:`vpp.park.dr_checks`, as for the park file and
    a scenario file), with the window range around the service's clock
    (``dr_window_past_days`` / ``dr_window_ahead_days``). Raises a 422 naming every field,
    its bound and the value."""
    event = dr_from_json({**fields, "status": DrStatus.ANNOUNCED.value})
    problems = dr_checks.event_problems(
        event, dr_checks.DrPark.of(rt.site), rt.settings.dr_bounds(), rt.clock.now()
    )
    if problems:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", *[_API_NAMES.get(str(x), x) for x in p.parts()]],
                    "msg": f"{p.message}, got {dr_checks.show(p.value)}",
                    "type": "dr_bound",
                }
                for p in problems
            ]
        )


def _transition(request, event_id, who, allowed: set[str], new: DrStatus, note: str):
    rt = request.app.state.runtime
    before = _version(rt)
    with rt.engine.begin() as conn:
        row = _get(conn, event_id)
        if row["status"] not in allowed:
            raise HTTPException(
                409, f"DR event {event_id!r} is {row['status']}; cannot become {new.value}"
            )
        deadline = row["body"].get("confirm_deadline")
        if (
            new is DrStatus.CONFIRMED
            and deadline
            and datetime.fromisoformat(deadline) < rt.clock.now()
        ):
            raise HTTPException(409, f"the confirm deadline {deadline} has passed")
        repo.update_dr(conn, event_id, new.value, row["body"], who.name, note)
    request.state.audit_detail = {"event_id": event_id, "status": new.value}
    plan = _resolve(request, "dr_event", before)
    return _fresh(request, event_id, plan)


@router.post("/dr-events/{event_id}/cancel", summary="cancel a DR event (utility)")
def cancel(request: Request, event_id: str, who: Utility) -> DrEventOut:
    return _transition(request, event_id, who, OPEN, DrStatus.CANCELLED, "cancelled")


@router.post("/dr-events/{event_id}/confirm", summary="the park confirms (operator)")
def confirm(
    request: Request, event_id: str, who: Operator, body: DrDecision | None = None
) -> DrEventOut:
    note = (body.note if body else "") or "confirmed"
    return _transition(request, event_id, who, {"announced"}, DrStatus.CONFIRMED, note)


@router.post("/dr-events/{event_id}/decline", summary="the park declines (operator)")
def decline(
    request: Request, event_id: str, who: Operator, body: DrDecision | None = None
) -> DrEventOut:
    note = (body.note if body else "") or "declined"
    return _transition(request, event_id, who, {"announced"}, DrStatus.DECLINED, note)
