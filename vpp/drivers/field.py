"""The ``field`` plant driver: a real park's devices behind one
:class:`vpp.plan.cycle.PlantDriver`, composed from the park file's endpoints.

- EV chargers with an ``ocpp`` endpoint: the OCPP central system
  (:mod:`vpp.drivers.ocpp_cs`); their transactions are the EV sessions, their meter values
  telemetry; setpoints go out as charging profiles.
- PV arrays and batteries with a ``modbus`` endpoint: SunSpec or vendor-map adapters
  (:mod:`vpp.drivers.sunspec`), read at every cycle, written with a read-back.
- Assets (and the park meter) with an MQTT topic: readings stored as they arrive through
  the runtime's ingest (:mod:`vpp.drivers.mqtt_telemetry`).
- Between cycles, the park meter's readings drive the local tracking loop
  (:mod:`vpp.drivers.tracking_loop`, :meth:`FieldDriver.track`): battery corrections go
  out through the same guarded Modbus write as the cycle's setpoints.

How a setpoint flows: the cycle calls :meth:`FieldDriver.apply` with the plan's first
interval (after the safety clamp, stale assets already at their safe setpoint); every
device's command is computed here within the device's limits (:mod:`vpp.drivers.limits`)
and all of them go out at once on the driver's event loop (one task per station and per
Modbus connection), each with its own time-out, so a device that hangs or fails delays or
stops no other. A failed device is marked (``health()``), stale from the next read, and so
held safe by the next plan; :meth:`read_state` reports every device that did not answer,
every station offline and every charger whose station exceeds its profile.

Nothing here raises for a device's fault: the cycle goes on for the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from controllers.tracking import TrackingTarget
from vpp.drivers import limits, ocpp_auth, ocpp_state, register_maps, sunspec
from vpp.drivers.mqtt_telemetry import MqttTelemetry
from vpp.drivers.ocpp_cs import CentralSystem
from vpp.drivers.tracking_loop import TrackingLoop
from vpp.park.model import PARK_METER, EvCharger, Site
from vpp.park.state import Assumption, PlantState

log = logging.getLogger(__name__)
UNHEALTHY_CONNECTOR = {"Faulted", "Unavailable"}
UNREACHED_BATTERY = "PCS not answering: SOC unknown, planned at its minimum (no discharge)"


async def _bounded(tasks, timeout_s: float) -> bool:
    """Wait for ``tasks`` at most ``timeout_s``; cancel the rest. True when all finished."""
    tasks = list(tasks)
    if not tasks:
        return True
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for t in pending:
        t.cancel()
    if pending:  # let them unwind (locks released, connections closed)
        await asyncio.gather(*pending, return_exceptions=True)
    return not pending


def _outcome(task: asyncio.Future, name: str, budget_s: float):
    """A task's result, its exception, or a DeviceError when it was cut short."""
    if task.cancelled():
        return sunspec.DeviceError(f"{name}: not read within the cycle's {budget_s:g} s")
    return task.exception() or task.result()


class FieldLoop:
    """An asyncio event loop in a thread of its own: the protocols' home."""

    def __init__(self, name: str = "field-devices"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro, timeout_s: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def soon(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        try:  # the resolver's threads (getaddrinfo) go too
            self.call(self.loop.shutdown_default_executor(), 5)
        except Exception:
            log.warning("field: the event loop's executor did not shut down in 5 s")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass
class DeviceStatus:
    """What the driver knows of one device (``health()``)."""

    asset: str
    protocol: str  # "ocpp" | "modbus"
    where: str
    read_fault: str = "never read"  # "" when the last read (or a station's link) was good
    write_fault: str = ""  # "" when the last command was accepted (and read back)
    last_ok_mono: float | None = None
    last_ok_at: str | None = None
    sent_kw: float | None = None  # what the last accepted command allows (load convention)
    sent_for: datetime | None = None  # the cycle that computed it
    detail: str = ""
    clipped: int = 0  # commands clipped to the device's own limits

    @property
    def fault(self) -> str:
        return self.read_fault or self.write_fault

    def ok(self, now: datetime) -> None:
        self.read_fault, self.last_ok_mono, self.last_ok_at = "", time.monotonic(), now.isoformat()

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "where": self.where,
            "state": "ok" if not self.fault else "fault",
            "fault": self.fault or None,
            "last_ok_at": self.last_ok_at,
            "sent_kw": None if self.sent_kw is None else round(self.sent_kw, 3),
            "sent_for": None if self.sent_for is None else self.sent_for.isoformat(),
            "detail": self.detail,
            "clipped": self.clipped,
        }


@dataclass
class _PeakTracker:
    """The month's peak of the park meter's interval means, from readings seen."""

    step: timedelta
    zone: ZoneInfo
    month: tuple[int, int] | None = None
    peak_kw: float = 0.0
    _k: datetime | None = None
    _sum: float = 0.0
    _n: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ts: datetime, p_kw: float | None) -> None:
        if p_kw is None:
            return
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        k = epoch + math.floor((ts - epoch) / self.step) * self.step
        with self._lock:
            if self._k is not None and k != self._k and self._n:
                self._close()
            if self._k != k:
                self._k, self._sum, self._n = k, 0.0, 0
            self._sum, self._n = self._sum + p_kw, self._n + 1

    def _close(self) -> None:
        assert self._k is not None
        local = self._k.astimezone(self.zone)
        month = (local.year, local.month)
        if month != self.month:
            self.month, self.peak_kw = month, 0.0
        self.peak_kw = max(self.peak_kw, self._sum / self._n)


class FieldDriver:
    """A real park's plant (see the module docstring).

    Parameters
    ----------
    site : Site
        The park; its assets' ``endpoint`` fields and ``field_devices`` say what to reach.
    clock : callable, optional
        The service's clock (tz-aware now); default the wall clock in the park's zone.
    ingest : callable, optional
        ``ingest(rows, source)``: the runtime's telemetry path (``Runtime.ingest_checked``),
        for MQTT readings; set later with :meth:`bind_ingest`.
    """

    def __init__(self, site: Site, clock: Callable[[], datetime] | None = None, ingest=None):
        self.site = site
        zone = ZoneInfo(site.location.tz)
        self.clock = clock or (lambda: datetime.now(zone))
        self.step = timedelta(minutes=site.dispatch.step_minutes)
        self.fd = site.field_devices
        self.status: dict[str, DeviceStatus] = {}
        self._last_cmd: dict[str, tuple[float, datetime]] = {}  # charger -> (kW, cycle)
        self._evaluated: datetime | None = None
        self.last_fanout_s: float | None = None
        self.last_fanout_cpu_s: float | None = None
        # Seconds from the start of the last fan-out to each device's accepted command.
        self.last_latency_s: dict[str, float] = {}
        self._fanout_t0 = 0.0
        self.peak = _PeakTracker(self.step, zone)
        self.loop: FieldLoop | None = None
        self._telemetry: list[dict[str, Any]] = []
        self._ingest = ingest
        self.tracker = TrackingLoop(self._track_write, self._track_usable, self.clock, self._soon)
        self._build_ocpp()
        self._build_modbus()
        self._build_mqtt()

    # ---------------------------------------------------------------------------------------
    # Composition
    # ---------------------------------------------------------------------------------------
    def _build_ocpp(self) -> None:
        a = self.site.assets
        self.chargers: dict[str, EvCharger] = {
            c.name: c for c in a.ev_chargers if c.endpoint is not None and c.endpoint.ocpp
        }
        self.cs: CentralSystem | None = None
        if not self.chargers:
            return
        cfg = self.fd.ocpp
        assert cfg is not None  # the park file's checks ask for it
        keys = None
        if cfg.auth == "basic":
            assert cfg.keys_file is not None
            keys = ocpp_auth.load_keys(register_maps.resolve(cfg.keys_file, self.site.source_file))
        mapping = {}
        for name, c in self.chargers.items():
            o = c.endpoint.ocpp
            mapping[(o.station, o.connector)] = name
            self.status[name] = DeviceStatus(name, "ocpp", f"{o.station}/{o.connector}")
        self.cs = CentralSystem(cfg, keys, mapping, self.clock)
        self.cs.resend = self._resend

    def _build_modbus(self) -> None:
        a = self.site.assets
        links: dict[tuple[str, int], sunspec.ModbusLink] = {}
        self.devices: dict[str, sunspec.ModbusDevice] = {}
        items = [(p, (-p.inverter_kw, 0.0), "inverter") for p in a.pv_arrays]
        items += [(b, (-b.p_discharge_max_kw, b.p_charge_max_kw), "storage") for b in a.batteries]
        for asset, rng, want in items:
            ep = asset.endpoint
            if ep is None or ep.modbus is None:
                continue
            mb = ep.modbus
            path = register_maps.resolve(mb.register_map, self.site.source_file)
            regmap = register_maps.load(path)
            if regmap.role != want:
                from vpp.park.config import ConfigError

                raise ConfigError(
                    [f"{Path(path).name}: role: {asset.name} needs a {want} map, got {regmap.role}"]
                )
            key = (mb.host, mb.port)
            if key not in links:
                links[key] = sunspec.ModbusLink(mb.host, mb.port, self.fd.modbus_timeout_s)
            dev = sunspec.make_device(asset.name, links[key], mb.unit_id, rng, regmap)
            self.devices[asset.name] = dev
            self.status[asset.name] = DeviceStatus(asset.name, "modbus", dev.where)
        self.links = list(links.values())

    def _build_mqtt(self) -> None:
        topics = {}
        q = self.fd.mqtt
        if q is not None and q.park_meter_topic:
            topics[q.park_meter_topic] = PARK_METER
        a = self.site.assets
        for asset in (*a.pv_arrays, *a.batteries, *a.ev_chargers, *a.base_loads):
            if asset.endpoint is not None and asset.endpoint.mqtt_topic:
                topics[asset.endpoint.mqtt_topic] = asset.name
        self.mqtt = None
        if topics and q is not None:
            self.mqtt = MqttTelemetry(q, topics, self.site.location.tz, self._ingest_mqtt)

    def unreached(self) -> list[str]:
        """Controllable assets without an endpoint: their setpoints reach no device."""
        a = self.site.assets
        controllable = [*a.pv_arrays, *a.batteries, *a.ev_chargers, *a.shiftable_loads]
        controllable += [*a.curtailable_loads, *a.pedf_buildings]
        return [x.name for x in controllable if x.name not in self.status]

    def bind_ingest(self, ingest) -> None:
        """The runtime's telemetry path (``Runtime.ingest_checked``) for MQTT readings."""
        self._ingest = ingest

    def _ingest_mqtt(self, rows: list[dict[str, Any]], source: str):
        """Store the readings through the runtime's checks; only the readings it accepted
        feed the month's peak and the tracking loop (an implausible meter reading must
        neither set a peak nor move a battery). The store down: nothing feeds them."""
        if self._ingest is None:
            raise RuntimeError("no telemetry store bound yet")
        report = self._ingest(rows, source)
        refused = {x.index for x in getattr(report, "refused", ())}
        newest = None
        for i, r in enumerate(rows):
            if r["asset"] != PARK_METER or i in refused:
                continue
            self.peak.add(r["ts"], r.get("p_kw"))
            if r.get("p_kw") is not None and (newest is None or r["ts"] >= newest["ts"]):
                newest = r
        if newest is not None:  # a batch's older readings are superseded by its newest
            try:
                self.tracker.on_reading(newest["ts"], newest["p_kw"])
            except Exception:  # the readings are stored whatever the loop does
                log.exception("tracking: park meter reading at %s not used", newest["ts"])
        return report

    def start(self) -> None:
        """Start the OCPP server, the MQTT client; Modbus connects on first use."""
        self.loop = FieldLoop()
        if self.cs is not None:
            self.loop.call(self.cs.start(), 10)
        if self.mqtt is not None:
            self.mqtt.start()

    @property
    def ocpp_port(self) -> int | None:
        return None if self.cs is None else self.cs.port

    def close(self) -> None:
        self.tracker.supersede()
        if self.mqtt is not None:
            self.mqtt.close()
        if self.loop is not None:
            if self.cs is not None:
                try:
                    self.loop.call(self.cs.close(), 5)
                except Exception:
                    log.exception("closing the OCPP server")
            for link in self.links:
                self.loop.loop.call_soon_threadsafe(link.close)
            self.loop.close()
            self.loop = None

    # ---------------------------------------------------------------------------------------
    # State
    # ---------------------------------------------------------------------------------------
    def read_state(self, at: datetime) -> PlantState:
        """Every Modbus device read (at once), the stations' sessions and status, the
        compliance of every connector once per interval."""
        assert self.loop is not None, "FieldDriver.start() first"
        now = self.clock()
        reads = self.loop.call(self._poll(), self.budget_s() + 5.0) if self.devices else {}
        battery_e, stale = {}, set()
        specs = {b.name: b for b in self.site.assets.batteries}
        for name, r in reads.items():
            st = self.status[name]
            if isinstance(r, Exception):
                st.read_fault = str(r)
                log.warning("field: %s held safe: %s", name, r)
                continue
            st.ok(now)
            e = None
            if r.soc_frac is not None and name in specs:
                e = min(max(r.soc_frac, 0.0), 1.0) * specs[name].e_kwh
                battery_e[name] = e
            if r.p_kw is not None:
                self._telemetry.append({"asset": name, "ts": now, "p_kw": r.p_kw, "e_kwh": e})
        for name in self.devices:
            st = self.status[name]
            old = (
                st.last_ok_mono is None
                or time.monotonic() - st.last_ok_mono > self.fd.stale_after_s
            )
            if st.fault or old:
                stale.add(name)
        sessions, assumed, stale_ev = (), [], set()
        if self.cs is not None:
            sessions, assumed, stale_ev = self.loop.call(self._ocpp_state(at), 10)
        for name in sorted(stale & set(specs)):
            # Its SOC is unknown and it is held at 0 kW after the solve: planned empty, so
            # that the plan counts on no discharge (a DR cap, a peak) it cannot command.
            battery_e[name] = specs[name].e_min_kwh
            assumed.append(Assumption(name, "e_kwh", battery_e[name], UNREACHED_BATTERY))
        assumed += self._peak_assumption()
        return PlantState(
            at=at,
            battery_e_kwh=battery_e,
            ev_sessions=tuple(sessions),
            month_peak_import_kw=self.peak.peak_kw,
            stale_assets=frozenset(stale | stale_ev),
            assumptions=tuple(assumed),
        )

    def _peak_assumption(self) -> list[Assumption]:
        if self.mqtt is None or not self.fd.mqtt or not self.fd.mqtt.park_meter_topic:
            return [Assumption(PARK_METER, "month_peak_import_kw", 0.0, "no park meter read")]
        basis = "peak of the park meter's interval means since the service started"
        return [Assumption(PARK_METER, "month_peak_import_kw", self.peak.peak_kw, basis)]

    async def _poll(self) -> dict[str, Any]:
        """Every device read at once (one after the other per connection), within
        :meth:`budget_s`: a device not read by then failed, and the cycle goes on."""
        tasks = {
            n: asyncio.ensure_future(self._guard(d.read(), n)) for n, d in self.devices.items()
        }
        await _bounded(tasks.values(), self.budget_s())
        return {n: _outcome(t, n, self.budget_s()) for n, t in tasks.items()}

    def budget_s(self) -> float:
        """What reading or sending to all devices may take, whatever hangs: a station call
        and a few Modbus requests, each with its time-out, and a margin."""
        ocpp_s = self.fd.ocpp.call_timeout_s * 2 if self.fd.ocpp else 0.0
        return max(ocpp_s, self.fd.modbus_timeout_s * 8) + 2.0

    async def _guard(self, coro, name: str, timeout_s: float | None = None):
        t = timeout_s or self.fd.modbus_timeout_s * 3 + 1.0
        try:
            return await asyncio.wait_for(coro, t)
        except sunspec.DeviceError:
            raise
        except TimeoutError:
            raise sunspec.DeviceError(f"{name}: no answer within {t:g} s") from None
        except limits.LimitError as exc:
            raise sunspec.DeviceError(f"{name}: not written: {exc}") from None
        except Exception as exc:
            raise sunspec.DeviceError(f"{name}: {type(exc).__name__}: {exc}") from None

    async def _ocpp_state(self, at: datetime):
        cs, cfg = self.cs, self.fd.ocpp
        assert cs is not None and cfg is not None
        k = at - (at - datetime(1970, 1, 1, tzinfo=UTC)) % self.step
        evaluate = self._evaluated != k
        self._evaluated = k
        sessions, assumed, stale = [], [], set()
        now = self.clock()
        for name, ch in self.chargers.items():
            o = ch.endpoint.ocpp
            st = cs.station(o.station)
            c = st.connector(o.connector)
            status = self.status[name]
            if not cs.online(o.station):
                status.read_fault = "station offline" if st.connects else "station never connected"
            elif c.status in UNHEALTHY_CONNECTOR:
                status.read_fault = f"connector {c.status}"
            else:
                status.ok(now)
            if status.fault:  # offline, faulted, or its last profile not accepted: held safe
                stale.add(name)
            if evaluate and not c.compliance.noncompliant:
                verdict = ocpp_state.evaluate(c, cfg, at)
                if c.compliance.noncompliant and verdict:
                    log.warning(
                        "OCPP: %s (station %s) exceeds its charging profile for %d intervals "
                        "(metered %.1f kW, limit %.1f kW): planned at its real draw",
                        name,
                        o.station,
                        c.compliance.over_streak,
                        c.compliance.last_mean_kw,
                        c.compliance.last_limit_kw,
                    )
            if c.tx is None:
                continue
            s, a = ocpp_state.session_of(st, c, name, at, self.step, cfg)
            if c.compliance.noncompliant and c.p_kw is not None:
                s, why = ocpp_state.planned_session(
                    s, c.p_kw, ch.p_max_kw, at, self.step, o.station
                )
                a.append(why)
            sessions.append(s)
            assumed += a
        self._telemetry += cs.telemetry
        cs.telemetry = []
        return sessions, assumed, stale

    def telemetry(self, at: datetime) -> list[dict[str, Any]]:
        """Readings since the last call (Modbus reads and OCPP meter values), for the
        runtime to store through its telemetry path."""
        out, self._telemetry = self._telemetry, []
        return out

    # ---------------------------------------------------------------------------------------
    # Setpoints
    # ---------------------------------------------------------------------------------------
    def apply(self, at: datetime, setpoints_kw: dict[str, float]) -> None:
        """Send every device its setpoint at once; a device's failure is recorded, never
        raised (the others are sent theirs)."""
        assert self.loop is not None, "FieldDriver.start() first"
        self.tracker.supersede()  # nothing computed for the last interval goes out after this
        t0 = self._fanout_t0 = time.perf_counter()
        self.last_latency_s = {}
        # + one tracked write: the fan-out first waits for one in flight (tracking_loop)
        wait_s = self.budget_s() + self._write_timeout_s() + 5.0
        self.loop.call(self._fan_out(at, dict(setpoints_kw)), wait_s)
        self.last_fanout_s = time.perf_counter() - t0

    async def _fan_out(self, at: datetime, sp: dict[str, float]) -> None:
        cpu0 = time.thread_time()
        try:
            await self.tracker.quiesce()  # a tracked write in flight ends before any of these
            await self._fan_out_all(at, sp)
        finally:  # the event loop's own CPU for it (the rest of the wall time is waiting)
            self.last_fanout_cpu_s = time.thread_time() - cpu0

    async def _fan_out_all(self, at: datetime, sp: dict[str, float]) -> None:
        tasks = []
        by_station: dict[str, list[tuple[str, float]]] = {}
        for name, ch in self.chargers.items():
            if name in sp:
                by_station.setdefault(ch.endpoint.ocpp.station, []).append((name, sp[name]))
                self._last_cmd[name] = (sp[name], at)
        tasks += [self._send_station(sid, items, at) for sid, items in by_station.items()]
        by_link: dict[int, list[str]] = {}
        for name, dev in self.devices.items():
            if dev.kind == "battery" and name not in sp:
                continue
            by_link.setdefault(id(dev.link), []).append(name)
        tasks += [self._send_link(names, sp, at) for names in by_link.values()]
        if not await _bounded([asyncio.ensure_future(t) for t in tasks], self.budget_s()):
            for name in sp:
                st = self.status.get(name)
                if st is not None and st.sent_for != at and not st.fault:
                    st.write_fault = f"not sent within the fan-out's {self.budget_s():g} s"
            log.error("field: the fan-out of %s did not finish within %.0f s", at, self.budget_s())

    async def _send_link(self, names: list[str], sp: dict[str, float], at: datetime) -> None:
        """The devices behind one Modbus connection, one after the other."""
        for name in names:
            p = sp.get(name)  # PV without a setpoint: the limit released
            try:
                await self._write_device(name, p, at)
            except sunspec.DeviceError as exc:
                what = "the limit's release" if p is None else f"setpoint {p:.1f} kW"
                log.warning("field: %s: %s not delivered: %s", name, what, exc)
                continue
            self.last_latency_s[name] = time.perf_counter() - self._fanout_t0

    async def _write_device(self, name: str, p: float | None, at: datetime) -> sunspec.WriteResult:
        """One device's write, guarded (time-out, limits), with its status bookkeeping;
        raises :class:`sunspec.DeviceError` after recording it."""
        dev, st = self.devices[name], self.status[name]
        try:
            wr = await self._guard(dev.write(p), name, self._write_timeout_s())
        except sunspec.DeviceError as exc:
            st.write_fault = str(exc)
            raise
        st.write_fault = ""
        st.sent_kw, st.sent_for, st.detail = wr.sent_kw, at, wr.detail
        st.clipped += int(wr.clipped)
        if wr.clipped:
            log.warning(
                "field: %s: %s kW is outside the device's limits: sent %s", name, p, wr.detail
            )
        return wr

    # ---------------------------------------------------------------------------------------
    # Grid-point tracking (between cycles)
    # ---------------------------------------------------------------------------------------
    def track(self, at: datetime, target: TrackingTarget | None) -> None:
        """Hold the park meter to ``target`` from the meter's readings until the next
        cycle's :meth:`apply`; None (or an interval already over) stops tracking and the
        batteries keep the cycle's setpoints. Thread-safe."""
        self.tracker.set_target(at, target)

    def tracking_status(self) -> dict[str, Any]:
        """What the tracking loop did this interval and the last (JSON-ready)."""
        return self.tracker.status()

    async def _track_write(self, name: str, p_kw: float, at: datetime) -> float:
        wr = await self._write_device(name, p_kw, at)
        assert wr.sent_kw is not None  # a battery's write always stands for a power
        return wr.sent_kw

    def _track_usable(self, name: str) -> bool:
        dev, st = self.devices.get(name), self.status.get(name)
        return dev is not None and dev.kind == "battery" and st is not None and not st.fault

    def _soon(self, coro) -> None:
        loop = self.loop
        if loop is None:  # not started, or closed: nothing is sent
            coro.close()
            raise RuntimeError("the field driver is not started")
        loop.soon(coro)

    def _write_timeout_s(self) -> float:
        """What one Modbus device's write (limits read, enable, setpoint, read-back) may take."""
        return self.fd.modbus_timeout_s * 6 + 1.0

    def _charger_command(self, name: str, p_kw: float, unit: str) -> tuple[float, float]:
        ch = self.chargers[name]
        rng = (-ch.p_max_kw if ch.v2g else 0.0, ch.p_max_kw)
        o, cfg = ch.endpoint.ocpp, self.fd.ocpp
        assert cfg is not None
        return limits.charger_limit(p_kw, rng, unit, cfg.voltage_v, o.phases)

    async def _send_station(self, sid: str, items: list[tuple[str, float]], at: datetime) -> None:
        """A station's connectors, then its maximum (their sum), one call after the other
        (OCPP allows one outstanding call per connection)."""
        cs = self.cs
        assert cs is not None
        st = cs.station(sid)
        if not cs.online(sid):
            for name, _ in items:
                self.status[name].detail = "station offline: not sent (held safe)"
            return
        unit, total, delivered = st.unit, 0.0, 0
        for name, p in items:
            status = self.status[name]
            try:
                value, allowed_kw = self._charger_command(name, p, unit)
                cid = self.chargers[name].endpoint.ocpp.connector
                answer = await asyncio.wait_for(
                    cs.set_limit(sid, cid, value, unit), self.fd.ocpp.call_timeout_s + 1
                )
            except Exception as exc:
                status.write_fault = f"charging profile not delivered: {type(exc).__name__}: {exc}"
                log.warning("OCPP: %s (%s): %s", name, sid, status.write_fault)
                continue
            total, delivered = total + value, delivered + 1
            if answer != "Accepted":
                status.write_fault = f"charging profile {answer}"
                log.warning("OCPP: %s (%s): %s", name, sid, status.write_fault)
                continue
            status.write_fault = ""
            c = st.connector(cid)
            if c.limit_kw != allowed_kw:
                c.samples = []  # metering against the new limit starts now
            c.limit_kw, c.limit_unit, c.limit_value, c.limit_for = allowed_kw, unit, value, at
            status.sent_kw, status.sent_for = allowed_kw, at
            status.detail = f"TxDefaultProfile {value:g} {unit}"
            self.last_latency_s[name] = time.perf_counter() - self._fanout_t0
        if not delivered:
            return  # no connector took its profile: the station is not listening
        if st.max_sent == (round(total, 1), unit):
            return  # unchanged since it took it (a connect or a boot forgets it)
        try:
            answer = await asyncio.wait_for(
                cs.set_limit(sid, 0, total, unit), self.fd.ocpp.call_timeout_s + 1
            )
            if answer == "Accepted":
                st.max_kw = total / 1000.0 if unit == "W" else None
                st.max_sent = (round(total, 1), unit)
            else:
                st.last_error = f"station maximum {answer}"
        except Exception as exc:
            st.last_error = f"station maximum not delivered: {type(exc).__name__}: {exc}"
            log.warning("OCPP: %s: %s", sid, st.last_error)

    def _resend(self, sid: str) -> None:
        """A station (re)connected or booted: its last setpoints again (called on the loop)."""
        items = [
            (name, self._last_cmd[name][0])
            for name, ch in self.chargers.items()
            if ch.endpoint.ocpp.station == sid and name in self._last_cmd
        ]
        if items:
            at = max(self._last_cmd[n][1] for n, _ in items)
            asyncio.get_running_loop().create_task(self._send_station(sid, items, at))

    # ---------------------------------------------------------------------------------------
    # Health
    # ---------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Every device's state, the non-compliant chargers, the OCPP server, MQTT and the
        tracking loop."""
        out: dict[str, Any] = {
            "devices": {n: s.as_dict() for n, s in sorted(self.status.items())},
            "faults": {n: s.fault for n, s in sorted(self.status.items()) if s.fault},
            "noncompliant": {},
            "fanout_s": self.last_fanout_s,
            "tracking": self.tracking_status(),  # the local loop on the park meter
        }
        if self.cs is not None:
            for name, ch in self.chargers.items():
                o = ch.endpoint.ocpp
                c = self.cs.station(o.station).connector(o.connector)
                comp = c.compliance
                if comp.noncompliant:
                    out["noncompliant"][name] = {
                        "station": o.station,
                        "since": comp.since.isoformat() if comp.since else None,
                        "metered_kw": comp.last_mean_kw,
                        "limit_kw": comp.last_limit_kw,
                    }
            sts = list(self.cs.stations.values())
            out["ocpp"] = {
                "port": self.cs.port,
                "stations": len(self.cs.stations),
                "connected": sum(1 for s in sts if s.connected),
                "refused": [{"station": s, "reason": r} for s, r in self.cs.refused[-10:]],
            }
        if self.mqtt is not None:
            out["mqtt"] = self.mqtt.health()
        return out
