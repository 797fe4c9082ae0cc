"""The API's input guard as pure ASGI (:mod:`api.input_guard`): a body over the limit is a 413
without being read (Content-Length) or read no further than the limit (chunked); a non-finite
number anywhere in a JSON body is a 422 naming the field; a 422 quotes a short prefix."""

from __future__ import annotations

import asyncio
import json

from api.input_guard import (
    INPUT_PREFIX_CHARS,
    BodyGuard,
    short_input,
    shorten_error,
)

LIMIT = 1024


class _Inner:
    """The app behind the guard: records the body it read."""

    def __init__(self):
        self.body = None

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.body = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(headers, receive, method="POST"):
    inner, sent = _Inner(), []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/x", "headers": headers}
    asyncio.run(BodyGuard(inner, LIMIT)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, inner


def _stream(chunk: bytes, n: int | None, read: list[int]):
    """A receive giving ``chunk`` ``n`` times (None: for ever), counting bytes read."""

    async def receive():
        read.append(len(chunk))
        more = n is None or len(read) < n
        return {"type": "http.request", "body": chunk, "more_body": more}

    return receive


def test_a_declared_length_over_the_limit_is_a_413_before_reading():
    async def receive():
        raise AssertionError("the body was read")

    status, body, inner = _call([(b"content-length", str(LIMIT + 1).encode())], receive)
    assert status == 413 and inner.body is None
    assert f"at most {LIMIT} bytes" in json.loads(body)["detail"]
    assert "max_body_bytes" in json.loads(body)["detail"]


def test_a_chunked_body_is_read_no_further_than_the_limit():
    read: list[int] = []
    status, _, inner = _call([], _stream(b"x" * 100, None, read))  # an endless body
    assert status == 413 and inner.body is None
    assert LIMIT < sum(read) <= LIMIT + 100


def test_a_body_within_the_limit_reaches_the_app_whole():
    read: list[int] = []
    status, _, inner = _call([(b"content-type", b"text/plain")], _stream(b"y" * 100, 10, read))
    assert status == 200 and inner.body == b"y" * 1000


def test_a_non_finite_number_anywhere_is_a_422_naming_the_field():
    for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e400"):
        doc = b'{"a": {"b": [1, 2, %s]}, "c": 1}' % raw
        status, body, inner = _call([], _stream(doc, 1, []))
        assert status == 422 and inner.body is None, raw
        (err,) = json.loads(body)["detail"]
        assert err["loc"] == ["body", "a", "b", 2] and err["type"] == "finite_number"
        assert err["msg"].startswith("a.b.2: expected a finite number")
    ok = b'{"a": 1e308, "t": "NaN"}'  # the largest finite float; NaN as text is a string
    assert _call([(b"content-type", b"application/json")], _stream(ok, 1, []))[0] == 200


def test_a_422_quotes_a_short_prefix_of_any_input():
    long = "x" * 1_000_000
    got = short_input(long)
    assert got.startswith("x" * INPUT_PREFIX_CHARS) and len(got) < INPUT_PREFIX_CHARS + 40
    assert "1000000 characters" in got
    assert short_input("B02-bess") == "B02-bess"
    assert short_input({"a": [1, 2]}) == {"a": [1, 2]}
    assert len(short_input({"readings": [{"asset": long}] * 1000})) < INPUT_PREFIX_CHARS + 20
    assert short_input(float("nan")) == "NaN" and short_input(float("-inf")) == "-Infinity"
    err = shorten_error({"loc": ("body", "p"), "msg": "m" * 10_000, "type": "t", "input": 1e400})
    assert len(err["msg"]) <= 510 and err["input"] == "Infinity"
    json.dumps(err, allow_nan=False)  # JSON can carry it
