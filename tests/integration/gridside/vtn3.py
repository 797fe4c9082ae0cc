# ruff: noqa: N815 (the field names are the OpenADR 3 schema's)
"""A small OpenADR 3 VTN for the tests (no Python VTN exists to test against), built from
the 3.0.1 OpenAPI schema (``oadr3.0.1.yaml``: ``program``, ``event``, ``interval``,
``intervalPeriod``, ``valuesMap``, ``report``, ``/auth/token``): programs, events with
intervals and payloads, reports; the VTN provisions ``id``, ``createdDateTime``,
``modificationDateTime`` and ``objectType``; a bearer token from client credentials is
required on every call. Subscriptions (``subscription``, ``objectOperation``,
``notification``): ``POST``/``GET``/``DELETE /subscriptions``; creating, updating or
deleting an event POSTs a notification to the callback URL of every subscription of its
program that asks for that operation on EVENT, with the subscription's bearer token (in
order, from one sender thread). ``Vtn3(subscriptions=False)``: a VTN without them (404).
Served by uvicorn on port 0 in a thread."""

from __future__ import annotations

import itertools
import queue
import re
import secrets
import threading
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ID = r"^[a-zA-Z0-9_-]*$"
DURATION = (
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def _duration(v: str) -> str:
    # The schema's own pattern (its look-ahead is beyond pydantic's regex engine).
    if not re.match(DURATION, v):
        raise ValueError(f"not an ISO 8601 duration: {v!r}")
    return v


Duration = Annotated[str, AfterValidator(_duration)]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalPeriod(_M):
    start: datetime
    duration: Duration | None = "PT0S"
    randomizeStart: Duration | None = None


class ValuesMap(_M):
    type: str = Field(min_length=1, max_length=128)
    values: list[float | int | str | bool | dict]


class Interval(_M):
    id: int
    intervalPeriod: IntervalPeriod | None = None
    payloads: list[ValuesMap]


class EventPayloadDescriptor(_M):
    objectType: Literal["EVENT_PAYLOAD_DESCRIPTOR"] | None = None
    payloadType: str = Field(min_length=1, max_length=128)
    units: str | None = None
    currency: str | None = None


class ReportPayloadDescriptor(_M):
    objectType: Literal["REPORT_PAYLOAD_DESCRIPTOR"] | None = None
    payloadType: str = Field(min_length=1, max_length=128)
    readingType: str | None = None
    units: str | None = None
    accuracy: float | None = None
    confidence: int | None = Field(None, ge=0, le=100)


class _Object(_M):
    id: str | None = Field(None, pattern=ID, min_length=1, max_length=128)
    createdDateTime: datetime | None = None
    modificationDateTime: datetime | None = None


class Program(_Object):
    objectType: Literal["PROGRAM"] | None = None
    programName: str = Field(min_length=1, max_length=128)
    programLongName: str | None = None
    intervalPeriod: IntervalPeriod | None = None
    payloadDescriptors: list[EventPayloadDescriptor] | None = None


class Event(_Object):
    objectType: Literal["EVENT"] | None = None
    programID: str = Field(pattern=ID, min_length=1, max_length=128)
    eventName: str | None = None
    priority: int | None = Field(None, ge=0)
    payloadDescriptors: list[EventPayloadDescriptor] | None = None
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class ReportResource(_M):
    resourceName: str = Field(min_length=1, max_length=128)
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class Report(_Object):
    objectType: Literal["REPORT"] | None = None
    programID: str = Field(pattern=ID, min_length=1, max_length=128)
    eventID: str = Field(pattern=ID, min_length=1, max_length=128)
    clientName: str = Field(min_length=1, max_length=128)
    reportName: str | None = None
    payloadDescriptors: list[ReportPayloadDescriptor] | None = None
    resources: list[ReportResource]


OBJECT_TYPES = Literal["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"]
OPERATIONS = Literal["GET", "POST", "PUT", "DELETE"]


class ObjectOperation(_M):
    objects: list[OBJECT_TYPES] = Field(min_length=1)
    operations: list[OPERATIONS] = Field(min_length=1)
    callbackUrl: str = Field(pattern=r"^https?://")
    bearerToken: str | None = None


class Subscription(_Object):
    objectType: Literal["SUBSCRIPTION"] | None = None
    clientName: str = Field(min_length=1, max_length=128)
    programID: str = Field(pattern=ID, min_length=1, max_length=128)
    objectOperations: list[ObjectOperation] = Field(min_length=1)
    targets: list[ValuesMap] | None = None


class Vtn3:
    """The VTN's state and its HTTP server."""

    def __init__(
        self, client_id: str = "ven-1", client_secret: str = "s3cret", subscriptions: bool = True
    ):
        self.client_id, self.client_secret = client_id, client_secret
        self.with_subscriptions = subscriptions
        self.subscriptions: dict[str, dict] = {}
        self.subscription_posts = 0
        self.notified: list[tuple[str, str, str, int | str]] = []  # url, op, event id, status
        self._outbox: queue.Queue[tuple[dict, dict] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self.tokens: set[str] = set()
        self.programs: dict[str, dict] = {}
        self.events: dict[str, dict] = {}
        self.reports: list[dict] = []
        self.gets = 0
        self._ids = itertools.count(1)
        self.cond = threading.Condition()
        self.app = self._app()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    # --- HTTP ---------------------------------------------------------------------------
    def _app(self) -> FastAPI:
        app = FastAPI(title="test OpenADR 3 VTN")

        def bearer(authorization: str = Header("")) -> None:
            token = authorization.removeprefix("Bearer ")
            if token not in self.tokens:
                raise HTTPException(403, "Forbidden: no valid bearer token")

        @app.post("/auth/token")
        async def token(request: Request) -> dict[str, Any]:
            # application/x-www-form-urlencoded (RFC 6749), read without python-multipart
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            grant_type, client_id = form.get("grant_type"), form.get("client_id")
            client_secret = form.get("client_secret")
            if grant_type != "client_credentials":
                raise HTTPException(400, {"error": "unsupported_grant_type"})
            if (client_id, client_secret) != (self.client_id, self.client_secret):
                raise HTTPException(401, {"error": "invalid_client"})
            t = secrets.token_hex(8)
            self.tokens.add(t)
            return {"access_token": t, "token_type": "Bearer", "expires_in": 3600}

        @app.get("/programs", dependencies=[Depends(bearer)])
        def programs() -> list[dict]:
            return list(self.programs.values())

        @app.get("/events", dependencies=[Depends(bearer)])
        def events(programID: str | None = None) -> list[dict]:
            with self.cond:
                self.gets += 1
                self.cond.notify_all()
            return [e for e in self.events.values() if programID in (None, e["programID"])]

        @app.post("/reports", status_code=201, dependencies=[Depends(bearer)])
        def report(body: Report) -> dict:
            obj = self._provision(body.model_dump(mode="json", exclude_none=True), "REPORT")
            with self.cond:
                self.reports.append(obj)
                self.cond.notify_all()
            return obj

        if self.with_subscriptions:
            self._subscription_routes(app, bearer)
        return app

    def _subscription_routes(self, app: FastAPI, bearer) -> None:
        @app.post("/subscriptions", status_code=201, dependencies=[Depends(bearer)])
        def subscribe(body: Subscription) -> dict:
            obj = self._provision(body.model_dump(mode="json", exclude_none=True), "SUBSCRIPTION")
            with self.cond:
                self.subscription_posts += 1
                self.subscriptions[obj["id"]] = obj
                self.cond.notify_all()
            return obj

        @app.get("/subscriptions", dependencies=[Depends(bearer)])
        def subscriptions(programID: str | None = None, clientName: str | None = None) -> list:
            return [
                s
                for s in self.subscriptions.values()
                if programID in (None, s["programID"]) and clientName in (None, s["clientName"])
            ]

        @app.get("/subscriptions/{sid}", dependencies=[Depends(bearer)])
        def subscription(sid: str) -> dict:
            if sid not in self.subscriptions:
                raise HTTPException(404, "Not Found")
            return self.subscriptions[sid]

        @app.delete("/subscriptions/{sid}", dependencies=[Depends(bearer)])
        def unsubscribe(sid: str) -> dict:
            with self.cond:
                if sid not in self.subscriptions:
                    raise HTTPException(404, "Not Found")
                obj = self.subscriptions.pop(sid)
                self.cond.notify_all()
            return obj

    # --- notifications -------------------------------------------------------------------
    def _notify(self, operation: str, event: dict) -> None:
        note = {"objectType": "EVENT", "operation": operation, "object": event}
        for sub in list(self.subscriptions.values()):
            if sub["programID"] != event["programID"]:
                continue
            for oo in sub["objectOperations"]:
                if "EVENT" in oo["objects"] and operation in oo["operations"]:
                    self._outbox.put((oo, note))

    def _send(self) -> None:
        with httpx.Client(timeout=5) as http:
            while (item := self._outbox.get()) is not None:
                oo, note = item
                token = oo.get("bearerToken")
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    status: int | str = http.post(
                        oo["callbackUrl"], json=note, headers=headers
                    ).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self.cond:
                    self.notified.append(
                        (oo["callbackUrl"], note["operation"], note["object"]["id"], status)
                    )
                    self.cond.notify_all()

    def start(self) -> str:
        cfg = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        if self._sender is None:
            self._sender = threading.Thread(target=self._send, name="vtn3-notify", daemon=True)
            self._sender.start()
        end = datetime.now(UTC).timestamp() + 10
        while not self.server.started:
            assert datetime.now(UTC).timestamp() < end, "the VTN did not start"
            threading.Event().wait(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(10)

    def close(self) -> None:
        """Stop the server and the notification sender."""
        self.stop()
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(10)
            self._sender = None

    # --- what the utility does (the business logic side) --------------------------------
    def _provision(self, obj: dict, kind: str, old: dict | None = None) -> dict:
        now = datetime.now(UTC).isoformat()
        obj["id"] = old["id"] if old else obj.get("id") or f"{kind.lower()}-{next(self._ids)}"
        obj["objectType"] = kind
        obj["createdDateTime"] = old["createdDateTime"] if old else now
        obj["modificationDateTime"] = now
        return obj

    def add_program(self, name: str, **kw) -> str:
        p = Program(programName=name, **kw).model_dump(mode="json", exclude_none=True)
        p = self._provision(p, "PROGRAM")
        self.programs[p["id"]] = p
        return p["id"]

    def add_event(self, program_id: str, intervals: list[dict], **kw) -> str:
        e = Event(programID=program_id, intervals=intervals, **kw)
        obj = self._provision(e.model_dump(mode="json", exclude_none=True), "EVENT")
        self.events[obj["id"]] = obj
        self._notify("POST", obj)
        return obj["id"]

    def update_event(self, event_id: str, intervals: list[dict]) -> None:
        old = self.events[event_id]
        e = Event(**{**{k: v for k, v in old.items() if k != "intervals"}, "intervals": intervals})
        self.events[event_id] = self._provision(e.model_dump(mode="json", exclude_none=True),
                                                "EVENT", old)  # fmt: skip
        self._notify("PUT", self.events[event_id])

    def delete_event(self, event_id: str) -> None:
        self._notify("DELETE", self.events.pop(event_id))

    def reports_of(self, event_id: str) -> list[dict]:
        return [r for r in self.reports if r["eventID"] == event_id]
