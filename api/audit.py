"""Every API write (any method but GET/HEAD/OPTIONS) made with a verified key goes to the
audit log with the key's name, its status code, and its path, whether it succeeded or not.

A write refused before any key was verified (no key, a wrong, revoked or rate-limited key,
or a body or path refused before authentication with a key that does not verify) is not
written: anyone could grow the database one row per request. It is counted in
``vpp_unattributed_writes`` by status code instead. A write refused before authentication
(413, a NUL 422, 404) with a key that verifies is audited under that key's name.

A pure ASGI middleware: reads pass straight through at no cost."""

from __future__ import annotations

import logging

from sqlalchemy import Engine
from starlette.datastructures import Headers

from api.auth import KeyChecker, Principal, client_of, key_in
from api.auth_limits import RateLimitedError
from vpp.store import repo

log = logging.getLogger(__name__)
READS = {"GET", "HEAD", "OPTIONS"}
AUTH_REFUSALS = {401, 429}  # the key was tried and refused already


class AuditMiddleware:
    """Audit log rows for attributable writes, a counter for the others.

    Parameters
    ----------
    app : ASGI app
        The app it wraps.
    engine : Engine
        The database holding ``audit_log``.
    keys : KeyChecker, optional
        Identifies the key of a write refused before authentication; without it such a
        write is counted, not audited.
    metrics : Metrics, optional
        Where unattributed writes are counted.
    """

    def __init__(self, app, engine: Engine, keys: KeyChecker | None = None, metrics=None):
        self.app, self.engine, self.keys, self.metrics = app, engine, keys, metrics

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
            p = (scope.get("state") or {}).get("principal")
            if p is None and status["code"] not in AUTH_REFUSALS:
                p = await self._identify(scope)
            if p is None:
                if self.metrics is not None:
                    self.metrics.unattributed_writes.labels(str(status["code"])).inc()
            else:
                self._record(scope, p, status["code"])

    async def _identify(self, scope) -> Principal | None:
        """The principal of the key a request refused before authentication presented."""
        key = key_in(Headers(scope=scope))
        if self.keys is None or key is None:
            return None
        try:
            return await self.keys.authenticate(key, client_of(scope))
        except RateLimitedError:
            return None
        except Exception:
            log.exception("could not identify the key of %s %s", scope["method"], scope["path"])
            return None

    def _record(self, scope, p: Principal, code: int) -> None:
        detail = (scope.get("state") or {}).get("audit_detail")
        try:
            with self.engine.begin() as conn:
                path = scope["path"].replace("\x00", "\\x00")[:300]  # PostgreSQL: no NUL
                repo.audit(conn, p.name, p.role.value, scope["method"], path, code, detail)
        except Exception:
            log.exception("could not write the audit log for %s %s", scope["method"], scope["path"])
