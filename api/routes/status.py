"""``/health`` (liveness and readiness) and ``/metrics`` (Prometheus); no key needed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from vpp.park.coverage import calendar_problem, tariff_problem
from vpp.store import repo
from vpp.store.db import ping

router = APIRouter(tags=["status"])


@router.get("/health", summary="liveness and readiness")
def health(request: Request) -> JSONResponse:
    """200 when the database answers and the last cycle is recent and fine; 503 otherwise,
    with the reason. ``live`` is true whenever the process answers. Stored DR events the
    cycle skips (they fail the park's checks) make it degraded and are listed, and so do
    days of the planned horizon outside the tariff's validity or the holiday calendar."""
    rt = request.app.state.runtime
    db_error = ping(rt.engine)
    last = None
    if db_error is None:
        with rt.engine.connect() as conn:
            last = repo.last_cycle(conn)
    interval_s = rt.clock.real_seconds(timedelta(minutes=rt.site.dispatch.step_minutes))
    body: dict = {
        "live": True,
        "database": "ok" if db_error is None else f"unreachable: {db_error}",
        "last_cycle": None,
        "closing": rt.closing,
        "last_error": rt.last_error,
    }
    ready = db_error is None and not rt.closing
    problems = [] if db_error is None else ["database unreachable"]
    if last is not None:
        age_s = (datetime.now(UTC) - last["finished_at"]).total_seconds()
        body["last_cycle"] = {
            "id": last["id"],
            "at": last["at"].isoformat(),
            "age_s": round(age_s, 1),
            "controller": last["controller"],
            "status": last["solver_status"],
            "fallback": last["fallback"],
        }
        if age_s > 2 * interval_s + 120:
            problems.append(f"last cycle is {age_s:.0f} s old (interval {interval_s:.0f} s)")
        if last["fallback"]:
            problems.append(f"last cycle used the {last['fallback']} fallback")
    else:
        problems.append("no cycle has run yet")
        ready = False
    skipped = dict(getattr(rt, "skipped_dr_events", {}))
    body["dr_events_skipped"] = skipped
    problems += [
        f"DR event {k} is skipped (not planned, not settled): {v}" for k, v in skipped.items()
    ]
    days = _days_uncovered(rt)
    body["days_uncovered"] = days
    problems += days
    body["ready"] = ready and not any(p.startswith("last cycle is") for p in problems)
    body["status"] = "ok" if not problems else ("degraded" if body["ready"] else "not ready")
    body["problems"] = problems
    body["checked_at"] = time.time()
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


def _days_uncovered(rt) -> list[str]:
    """The tariff's validity or the holiday calendar ends inside the horizon the service
    plans now: it goes on planning (a service runs for months), and says so here."""
    zone = ZoneInfo(rt.site.location.tz)
    now = rt.clock.now().astimezone(zone)
    d = rt.site.dispatch
    last = now + timedelta(minutes=d.step_minutes * d.horizon_steps)
    found = (
        tariff_problem(rt.site, now.date(), last.date()),
        calendar_problem(rt.site, now.date(), last.date()),
    )
    return [x for x in found if x is not None]


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
