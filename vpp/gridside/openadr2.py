"""An OpenADR 2.0b VEN (the ``openleadr`` package, pull mode over HTTP).

Registration with the VTN (retried until it answers), then every poll period (the VTN's
``requested_poll_freq``) it pulls ``oadrDistributeEvent``. Each event becomes one or more DR
events by the rule of :mod:`vpp.gridside.signals` and goes through the service's one DR path
(:class:`vpp.gridside.intake.DrIntake`: the park's checks, the decision on receipt, storage,
an immediate re-solve); a modification (a new ``modificationNumber``) updates them, a
cancellation cancels them. Planned, advanced and settled afterwards exactly as REST events.

The opt answered in ``oadrCreatedEvent``:

* **optOut** when the call is not one the park acts on (a price signal, a refused field),
  or the flexibility envelope of the plan in force cannot hold it (over the part of its windows
  inside the plan's horizon, :func:`vpp.gridside.offers.judge`, plus ``margin_frac``): then the
  DR event is stored *declined*, with the reason, so the record shows the call and why;
* **optIn** when every DR event it became is in force (pre-agreed: on receipt; an invitation:
  when the park's ``dr_policy`` confirms it on receipt);
* an invitation left for an operator is answered **optOut** for now, and the VEN sends an
  unsolicited ``oadrCreatedEvent`` with **optIn** as soon as an operator confirms it (``POST
  /api/v1/dr-events/{id}/confirm``) before its confirm deadline (checked every ``watch_s``).

Reports (``TELEMETRY_USAGE``, sampled every ``report_sampling_s``, kW): resource ``park``,
the park meter's import; ``park.import_min`` and ``park.import_max``, the lowest and highest
import the park can hold in the current interval (the offer of ``/api/v1/flexibility``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vpp.gridside.intake import IN_FORCE, DrIntake, ServicePort
from vpp.gridside.offers import judge, mapping_context, offer
from vpp.gridside.signals import Interval, MappingContext, SignalError, dr_fields
from vpp.park.model import PARK_METER
from vpp.store.codec import dr_from_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenAdr2Config:
    """The VEN's settings (``openadr2:`` in a grid-side file).

    vtn_url : the VTN's base URL (``http://host:port/OpenADR2/Simple/2.0b``).
    ven_name, ven_id : how the VEN registers (ven_id None: assigned by the VTN).
    contract_type, programs : the contract of its calls (``pre_agreed`` or ``invitation``),
        per program (market context URI) where they differ.
    level_kw : kW per SIMPLE level 1-3 (None: 1/3, 2/3, all of the downward flexibility).
    confirm_lead_minutes : an invitation's confirm deadline before its first window.
    margin_frac : the envelope must hold the request plus this fraction to opt in.
    report_sampling_s : the reports' sampling period (s).
    watch_s : how often invitations awaiting an operator are checked (s).
    retry_s : how long after a failed registration it tries again (s).
    cert, key, ca_file, vtn_fingerprint : TLS and XML signatures (paths, fingerprint);
        without cert and key, messages are not signed.
    """

    vtn_url: str
    ven_name: str = "park-vpp"
    ven_id: str | None = None
    contract_type: str = "pre_agreed"
    programs: dict[str, str] = field(default_factory=dict)
    level_kw: tuple[float, ...] | None = None
    confirm_lead_minutes: float = 0.0
    margin_frac: float = 0.0
    report_sampling_s: float = 60.0
    watch_s: float = 1.0
    retry_s: float = 10.0
    cert: str | None = None
    key: str | None = None
    ca_file: str | None = None
    vtn_fingerprint: str | None = None


@dataclass
class _Call:
    """One VTN event as the VEN tracks it: its DR events, the opt sent, its request id."""

    vtn_event_id: str
    modification_number: int
    dr_ids: tuple[str, ...]
    opt: str
    request_id: str | None = None


@dataclass
class OpenAdr2Ven:
    """The OpenADR 2.0b VEN of one park (see the module doc)."""

    port: ServicePort
    config: OpenAdr2Config
    prefix: str = "oadr2:"
    calls: dict[str, _Call] = field(default_factory=dict)
    registered: bool = False
    vtn_reachable: bool = False
    last_error: str | None = None
    # Monotonic time each VTN event was handed over (latency probes, bench/gridside.py).
    received_at: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.intake = DrIntake(self.port, f"openadr2:{self.config.ven_name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._client: Any = None
        self._tasks: list[asyncio.Task] = []

    # ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the VEN in its own thread and event loop."""
        self._thread = threading.Thread(target=self._run, name="openadr2-ven", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(10)
        except Exception:
            log.exception("OpenADR 2.0b VEN did not stop cleanly")
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._tasks.append(loop.create_task(self._main()))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._client is not None:
            try:
                await self._client.stop()
            except Exception:  # a client that never registered has nothing to stop
                log.debug("openleadr client stop", exc_info=True)

    async def _main(self) -> None:
        from openleadr import OpenADRClient

        cfg = self.config
        while True:
            client = _Client(
                self,
                ven_name=cfg.ven_name,
                vtn_url=cfg.vtn_url,
                ven_id=cfg.ven_id,
                cert=cfg.cert,
                key=cfg.key,
                ca_file=cfg.ca_file,
                vtn_fingerprint=cfg.vtn_fingerprint,
                show_fingerprint=False,
                disable_signature=not (cfg.cert and cfg.key),
            )
            assert isinstance(client, OpenADRClient)
            client.add_handler("on_event", self._on_event)
            client.add_handler("on_update_event", self._on_event)
            self._add_reports(client)
            self._client = client
            await client.run()
            if client.registration_id:
                self.registered = True
                log.info(
                    "OpenADR 2.0b VEN %s registered at %s (ven_id %s, polling every %s)",
                    cfg.ven_name,
                    cfg.vtn_url,
                    client.ven_id,
                    client.poll_frequency,
                )
                break
            await client.stop()
            self.last_error = f"registration at {cfg.vtn_url} failed; retrying in {cfg.retry_s} s"
            log.warning("OpenADR 2.0b VEN: %s", self.last_error)
            await asyncio.sleep(cfg.retry_s)
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch()))

    def _add_reports(self, client) -> None:
        from openleadr import enums

        sampling = timedelta(seconds=self.config.report_sampling_s)
        common = dict(
            measurement="REAL_POWER",
            unit="W",
            scale="k",
            sampling_rate=sampling,
            report_duration=timedelta(hours=1),
            report_specifier_id="park-vpp-usage",
            report_name=enums.REPORT_NAME.TELEMETRY_USAGE,
        )
        for fn, resource in (
            (self.metered_kw, "park"),
            (self.import_min_kw, "park.import_min"),
            (self.import_max_kw, "park.import_max"),
        ):
            client.add_report(_sampled(fn), resource_id=resource, r_id=resource, **common)

    # ----------------------------------------------------------------------------------
    # Reports
    # ----------------------------------------------------------------------------------
    def metered_kw(self) -> float | None:
        """The park meter's latest import (kW)."""
        r = self.port.readings().get(PARK_METER)
        return None if r is None or r.p_kw is None else float(r.p_kw)

    def _edge(self, which: str) -> float | None:
        cur = self.port.current
        if cur is None or cur.problem is None:
            return None
        off = offer(cur.problem, cur.plan, cur.version)
        k = off.index(self.port.clock.now())
        arr = off.p_import_min_kw if which == "min" else off.p_import_max_kw
        return float(arr[0 if k is None else k])

    def import_min_kw(self) -> float | None:
        """The lowest import the park can hold in the current interval (kW)."""
        return self._edge("min")

    def import_max_kw(self) -> float | None:
        """The highest import the park can hold in the current interval (kW)."""
        return self._edge("max")

    # ----------------------------------------------------------------------------------
    # Events
    # ----------------------------------------------------------------------------------
    async def _on_event(self, event: dict) -> str:
        """openleadr's ``on_event`` and ``on_update_event``: the opt for ``event``."""
        desc = event["event_descriptor"]
        vtn_id = str(desc["event_id"])
        try:
            return self.handle(event)
        except Exception as exc:  # never a dead VEN: opt out and say why
            log.exception("OpenADR 2.0b event %s could not be handled", vtn_id)
            self.last_error = f"event {vtn_id}: {type(exc).__name__}: {exc}"
            return "optOut"

    def handle(self, event: dict) -> str:
        """Turn one ``oadrEvent`` (as openleadr parses it) into DR events; the opt."""
        desc = event["event_descriptor"]
        vtn_id = str(desc["event_id"])
        mod = int(desc.get("modification_number") or 0)
        status = str(desc.get("event_status") or "")
        self.received_at[vtn_id] = time.monotonic()
        known = self.calls.get(vtn_id)
        if status == "cancelled":
            for dr_id in known.dr_ids if known else (self.prefix + vtn_id,):
                self.intake.cancel(dr_id, f"cancelled by the VTN (modification {mod})")
            self.calls.pop(vtn_id, None)
            return "optIn"  # acknowledged; nothing to deliver
        announced = desc.get("created_date_time") or datetime.now(UTC)
        program = desc.get("market_context")
        try:
            fields = dr_fields(
                self.prefix + vtn_id,
                _intervals(event),
                self._context(),
                announced,
                program,
            )
        except SignalError as exc:
            log.warning("OpenADR 2.0b event %s: opting out: %s", vtn_id, exc)
            self.calls[vtn_id] = _Call(vtn_id, mod, (), "optOut")
            return "optOut"
        dr_ids = tuple(f["event_id"] for f in fields)
        for old in set(known.dr_ids if known else ()) - set(dr_ids):
            self.intake.cancel(old, f"no longer asked (modification {mod})")
        statuses = [self._submit(f) for f in fields]
        opt = "optIn" if fields and all(s in IN_FORCE for s in statuses) else "optOut"
        self.calls[vtn_id] = _Call(vtn_id, mod, dr_ids, opt)
        log.info(
            "OpenADR 2.0b event %s (modification %d): %s -> %s",
            vtn_id,
            mod,
            ", ".join(f"{i} {s}" for i, s in zip(dr_ids, statuses, strict=True)) or "no call",
            opt,
        )
        return opt

    def _submit(self, fields: dict[str, Any]) -> str | None:
        decline = None
        cur = self.port.current
        if cur is not None and cur.problem is not None:
            from vpp.park.model import DrStatus

            ev = dr_from_json({**fields, "status": DrStatus.ANNOUNCED.value})
            j = judge(ev, cur.problem, cur.plan, self.config.margin_frac)
            if not j.ok:
                decline = f"the park cannot deliver: {j.reason}"
        rec = self.intake.submit(fields, decline=decline)
        if not rec.stored:
            log.warning("OpenADR 2.0b: %s refused: %s", fields["event_id"], "; ".join(rec.problems))
        return rec.status

    def _context(self) -> MappingContext:
        return mapping_context(self.port, self.config, f"OpenADR 2.0b VTN {self.config.vtn_url}")

    async def _watch(self) -> None:
        """Invitations answered optOut while awaiting an operator: optIn once confirmed."""
        while True:
            await asyncio.sleep(self.config.watch_s)
            for call in list(self.calls.values()):
                if call.opt != "optOut" or not call.dr_ids:
                    continue
                statuses = [self.intake.status(i) for i in call.dr_ids]
                if all(s in IN_FORCE for s in statuses):
                    await self.send_opt(call, "optIn")

    async def send_opt(self, call: _Call, opt: str) -> None:
        """An unsolicited ``oadrCreatedEvent`` changing the opt of a VTN event."""
        client = self._client
        await client.created_event(
            request_id=call.request_id or "park-vpp",
            event_id=call.vtn_event_id,
            opt_type=opt,
            modification_number=call.modification_number,
        )
        call.opt = opt
        client.responded_events[call.vtn_event_id] = opt
        log.info("OpenADR 2.0b event %s: %s sent (operator's decision)", call.vtn_event_id, opt)


class _Client:
    """openleadr's client with the VEN's view of the VTN: whether each poll reached it."""

    def __new__(cls, ven: OpenAdr2Ven, **kw):
        from openleadr import OpenADRClient

        class Client(OpenADRClient):
            async def poll(self):
                out = await super().poll()
                ok = out is not None and out[0] is not None
                if ok != ven.vtn_reachable:
                    log.log(
                        logging.INFO if ok else logging.WARNING,
                        "OpenADR 2.0b VTN %s %s",
                        ven.config.vtn_url,
                        "reachable again" if ok else "not reachable: events in force stay",
                    )
                ven.vtn_reachable = ok
                if not ok:
                    ven.last_error = f"poll of {ven.config.vtn_url} failed"
                return out if out is not None else (None, {})

        return Client(**kw)


def _sampled(fn):
    """A report callback for openleadr: ``[(now, value)]``, or no sample while the value is
    unknown (no meter reading, no plan yet)."""

    def sample():
        v = fn()
        return [] if v is None else [(datetime.now(UTC), v)]

    return sample


def _intervals(event: dict) -> list[Interval]:
    """The event's signal intervals with absolute starts (kW scale from the signal's
    measurement; intervals without a start follow each other from the active period's)."""
    active = event.get("active_period") or {}
    signals = event.get("event_signals") or []
    if isinstance(signals, dict):
        signals = signals.get("event_signals", [])
    out = []
    for sig in signals:
        scale = (sig.get("measurement") or {}).get("scale")
        t = active.get("dtstart")
        for iv in sig.get("intervals") or []:
            start = iv.get("dtstart") or t
            dur = iv["duration"]
            out.append(
                Interval(
                    start,
                    dur,
                    str(sig.get("signal_name", "")),
                    str(sig.get("signal_type", "")),
                    float(iv["signal_payload"]),
                    scale,
                )
            )
            t = start + dur
    return out
