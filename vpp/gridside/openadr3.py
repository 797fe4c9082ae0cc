"""An OpenADR 3 VEN: programs, events and reports over the VTN's REST API (``httpx``).

Every ``poll_s`` the VEN reads ``GET /programs`` (the program names, for the contract type
per program) and ``GET /events``; an event not seen before, or with a new
``modificationDateTime``, becomes DR events by the rule of :mod:`vpp.gridside.signals`
through the service's one DR path (:class:`vpp.gridside.intake.DrIntake`), exactly as the
2.0b VEN's; an event that is gone from the VTN is cancelled. OAuth2 client credentials
(``POST /auth/token``) when ``client_id`` is set.

OpenADR 3 payload types read as 2.0b signals: ``IMPORT_CAPACITY_LIMIT`` as a set-point (an
import cap), ``DISPATCH_SETPOINT_RELATIVE`` as a delta (kW, < 0 reduce), ``SIMPLE`` as the
level; the unit from the event's (or program's) ``payloadDescriptors`` (``W``, ``KW``,
``MW``; kW when none). Anything else is no DR call: answered by an opt-out report.

3.0 has no opt message: after handling an event the VEN posts a report (``POST /reports``,
``reportName`` ``park-vpp:<event id>``) with, per interval of the event, the private payload
``OPT`` (``optIn`` / ``optOut``, as 2.0b decides it), ``UP_REGULATION_AVAILABLE`` and
``DOWN_REGULATION_AVAILABLE`` (kW the offer holds above and below the plan over that
interval, :mod:`vpp.gridside.offers`), and ``DEMAND`` (the park meter's kW) when metered.
An invitation confirmed later by an operator gets a new report with ``optIn``.

Subscriptions (webhooks), when ``subscribe`` is set: the VEN serves ``POST /notification``
(starlette on uvicorn, in a thread, at ``listen_host:listen_port``) and, after each poll, posts
a ``subscription`` (``POST /subscriptions``: ``clientName``, ``programID``,
``objectOperations`` = EVENT x POST/PUT/DELETE, ``callbackUrl``, ``bearerToken``) for every
program it has none for yet (and again for one the VTN no longer knows: ``GET
/subscriptions/{id}`` answering 404). ``bearerToken`` is random per run and required on
every callback (401 without one, 403 with another). A ``notification`` (``objectType``,
``operation``, ``object``) is queued for the VEN's thread and handled as a poll would have
handled that event (the same code path: new or modified, or gone), so the call reaches the DR
path at once. Polling goes on as a safety net, every ``subscribe.poll_s`` while every program
has its subscription, every ``poll_s`` otherwise; a VTN that answers 404, 405 or 501 on
``/subscriptions`` has none: polling only (logged once). The subscriptions are deleted on
stop.
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vpp.gridside.intake import IN_FORCE, DrIntake, Receipt, ServicePort
from vpp.gridside.offers import judge, mapping_context, offer
from vpp.gridside.signals import Interval, MappingContext, SignalError, dr_fields
from vpp.park.model import PARK_METER, DrStatus
from vpp.store.codec import dr_from_json

log = logging.getLogger(__name__)

AS_2B = {  # OpenADR 3 payload type -> the 2.0b signal it is read as (signals.py)
    "IMPORT_CAPACITY_LIMIT": ("LOAD_DISPATCH", "setpoint"),
    "DISPATCH_SETPOINT_RELATIVE": ("LOAD_DISPATCH", "delta"),
    "SIMPLE": ("SIMPLE", "level"),
}
UNIT_SCALE = {"W": "none", "KW": "k", "MW": "M"}
_DURATION = re.compile(
    r"^(-?)P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
NO_SUBSCRIPTIONS = (404, 405, 501)  # what a VTN without subscriptions answers on /subscriptions
CALLBACK_PATH = "/notification"


@dataclass(frozen=True)
class SubscribeConfig:
    """The VEN's webhook (``openadr3.subscribe`` in a grid-side file).

    listen_host, listen_port : where the listener binds (port 0: any free port).
    public_url : the listener's base URL as the VTN reaches it (a reverse proxy, a public
        name); None: ``http://listen_host:port``. The callback URL is this plus
        ``/notification``.
    poll_s : the safety-net poll period while every program has its subscription (s).
    """

    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    public_url: str | None = None
    poll_s: float = 60.0


@dataclass(frozen=True)
class OpenAdr3Config:
    """The VEN's settings (``openadr3:`` in a grid-side file).

    vtn_url : the VTN's base URL (``https://host/openadr3/3.0.1``).
    ven_name : the ``clientName`` of its reports.
    poll_s : how often programs and events are read (s).
    client_id, client_secret : OAuth2 client credentials (None: no token asked for).
    contract_type, programs : the contract of its calls, per program name where it differs.
    level_kw, confirm_lead_minutes, margin_frac : as for the 2.0b VEN.
    timeout_s : each request's time-out (s).
    report_wait_s : how long the report of an event waits for the re-solve it asked for, so
        that it shows the offer of the plan that follows the event (s).
    subscribe : the webhook for subscriptions (None: polling only).
    """

    vtn_url: str
    ven_name: str = "park-vpp"
    poll_s: float = 5.0
    client_id: str | None = None
    client_secret: str | None = None
    contract_type: str = "pre_agreed"
    programs: dict[str, str] = field(default_factory=dict)
    level_kw: tuple[float, ...] | None = None
    confirm_lead_minutes: float = 0.0
    margin_frac: float = 0.0
    timeout_s: float = 5.0
    report_wait_s: float = 10.0
    subscribe: SubscribeConfig | None = None


@dataclass
class _Seen:
    modified: str
    dr_ids: tuple[str, ...]
    opt: str
    program_id: str
    intervals: list[Interval]


def parse_duration(text: str | None) -> timedelta:
    """An ISO 8601 duration (``PT1H``, ``P1D``, ``PT0.5S``); years and months are refused
    (no fixed length). ``PT0S`` or None: zero."""
    if not text:
        return timedelta(0)
    m = _DURATION.match(text)
    if not m:
        raise SignalError(f"not an ISO 8601 duration: {text!r}")
    sign, years, months, n, unit, h, mi, s = m.groups()
    if years or months:
        raise SignalError(f"a duration in years or months has no fixed length: {text!r}")
    days = int(n or 0) * (7 if unit == "W" else 1)
    d = timedelta(days=days, hours=int(h or 0), minutes=int(mi or 0), seconds=float(s or 0))
    return -d if sign else d


def event_intervals(event: dict, descriptors: list[dict]) -> list[Interval]:
    """An OpenADR 3 event's intervals, read as 2.0b signals (see the module doc)."""
    units = {d.get("payloadType"): d.get("units") for d in descriptors or []}
    default = event.get("intervalPeriod") or {}
    t = datetime.fromisoformat(default["start"]) if default.get("start") else None
    dur0 = parse_duration(default.get("duration"))
    out = []
    for iv in sorted(event.get("intervals") or [], key=lambda x: x.get("id", 0)):
        period = iv.get("intervalPeriod") or {}
        start = datetime.fromisoformat(period["start"]) if period.get("start") else t
        dur = parse_duration(period["duration"]) if period.get("duration") else dur0
        if start is None or dur <= timedelta(0):
            raise SignalError(f"interval {iv.get('id')}: no start or no duration")
        for p in iv.get("payloads") or []:
            kind = p.get("type")
            if kind not in AS_2B:
                raise SignalError(f"payload type {kind} is not a DR call the park acts on")
            name, typ = AS_2B[kind]
            unit = (units.get(kind) or "KW").upper()
            if kind != "SIMPLE" and unit not in UNIT_SCALE:
                raise SignalError(f"{kind}: unit {unit} is not a power (W, KW, MW)")
            values = p.get("values") or []
            if len(values) != 1 or not isinstance(values[0], int | float):
                raise SignalError(f"{kind}: expected one number, got {values!r}")
            scale = None if kind == "SIMPLE" else UNIT_SCALE[unit]
            out.append(Interval(start, dur, name, typ, float(values[0]), scale))
        t = start + dur
    return out


@dataclass
class OpenAdr3Ven:
    """The OpenADR 3 VEN of one park (see the module doc)."""

    port: ServicePort
    config: OpenAdr3Config
    prefix: str = "oadr3:"
    seen: dict[str, _Seen] = field(default_factory=dict)
    vtn_reachable: bool = False
    last_error: str | None = None
    polls: int = 0
    received_at: dict[str, float] = field(default_factory=dict)
    subscriptions: dict[str, str] = field(default_factory=dict)  # program id -> subscription
    subscriptions_supported: bool = True
    notifications: int = 0
    callback_url: str | None = None

    def __post_init__(self) -> None:
        self.intake = DrIntake(self.port, f"openadr3:{self.config.ven_name}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.config.vtn_url, timeout=self.config.timeout_s)
        self._programs: dict[str, dict] = {}
        self._inbox: queue.Queue[dict | None] = queue.Queue()
        self._callback_token = secrets.token_urlsafe(32)
        self._listener: uvicorn.Server | None = None
        self._listener_thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        if self.config.subscribe is not None:
            self._start_listener(self.config.subscribe)
        self._thread = threading.Thread(target=self._loop, name="openadr3-ven", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(self.config.timeout_s + 5)
            self._thread = None
        self._unsubscribe()
        if self._listener is not None:
            self._listener.should_exit = True
            if self._listener_thread is not None:
                self._listener_thread.join(self.config.timeout_s + 5)
            self._listener = self._listener_thread = None
        self._http.close()

    def _period(self) -> float:
        """The poll period: the safety net's while every program has its subscription (and
        the VTN answers: one that is away is looked for every ``poll_s``)."""
        sub = self.config.subscribe
        covered = self._programs and all(p in self.subscriptions for p in self._programs)
        if sub is not None and self.subscriptions_supported and covered and self.vtn_reachable:
            return sub.poll_s
        return self.config.poll_s

    def _loop(self) -> None:
        due = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= due:
                self.poll_once()
                self._subscribe()
                due = time.monotonic() + self._period()
            try:
                note = self._inbox.get(timeout=max(due - time.monotonic(), 0.0))
            except queue.Empty:
                continue
            if note is not None and not self._stop.is_set():
                self.notified(note)

    # ----------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        cfg = self.config
        if cfg.client_id is None:
            return {}
        if self._token is None:
            r = self._http.post(
                "/auth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": cfg.client_id,
                    "client_secret": cfg.client_secret or "",
                },
            )
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = self._http.request(method, path, headers=self._headers(), **kw)
        if r.status_code == 401 and self.config.client_id is not None:  # an expired token
            self._token = None
            r = self._http.request(method, path, headers=self._headers(), **kw)
        return r

    def _get(self, path: str) -> Any:
        r = self._request("GET", path)
        r.raise_for_status()
        return r.json()

    def poll_once(self) -> None:
        """Read programs and events once and hand every change to the DR path."""
        try:
            programs = self._get("/programs")
            events = self._get("/events")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            if self.vtn_reachable:
                log.warning("OpenADR 3 VTN %s not reachable: %s", self.config.vtn_url, exc)
            self.vtn_reachable = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        self.vtn_reachable = True
        self.polls += 1
        self._programs = {p["id"]: p for p in programs}
        live = set()
        for ev in events:
            live.add(ev["id"])
            self._handle(ev)
        for gone in set(self.seen) - live:
            self._gone(gone)
        self._confirmations()

    def _handle(self, ev: dict) -> None:
        """A new or changed event (a poll's or a notification's) to the DR path."""
        try:
            self._event(ev)
        except Exception as exc:  # one bad event never stops the others
            log.exception("OpenADR 3 event %s could not be handled", ev.get("id"))
            self.last_error = f"event {ev.get('id')}: {type(exc).__name__}: {exc}"

    def _gone(self, eid: str) -> None:
        """An event deleted at the VTN: its DR events cancelled."""
        s = self.seen.pop(eid, None)
        for dr_id in s.dr_ids if s else ():
            self.intake.cancel(dr_id, "deleted at the VTN")

    # --- subscriptions -----------------------------------------------------------------
    def notified(self, note: dict) -> None:
        """One notification (already authenticated): handled as a poll finding the change."""
        obj, op = note.get("object"), note.get("operation")
        if note.get("objectType") != "EVENT" or not isinstance(obj, dict) or "id" not in obj:
            log.debug("OpenADR 3 notification ignored: %s %s", note.get("objectType"), op)
            return
        self.notifications += 1
        if op == "DELETE":
            self._gone(obj["id"])
        elif op in ("POST", "PUT"):
            if obj.get("programID") not in self._programs:  # a program not read yet
                try:
                    self._programs = {p["id"]: p for p in self._get("/programs")}
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("OpenADR 3 programs not read for a notification: %s", exc)
            self._handle(obj)
            self._confirmations()
        else:
            log.debug("OpenADR 3 notification ignored: EVENT %s", op)

    def _subscribe(self) -> None:
        """A subscription for every program that has none yet (after a poll)."""
        if self.callback_url is None or not self.subscriptions_supported:
            return
        if not self.vtn_reachable:
            return
        for pid in set(self.subscriptions) - set(self._programs):  # programs gone at the VTN
            self.subscriptions.pop(pid)
        for pid, sid in list(self.subscriptions.items()):  # one the VTN lost is made again
            try:
                if self._request("GET", f"/subscriptions/{sid}").status_code == 404:
                    log.warning("OpenADR 3 subscription %s lost at the VTN: renewed", sid)
                    self.subscriptions.pop(pid)
            except httpx.HTTPError:
                return
        for pid in self._programs:
            if pid in self.subscriptions:
                continue
            body = {
                "clientName": self.config.ven_name,
                "programID": pid,
                "objectOperations": [
                    {
                        "objects": ["EVENT"],
                        "operations": ["POST", "PUT", "DELETE"],
                        "callbackUrl": self.callback_url,
                        "bearerToken": self._callback_token,
                    }
                ],
            }
            try:
                r = self._request("POST", "/subscriptions", json=body)
                if r.status_code in NO_SUBSCRIPTIONS:
                    self.subscriptions_supported = False
                    log.info(
                        "OpenADR 3 VTN %s offers no subscriptions (HTTP %s): polling only",
                        self.config.vtn_url,
                        r.status_code,
                    )
                    return
                r.raise_for_status()
                self.subscriptions[pid] = r.json()["id"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                self.last_error = f"subscription for {pid}: {type(exc).__name__}: {exc}"
                log.warning("OpenADR 3 subscription for program %s failed: %s", pid, exc)
                return
            log.info("OpenADR 3 subscribed to program %s (%s)", pid, self.subscriptions[pid])

    def _unsubscribe(self) -> None:
        for pid, sid in list(self.subscriptions.items()):
            try:
                r = self._request("DELETE", f"/subscriptions/{sid}")
                if r.status_code != 404:  # 404: the VTN has dropped it already
                    r.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("OpenADR 3 subscription %s not deleted: %s", sid, exc)
            self.subscriptions.pop(pid, None)

    async def _callback(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return JSONResponse({"title": "Unauthorized", "status": 401}, 401)
        if not secrets.compare_digest(auth.removeprefix("Bearer ").encode(),
                                      self._callback_token.encode()):  # fmt: skip
            return JSONResponse({"title": "Forbidden", "status": 403}, 403)
        try:
            note = await request.json()
        except ValueError:
            note = None
        ok = isinstance(note, dict) and all(k in note for k in ("objectType", "operation"))
        if not ok or not isinstance(note.get("object"), dict):
            detail = "expected a notification {objectType, operation, object}"
            return JSONResponse({"title": "Bad Request", "status": 400, "detail": detail}, 400)
        self._inbox.put(note)
        return JSONResponse({"status": "accepted"}, 200)

    def _start_listener(self, sub: SubscribeConfig) -> None:
        app = Starlette(routes=[Route(CALLBACK_PATH, self._callback, methods=["POST"])])
        cfg = uvicorn.Config(
            app,
            host=sub.listen_host,
            port=sub.listen_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(cfg)
        thread = threading.Thread(target=server.run, name="openadr3-webhook", daemon=True)
        thread.start()
        end = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > end:
                server.should_exit = True
                raise RuntimeError(
                    f"OpenADR 3 webhook: cannot listen on {sub.listen_host}:{sub.listen_port}"
                )
            thread.join(0.01)
        self._listener, self._listener_thread = server, thread
        bound = server.servers[0].sockets[0].getsockname()[1]
        host = sub.listen_host if ":" not in sub.listen_host else f"[{sub.listen_host}]"
        base = sub.public_url or f"http://{host}:{bound}"
        self.callback_url = base.rstrip("/") + CALLBACK_PATH
        log.info("OpenADR 3 webhook listening on %s:%s (%s)", sub.listen_host, bound, base)

    def _event(self, ev: dict) -> None:
        eid = ev["id"]
        modified = ev.get("modificationDateTime") or ev.get("createdDateTime") or ""
        old = self.seen.get(eid)
        if old is not None and old.modified == modified:
            return
        self.received_at[eid] = time.monotonic()
        program = self._programs.get(ev.get("programID"), {})
        descriptors = (ev.get("payloadDescriptors") or []) + (
            program.get("payloadDescriptors") or []
        )
        created = ev.get("createdDateTime")
        announced = datetime.fromisoformat(modified or created) if (modified or created) else None
        announced = announced or self.port.clock.now()
        try:
            intervals = event_intervals(ev, descriptors)
            fields = dr_fields(
                self.prefix + eid, intervals, self._context(), announced, program.get("programName")
            )
        except SignalError as exc:
            log.warning("OpenADR 3 event %s: opting out: %s", eid, exc)
            self.seen[eid] = _Seen(modified, (), "optOut", ev.get("programID", ""), [])
            self._report(eid, ev.get("programID", ""), [], "optOut", str(exc))
            return
        ids = tuple(f["event_id"] for f in fields)
        for stale in set(old.dr_ids if old else ()) - set(ids):
            self.intake.cancel(stale, "no longer asked by the VTN's event")
        receipts = [self._submit(f) for f in fields]
        statuses = [r.status for r in receipts]
        opt = "optIn" if fields and all(s in IN_FORCE for s in statuses) else "optOut"
        self.seen[eid] = _Seen(modified, ids, opt, ev.get("programID", ""), intervals)
        tickets = [r.ticket for r in receipts if r.ticket is not None]
        if tickets:  # report the offer of the plan that follows the event
            self.port.wait_resolved(tickets[-1], self.config.report_wait_s)
        log.info("OpenADR 3 event %s: %s -> %s", eid, dict(zip(ids, statuses, strict=True)), opt)
        self._report(eid, ev.get("programID", ""), intervals, opt)

    def _submit(self, fields: dict[str, Any]) -> Receipt:
        decline = None
        cur = self.port.current
        if cur is not None and cur.problem is not None:
            ev = dr_from_json({**fields, "status": DrStatus.ANNOUNCED.value})
            j = judge(ev, cur.problem, cur.plan, self.config.margin_frac)
            if not j.ok:
                decline = f"the park cannot deliver: {j.reason}"
        return self.intake.submit(fields, decline=decline)

    def _confirmations(self) -> None:
        """Invitations an operator confirmed since: a report with optIn."""
        for eid, s in self.seen.items():
            if s.opt != "optOut" or not s.dr_ids:
                continue
            if all(self.intake.status(i) in IN_FORCE for i in s.dr_ids):
                s.opt = "optIn"
                self._report(eid, s.program_id, s.intervals, "optIn")

    def _context(self) -> MappingContext:
        return mapping_context(self.port, self.config, f"OpenADR 3 VTN {self.config.vtn_url}")

    # ----------------------------------------------------------------------------------
    def report_body(
        self, eid: str, program_id: str, intervals: list[Interval], opt: str, why: str = ""
    ) -> dict[str, Any]:
        """The report the VEN posts for an event (see the module doc)."""
        cur = self.port.current
        off = offer(cur.problem, cur.plan, cur.version) if cur and cur.problem else None
        meter = self.port.readings().get(PARK_METER)
        rows = []
        spans = intervals or [None]
        for i, iv in enumerate(spans):
            payloads: list[dict[str, Any]] = [{"type": "OPT", "values": [opt]}]
            if why:
                payloads.append({"type": "OPT_REASON", "values": [why[:500]]})
            period = None
            if iv is not None:
                period = {"start": iv.start.isoformat(), "duration": _iso(iv.duration)}
                if off is not None:
                    m = off.mask(iv.start, iv.start + iv.duration)
                    if m.any():
                        up, down = float(np.min(off.up_kw[m])), float(np.min(off.down_kw[m]))
                        payloads.append({"type": "UP_REGULATION_AVAILABLE", "values": [up]})
                        payloads.append({"type": "DOWN_REGULATION_AVAILABLE", "values": [down]})
            if meter is not None and meter.p_kw is not None:
                payloads.append({"type": "DEMAND", "values": [float(meter.p_kw)]})
            row: dict[str, Any] = {"id": i, "payloads": payloads}
            if period is not None:
                row["intervalPeriod"] = period
            rows.append(row)
        return {
            "objectType": "REPORT",
            "programID": program_id or "unknown",
            "eventID": eid,
            "clientName": self.config.ven_name,
            "reportName": f"park-vpp:{eid}",
            "payloadDescriptors": [
                {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": t, "units": "KW"}
                for t in ("UP_REGULATION_AVAILABLE", "DOWN_REGULATION_AVAILABLE", "DEMAND")
            ],
            "resources": [{"resourceName": "AGGREGATED_REPORT", "intervals": rows}],
        }

    def _report(self, eid, program_id, intervals, opt, why: str = "") -> None:
        body = self.report_body(eid, program_id, intervals, opt, why)
        try:
            r = self._request("POST", "/reports", json=body)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            self.last_error = f"report for {eid}: {type(exc).__name__}: {exc}"
            log.warning("OpenADR 3 report for %s not sent: %s", eid, exc)


def _iso(d: timedelta) -> str:
    s = d.total_seconds()
    return f"PT{int(s)}S" if s == int(s) else f"PT{s}S"
