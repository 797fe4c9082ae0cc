"""The HTTP API of the controller service: ``create_app(settings, runtime)``.

OpenAPI at ``/docs``; resources under ``/api/v1``; ``/health`` and ``/metrics`` at the top.
The app holds no state of its own beyond what it is given: the runtime (park, plan, cycles,
database engine, metrics) and the settings.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from api.audit import AuditMiddleware
from api.auth import KeyChecker
from api.docs import install_docs
from api.input_guard import BodyGuard, validation_error_handler
from api.routes import dr, ops, prices, reads, status, ui_data
from api.store_errors import STORE_ERRORS, store_error_handler
from api.times import response_class
from api.ui import install_ui
from vpp.runtime.service import Runtime
from vpp.runtime.settings import Settings

DESCRIPTION = """
park-vpp: the controller of a park's virtual power plant.

Authenticate with an API key: `Authorization: Bearer <key>` (or `X-API-Key: <key>`).
Roles: **viewer** reads; **operator** also ingests telemetry, confirms or declines DR events
and asks for a cycle; **utility** reads and creates, updates and cancels DR events; **admin**
does everything, including keys and runtime settings. A missing or unknown key gets 401, a
key whose role may not do it gets 403. After a few failed keys from one client or on one key
id, 429 with `Retry-After` (doubling, up to 5 min). Signs: load convention, + is consumption
or charging. Times: ISO 8601 with the offset, in the park's zone, in every response (any
offset is accepted in a request).
"""


def create_app(settings: Settings, runtime: Runtime) -> FastAPI:
    json_response = response_class(runtime.site.location.tz)
    app = FastAPI(
        default_response_class=json_response,  # times in the park's zone, with offset
        title="park-vpp",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
        openapi_tags=[
            {"name": "status", "description": "liveness, readiness, metrics"},
            {"name": "site", "description": "the park, its plan, setpoints and forecasts"},
            {"name": "demand response", "description": "DR events for utilities"},
            {"name": "prices", "description": "price and emission-factor series (market)"},
            {"name": "operations", "description": "telemetry, cycles, keys, settings"},
        ],
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.json_response = json_response
    app.state.keys = KeyChecker(
        runtime.engine, metrics=runtime.metrics, recheck_s=settings.key_recheck_s
    )
    app.include_router(status.router)
    for module in (reads, dr, prices, ops, ui_data):
        app.include_router(module.router, prefix="/api/v1")
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for store_error in STORE_ERRORS:  # 503 JSON with Retry-After: nothing stored, retry
        app.add_exception_handler(store_error, store_error_handler)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)  # 413, non-finite 422
    app.add_middleware(RejectNul)
    app.add_middleware(  # outermost: audits the 422 of a key that verifies
        AuditMiddleware, engine=runtime.engine, keys=app.state.keys, metrics=runtime.metrics
    )
    install_docs(app)
    install_ui(app)  # the operator's page at /
    return app


class RejectNul:
    """A NUL character (0x00) in the path or the query gets a 422 naming it: PostgreSQL
    cannot store or compare text holding one (a 500 before this), and no name here has one.
    Pure ASGI: nothing else is touched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _has_nul(scope):
            await self.app(scope, receive, send)
            return
        loc = "path" if "\x00" in scope["path"] else "query"
        body = json.dumps(
            {"detail": [{"loc": [loc], "msg": "NUL character (0x00) not allowed", "type": "nul"}]}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _has_nul(scope) -> bool:
    return "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
