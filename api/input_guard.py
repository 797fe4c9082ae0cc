"""What the API refuses before a route sees it, and how a refusal reads.

:class:`BodyGuard` (pure ASGI): a body larger than ``max_bytes`` gets a 413, known from
``Content-Length`` before anything is read, or counted chunk by chunk as a chunked body
streams (never more than the limit plus one chunk is held); a JSON body holding a non-finite
number (``NaN``, ``Infinity``, or a literal beyond the float range such as ``1e309``, which
Python's parser reads as infinity) gets a 422 naming each field, whatever the route, before
it could reach a model or a database.

:func:`validation_error_handler`: a 422's ``input`` echoes are cut to
:data:`INPUT_PREFIX_CHARS` characters (every name in the API is at most 100 characters, so
an identifier is quoted whole, while a 10 MB field comes back as 100 characters and a note
of its length), containers too; at most :data:`MAX_ERRORS` errors are listed; a non-finite
number is quoted as text (JSON cannot carry it: it was a 500 before).
"""

from __future__ import annotations

import json
import math
from email.message import Message
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

INPUT_PREFIX_CHARS = 100
MSG_MAX_CHARS = 500  # a message quoting a value is cut too
MAX_ERRORS = 50  # then one entry saying how many more
READS = {"GET", "HEAD", "OPTIONS"}


class BodyGuard:
    """413 for a body over ``max_bytes``; 422 for a JSON body holding a non-finite number.

    Parameters
    ----------
    app : ASGI app
        The app behind.
    max_bytes : int
        The largest body accepted (bytes), the setting ``max_body_bytes``.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large(send, self.max_bytes, declared)
            return
        if scope["method"] in READS:  # no route reads a body: nothing is buffered
            await self.app(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _too_large(send, self.max_bytes, None)
                return
        bad = _non_finite(bytes(body)) if _is_json(scope) else []
        if bad:
            await _respond(send, 422, {"detail": bad})
            return
        await self.app(scope, _Replay(bytes(body), receive), send)


class _Replay:
    """A receive that gives the buffered body once, then what the client sends next."""

    def __init__(self, body: bytes, receive):
        self.body, self.receive = body, receive

    async def __call__(self):
        if self.body is None:
            return await self.receive()
        body, self.body = self.body, None
        return {"type": "http.request", "body": body, "more_body": False}


def _content_length(scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None  # counted as it streams instead
    return None


def _is_json(scope) -> bool:
    """Whether FastAPI would parse the body as JSON: no content type, or a JSON one."""
    value = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), None)
    if value is None:
        return True
    m = Message()
    m["content-type"] = value.decode("latin-1")
    sub = m.get_content_subtype()
    return m.get_content_maintype() == "application" and (sub == "json" or sub.endswith("+json"))


def _non_finite(body: bytes) -> list[dict[str, Any]]:
    """422 error entries for every non-finite number in the JSON ``body`` (at most
    :data:`MAX_ERRORS`); empty when there is none or the body is not JSON (the route's own
    parser then answers)."""
    if not body.strip():
        return []
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return []
    out: list[dict[str, Any]] = []
    stack: list[tuple[list[Any], Any]] = [(["body"], doc)]
    while stack and len(out) < MAX_ERRORS:
        loc, v = stack.pop()
        if isinstance(v, dict):
            stack.extend(([*loc, k], x) for k, x in reversed(v.items()))
        elif isinstance(v, list):
            stack.extend(([*loc, i], x) for i, x in reversed(list(enumerate(v))))
        elif isinstance(v, float) and not math.isfinite(v):
            out.append(
                {
                    "loc": loc,
                    "msg": f"{'.'.join(map(str, loc[1:]))}: expected a finite number, got "
                    f"{_float_text(v)} "
                    "(NaN, Infinity and literals beyond +-1.8e308 are refused)",
                    "type": "finite_number",
                    "input": _float_text(v),
                }
            )
    return out


async def _too_large(send, max_bytes: int, declared: int | None) -> None:
    got = f"Content-Length {declared}" if declared is not None else "a longer chunked body"
    detail = (
        f"request body: at most {max_bytes} bytes (setting max_body_bytes, "
        f"VPP_MAX_BODY_BYTES), got {got}"
    )
    await _respond(send, 413, {"detail": detail})


async def _respond(send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread rest of the body is not wanted
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------
# 422 bodies
# ------------------------------------------------------------------------------------------
async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 with every ``input`` cut to a prefix and at most ``MAX_ERRORS`` errors."""
    errors = list(exc.errors())
    shown = [shorten_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        shown.append(
            {
                "loc": ["body"],
                "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
                "type": "too_many_errors",
            }
        )
    return JSONResponse(status_code=422, content={"detail": shown})


def shorten_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error, safe to send: JSON-encodable, its ``input`` a short prefix."""
    out = {k: _safe(v) for k, v in error.items() if k not in ("input", "url")}
    if isinstance(out.get("msg"), str) and len(out["msg"]) > MSG_MAX_CHARS:
        out["msg"] = out["msg"][:MSG_MAX_CHARS] + "..."
    if "input" in error:
        out["input"] = short_input(error["input"])
    return out


def short_input(v: Any) -> Any:
    """``v`` as sent back in a 422: itself when short, else the first
    :data:`INPUT_PREFIX_CHARS` characters of its text and a note that it was cut."""
    if isinstance(v, bytes):
        v = v[: 4 * INPUT_PREFIX_CHARS].decode("utf-8", errors="replace")
    if isinstance(v, str):
        if len(v) <= INPUT_PREFIX_CHARS:
            return v
        return f"{v[:INPUT_PREFIX_CHARS]}... (cut from {len(v)} characters)"
    safe = _safe(v)
    if not isinstance(safe, dict | list):
        return safe
    text = json.dumps(safe, separators=(",", ":"))
    return safe if len(text) <= INPUT_PREFIX_CHARS else f"{text[:INPUT_PREFIX_CHARS]}... (cut)"


def _safe(v: Any, depth: int = 0) -> Any:
    """``v`` made JSON-encodable and bounded: non-finite floats and bytes as text, strings
    and containers cut (enough for :func:`short_input` to cut further), others as text."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else _float_text(v)
    if isinstance(v, int):
        return v if abs(v) < 2**63 else "an integer beyond 64 bits"
    if isinstance(v, bytes):
        v = v[: 4 * INPUT_PREFIX_CHARS].decode("utf-8", errors="replace")
    if isinstance(v, str):
        return v[: 4 * INPUT_PREFIX_CHARS]
    if isinstance(v, dict | list | tuple) and depth > 5:
        return "..."
    if isinstance(v, dict):
        items = list(v.items())[:INPUT_PREFIX_CHARS]
        return {str(k)[:INPUT_PREFIX_CHARS]: _safe(x, depth + 1) for k, x in items}
    if isinstance(v, list | tuple):
        return [_safe(x, depth + 1) for x in list(v)[:INPUT_PREFIX_CHARS]]
    text = v.isoformat() if hasattr(v, "isoformat") else str(v)  # a time, an exception
    return text[:MSG_MAX_CHARS]


def _float_text(v: float) -> str:
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
