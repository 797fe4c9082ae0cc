"""A store that cannot answer or write (SQLAlchemy ``DBAPIError`` or the driver's own
``DatabaseError``: unreachable, read-only, disk full, a lock time-out) gets a 503 with a
JSON error and ``Retry-After``: the caller knows its request was not stored and retries,
never a plain-text 500 and never a silent loss. The request is logged with the error (the
audit log may be unwritable too).

A constraint or data error would fail again on retry: a JSON 409 (``IntegrityError``, a
conflict with what is stored) or 422 (``DataError``: a value the column cannot hold), no
``Retry-After``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30
READS = {"GET", "HEAD", "OPTIONS"}
# SQLAlchemy's, and the drivers' own (the bulk telemetry paths call the DB-API directly).
STORE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, sqlite3.DatabaseError)
with contextlib.suppress(ImportError):  # a SQLite-only install
    import psycopg

    STORE_ERRORS += (psycopg.DatabaseError,)


def _is(exc: Exception, name: str) -> bool:
    """``exc`` (or the driver error SQLAlchemy wraps) is a DB-API ``name`` error."""
    for e in (exc, getattr(exc, "orig", None)):
        if e is not None and any(c.__name__ == name for c in type(e).__mro__):
            return True
    return False


async def store_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The JSON answer to a store error (:data:`STORE_ERRORS`) raised by a route."""
    write = request.method not in READS
    why = f"{type(getattr(exc, 'orig', None) or exc).__name__}: {exc}".splitlines()[0][:300]
    log.error(
        "store error on %s %s (%s): %s",
        request.method,
        request.url.path,
        "not stored" if write else "not read",
        why,
    )
    if _is(exc, "IntegrityError") or _is(exc, "DataError"):  # the same request fails again
        code = 409 if _is(exc, "IntegrityError") else 422
        body = {"error": "store_refused", "stored": False if write else None, "detail": why}
        return JSONResponse(body, status_code=code)
    body = {
        "error": "store_unavailable",
        "stored": False if write else None,
        "retry_after_s": RETRY_AFTER_S,
        "detail": (
            "the database cannot take this write now; nothing was stored: retry"
            if write
            else "the database cannot answer now: retry"
        ),
        "cause": why,
    }
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
