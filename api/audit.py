"""Every API write (any method but GET/HEAD/OPTIONS) goes to the audit log with the name of
the key that made it, its status code, and its path, whether it succeeded or not.

A pure ASGI middleware: reads pass straight through at no cost."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from vpp.store import repo

log = logging.getLogger(__name__)
READS = {"GET", "HEAD", "OPTIONS"}


class AuditMiddleware:
    def __init__(self, app, engine: Engine):
        self.app, self.engine = app, engine

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, status["code"])

    def _record(self, scope, code: int) -> None:
        p = (scope.get("state") or {}).get("principal")
        name, role = (p.name, p.role.value) if p else ("anonymous", "none")
        detail = (scope.get("state") or {}).get("audit_detail")
        try:
            with self.engine.begin() as conn:
                path = scope["path"].replace("\x00", "\\x00")[:300]  # PostgreSQL: no NUL
                repo.audit(conn, name, role, scope["method"], path, code, detail)
        except Exception:
            log.exception("could not write the audit log for %s %s", scope["method"], scope["path"])
