"""``/health`` (ok, degraded or failing, with the reasons) and ``/metrics`` (Prometheus);
no key needed. The checks are :func:`vpp.runtime.health.assess`."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from vpp.runtime.health import FAILING, WriteProbe, assess

router = APIRouter(tags=["status"])
log = logging.getLogger(__name__)


def _probe(request: Request) -> WriteProbe:
    """The app's write probe (one per app, its answer cached a few seconds)."""
    state = request.app.state
    probe = getattr(state, "write_probe", None)
    if probe is None:
        probe = state.write_probe = WriteProbe(state.runtime.engine)
    return probe


@router.get("/health", summary="ok, degraded or failing, with the reasons")
def health(request: Request) -> JSONResponse:
    """``status``: ``ok``; ``degraded`` (200: it runs, ``reasons`` say what to look at:
    a late cycle or a fallback, the last cycle failed, the planner process down, driver or
    settlement errors in the last intervals, assets held for stale telemetry, DR events
    skipped, days of the horizon outside the tariff or the calendar); ``failing`` (503:
    the database unreachable or not writable, shutting down, no cycle yet, the last cycle
    more than two intervals old). ``ready`` is true unless failing; ``live`` whenever the
    process answers. ``problems`` lists the reasons' texts."""
    h = assess(request.app.state.runtime, _probe(request))
    return request.app.state.json_response(h.body, status_code=503 if h.status == FAILING else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    rt = request.app.state.runtime
    try:
        assess(rt, _probe(request))  # the health gauges, as /health would answer now
    except Exception:  # the scrape still gets every other series
        log.exception("health gauges not refreshed")
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE_LATEST)
