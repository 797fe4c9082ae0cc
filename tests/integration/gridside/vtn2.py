"""An OpenADR 2.0b VTN for the tests: ``openleadr``'s own server on loopback, run in a
thread with its event loop; records registrations, opts (first answers and later changes)
and report values."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from openleadr import OpenADRServer, utils

VEN_ID = "ven-park-1"


class Vtn:
    def __init__(self, port: int, poll_s: float = 1.0):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
        self.opts: list[tuple[str, str]] = []  # (event id, opt) in arrival order
        self.reports: dict[str, list[tuple[object, float]]] = {}
        self.registered = threading.Event()
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._call(self._make, poll_s)
        self.start()

    async def _make(self, poll_s: float) -> OpenADRServer:
        s = OpenADRServer(
            vtn_id="TEST-VTN",
            http_host="127.0.0.1",
            http_port=self.port,
            requested_poll_freq=timedelta(seconds=poll_s),
            verify_message_signatures=False,
            show_fingerprint=False,
            ven_lookup=self._lookup,
        )
        s.add_handler("on_create_party_registration", self._on_register)
        s.add_handler("on_register_report", self._on_register_report)
        s.add_handler("on_created_event", self._on_created)
        return s

    def _call(self, coro_fn, *args):
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop).result(10)

    def start(self) -> None:
        self._call(self.server.run)

    def stop(self) -> None:
        """The VTN goes away (its HTTP server closes; its queues are kept)."""
        self._call(self.server.stop)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    # --- handlers -------------------------------------------------------------------
    def _lookup(self, ven_id):
        if ven_id != VEN_ID:
            return {}
        return {"ven_id": VEN_ID, "ven_name": "park-vpp", "registration_id": "reg-1"}

    def _on_register(self, registration_info):
        self.registered.set()
        return VEN_ID, "reg-1"

    def _on_register_report(
        self, ven_id, resource_id, measurement, unit, scale, min_sampling_interval,
        max_sampling_interval,
    ):  # fmt: skip
        def got(values):  # openleadr calls a report's callback with its values only
            with self.cond:
                self.reports.setdefault(resource_id, []).extend(values)
                self.cond.notify_all()

        return got, min_sampling_interval

    def _on_opt(self, ven_id, event_id, opt_type):
        with self.cond:
            self.opts.append((event_id, opt_type))
            self.cond.notify_all()
        # openleadr's VTN calls an event's callback for the first oadrCreatedEvent only and
        # drops later ones (with its internal polling, on_created_event is never called):
        # keep listening, so a VEN's later change of opt is seen.
        ev = utils.find_by(
            self.server.events.get(ven_id, []), "event_descriptor.event_id", event_id
        )
        if ev is not None:
            self.server.event_callbacks[event_id] = (ev, self._on_opt)

    def _on_created(self, ven_id, event_id, opt_type):
        self._on_opt(ven_id, event_id, opt_type)

    # --- what the utility does ------------------------------------------------------
    def add_event(self, event_id: str, intervals, signal_name="LOAD_DISPATCH",
                  signal_type="delta", market_context="oadr://park-vpp/test"):  # fmt: skip
        async def add():
            return self.server.add_event(
                ven_id=VEN_ID,
                signal_name=signal_name,
                signal_type=signal_type,
                intervals=intervals,
                callback=self._on_opt,
                event_id=event_id,
                market_context=market_context,
            )

        return self._call(add)

    def modify_event(self, event_id: str, payload: float) -> None:
        """A modification: every interval's payload changed, the modification number up."""

        async def modify():
            ev = utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)
            for sig in ev.event_signals:
                for iv in sig.intervals:
                    iv["signal_payload"] = payload
            utils.increment_event_modification_number(ev)
            self.server.events_updated[VEN_ID] = True

        self._call(modify)

    def cancel_event(self, event_id: str) -> None:
        async def cancel():
            self.server.cancel_event(VEN_ID, event_id)

        self._call(cancel)

    def opts_of(self, event_id: str) -> list[str]:
        return [o for e, o in self.opts if e == event_id]
