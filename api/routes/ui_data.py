"""Read resources the operator's page needs that the others do not give (role viewer or
above, as every read): who the key is (``/me``), the park now against its plan and limits
(``/now``), the network's loading per element (``/network``), the month to date
(``/month-to-date``), and a stream of server-sent events that says when a cycle has stored a
new plan (``/updates``).

Each document is computed once per plan version and newest park-meter reading
(:class:`api.ui.figures.UiFigures`) and its JSON encoded once, times in the park's zone, so
a page polling between cycles costs a look-up.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import StreamingResponse

from api.auth import GRANTS, Perm, Principal, client_of, presented_key, require
from api.schemas import MeOut, MonthToDateOut, NetworkOut, NowOut
from api.ui.figures import UiFigures

router = APIRouter(tags=["site"])
Reader = Annotated[Principal, Depends(require(Perm.READ))]

STREAM_POLL_S = 0.2  # how often a stream looks for a new plan (in memory)
STREAM_KEEPALIVE_S = 15.0
STREAM_RECHECK_S = 5.0  # the key is checked again this often (a revoked key ends it)
# A stream ends after this and the page reconnects at once: a server shutting down waits
# for open responses, so no page holds it longer than this.
STREAM_MAX_S = 10.0


def figures(request: Request) -> UiFigures:
    state = request.app.state
    figs = getattr(state, "ui_figures", None)
    if figs is None:
        figs = state.ui_figures = UiFigures(state.runtime)
    return figs


def _encoded(request: Request, name: str, doc: Any) -> Response:
    return Response(figures(request).body(name, doc), media_type="application/json")


def _doc_responses(model) -> dict:
    return {200: {"model": model, "content": {"application/json": {}}}}


@router.get("/me", summary="the key's name, role and what it may do")
def me(request: Request, who: Reader) -> MeOut:
    """What the page shows and offers follows this: ``may`` lists the permissions of the
    key's role (read; operate: confirm or decline DR events, telemetry, cycles; dr_write;
    admin: keys and settings). The API checks every call itself."""
    figures(request).start_grid()  # the Network view's model, built while the page loads
    rt = request.app.state.runtime
    return MeOut(
        name=who.name,
        role=who.role.value,
        may=sorted(p.value for p in GRANTS[who.role]),
        park=rt.site.name,
        tz=rt.site.location.tz,
        step_minutes=rt.site.dispatch.step_minutes,
        now=rt.clock.now().astimezone(ZoneInfo(rt.site.location.tz)),
        clock_speed=float(getattr(rt.clock, "speed", 1.0)),
    )


@router.get(
    "/now",
    summary="the park now: import measured and planned, limits, storage, PV, EV",
    response_model=NowOut,
    response_class=Response,
    responses=_doc_responses(NowOut),
)
def now(request: Request, _: Reader) -> Response:
    """The past day per interval: the park meter (``p_net_kw``, + import), PV generation and
    EV charging (sums of their readings), the batteries' state of charge, against what the
    plan in force for each interval intended (``plan_p_net_kw``, and the DR cap and floor it
    held); the plan ahead (``plan``: import, PV, EV, state of charge, the import limit after
    headroom, DR cap and floor, the month's peak so far); each battery's latest reading and
    its plan; stale and held assets."""
    return _encoded(request, "now", figures(request).now())


@router.get(
    "/network",
    summary="each transformer's and line's loading and each bus voltage, realised and planned",
    response_model=NetworkOut,
    response_class=Response,
    responses=_doc_responses(NetworkOut),
)
def network(request: Request, _: Reader) -> Response:
    """Realised: an AC power flow of what each bus drew in every interval of the past day
    (from the stored readings of each asset; ``realised_at`` is the latest interval with a
    park-meter reading). Planned: the same flow of the plan in force over its horizon.
    ``binding`` names the limits that bind (within 5 % of a rating, 0.005 pu of the voltage
    band, 1 kW of the connection limit or a DR cap or floor) or are broken. 503 while the
    network model is being built."""
    doc = figures(request).network()
    if doc is None:
        raise HTTPException(503, "the network model is being built; retry in a few seconds")
    return _encoded(request, "network", doc)


@router.get(
    "/month-to-date",
    summary="energy cost, demand charge and its peak, DR compensation, CO2 and coal this month",
    response_model=MonthToDateOut,
    response_class=Response,
    responses=_doc_responses(MonthToDateOut),
)
def month_to_date(request: Request, _: Reader) -> Response:
    """From the park meter's stored readings, the first of the month (park time) to now:
    energy cost at the tariff, the demand charge on the month's peak so far (and when it
    was), DR compensation of the events settled this month, CO2 and standard coal (both
    methods) against the park's targets. Every figure is measured."""
    return _encoded(request, "month", figures(request).month_to_date())


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _plan_event(rt) -> dict[str, Any] | None:
    cur = rt.current
    if cur is None:
        return None
    return {
        "cycle_id": cur.cycle_id,
        "plan_version": cur.version,
        "at": cur.at.astimezone(ZoneInfo(rt.site.location.tz)).isoformat(),
        "fallback": cur.fallback,
        "status": cur.status,
    }


# Not in the OpenAPI document: an event stream is not a request/response operation (the
# docs' "try it out" and schema-driven clients would hang on it for STREAM_MAX_S).
@router.get("/updates", response_class=StreamingResponse, include_in_schema=False)
async def updates(request: Request, _: Reader) -> StreamingResponse:
    """``text/event-stream``: an ``event: cycle`` with ``{cycle_id, plan_version, at,
    fallback, status}`` at once and whenever a cycle stores a new plan (within 0.2 s), a
    comment every 15 s. The key is checked again every 5 s (a revoked key ends the stream
    with ``event: revoked``). A stream ends after 10 s (``event: bye``): reconnect (the
    ``retry`` field says after how long). Read it with ``fetch`` to send the key as a
    header (``EventSource`` cannot)."""
    rt = request.app.state.runtime
    checker = request.app.state.keys
    key = presented_key(request) or ""
    client = client_of(request.scope)

    async def stream():
        yield "retry: 500\n\n"
        last = None
        t_start = t_beat = t_check = time.monotonic()
        while not rt.closing:
            now_s = time.monotonic()
            doc = _plan_event(rt)
            stamp = (doc["cycle_id"], doc["plan_version"]) if doc else None
            if stamp != last:
                last = stamp
                yield _event("cycle", doc or {})
                t_beat = now_s
            if now_s - t_start > STREAM_MAX_S:
                yield _event("bye", {})
                return
            if now_s - t_beat > STREAM_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                t_beat = now_s
            if now_s - t_check > STREAM_RECHECK_S:
                t_check = now_s
                try:
                    who = await checker.authenticate(key, client)
                except Exception:
                    who = None
                if who is None:
                    yield _event("revoked", {})
                    return
            if await request.is_disconnected():
                return
            await asyncio.sleep(STREAM_POLL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
