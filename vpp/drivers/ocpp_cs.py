"""park-vpp as the OCPP central system (CSMS) of the park's charge points, OCPP 1.6J and
2.0.1, on the ``ocpp`` package over ``websockets``.

Charge points connect to ``ws://HOST:PORT/ocpp/{station}`` with the subprotocol
``ocpp1.6`` or ``ocpp2.0.1``, authenticated by OCPP Security Profile 1 (HTTP basic auth,
:mod:`vpp.drivers.ocpp_auth`). What they say fills :class:`vpp.drivers.ocpp_state.Station`:

- BootNotification (accepted, heartbeat interval), Heartbeat, StatusNotification;
- Authorize (accepted: the park's chargers serve its own fleets; park-vpp keeps no id-tag
  list), StartTransaction / StopTransaction (1.6), TransactionEvent (2.0.1), MeterValues
  (power and the energy register), NotifyEVChargingNeeds (2.0.1: departure and energy);
- after a boot or a connection, the rate units the station takes in profiles (1.6
  ``GetConfiguration`` ``ChargingScheduleAllowedChargingRateUnit``; 2.0.1 ``GetVariables``
  ``SmartChargingCtrlr.RateUnit``; A when it does not say), and its last setpoint again.

A reconnecting station replaces its old connection; its transactions live on (a boot while
a transaction runs keeps the session; ``Available`` on the connector ends it). Setpoints
go out as charging profiles (:meth:`CentralSystem.set_limit`): a ``TxDefaultProfile`` per
connector (1.6) or EVSE (2.0.1), which governs the running transaction and the next one,
and the station maximum (``ChargePointMaxProfile`` / ``ChargingStationMaxProfile`` on
connector/EVSE 0), in W when the station takes W, else in A.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ocpp.messages import Call, MessageType
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as res16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as res201

from vpp.drivers import ocpp_auth
from vpp.drivers.ocpp_state import (
    ENERGY,
    POWER,
    Compliance,
    Station,
    Tx,
    sampled_values,
    to_kw,
    to_wh,
)
from vpp.park.model import OcppServer

log = logging.getLogger(__name__)
SUBPROTOCOLS = ["ocpp2.0.1", "ocpp1.6"]
PROFILE_TX_DEFAULT = 100  # + connector: one profile id per connector, replaced each cycle
PROFILE_STATION_MAX = 1
# 1.6 transaction ids are 32-bit integers: unique across restarts of the central system
# (8 per second of wall time since 2026-01-01), which session ids stored earlier rely on.
_TX_EPOCH = 1_767_225_600


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_ts(text: str | None, fallback: datetime) -> datetime:
    if not text:
        return fallback
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class CentralSystem:
    """The OCPP server and the state of every station (used on its event loop only).

    Parameters
    ----------
    cfg : OcppServer
        Listen address, auth and the session and compliance defaults.
    keys : dict or None
        Station id -> key hash (auth basic); None: no authentication (loopback only).
    chargers : dict
        (station, connector) -> charger asset name.
    clock : callable
        The service's clock (tz-aware now) for what the stations do not stamp.
    """

    def __init__(
        self,
        cfg: OcppServer,
        keys: dict[str, str] | None,
        chargers: dict[tuple[str, int], str],
        clock: Callable[[], datetime],
    ):
        self.cfg, self.keys, self.chargers, self.clock = cfg, keys, chargers, clock
        self.stations: dict[str, Station] = {}
        for sid, cid in chargers:
            self.station(sid).connector(cid)
        self._cps: dict[str, Cp16 | Cp201] = {}
        self._server = None
        self.port: int | None = None
        self.refused: list[tuple[str, str]] = []  # (station, reason) of refused connections
        self.telemetry: list[dict] = []  # readings {asset, ts, p_kw} not yet handed over
        self._tx_ids = itertools.count((int(time.time()) - _TX_EPOCH) * 8)
        self.resend: Callable[[str], None] | None = None  # set by the field driver

    def station(self, sid: str) -> Station:
        return self.stations.setdefault(sid, Station(sid))

    # ---------------------------------------------------------------------------------------
    # Server
    # ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        from websockets.asyncio.server import serve

        # The ocpp package logs every message at INFO: 1,000 lines a fan-out to 500
        # stations. What a station did that matters is logged here, once.
        logging.getLogger("ocpp").setLevel(logging.WARNING)

        def refused(sid: str, reason: str) -> None:
            self.refused.append((sid, reason))
            self.refused = self.refused[-100:]
            log.warning("OCPP: refused connection of %s: %s", sid, reason)

        self._server = await serve(
            self._handler,
            self.cfg.host,
            self.cfg.port,
            subprotocols=SUBPROTOCOLS,
            process_request=ocpp_auth.make_process_request(self.keys, refused),
            ping_interval=20,
            ping_timeout=20,
            max_size=2**20,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("OCPP central system on ws://%s:%d/ocpp/{station}", self.cfg.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handler(self, ws) -> None:
        sid = ocpp_auth.station_of(ws.request.path)
        proto = ws.subprotocol
        if sid is None or proto not in SUBPROTOCOLS:
            await ws.close(1002, "expected subprotocol ocpp1.6 or ocpp2.0.1")
            return
        st = self.station(sid)
        old = self._cps.get(sid)
        if old is not None:  # a reconnect: the old connection is gone for the station
            await old._connection.close(1000, "replaced by a new connection")
        cls = _Cp16 if proto == "ocpp1.6" else _Cp201
        cp = cls(sid, ws, response_timeout=self.cfg.call_timeout_s)
        cp.cs = self
        self._cps[sid] = cp
        st.version = proto.removeprefix("ocpp")
        st.connected, st.last_seen = True, time.monotonic()
        st.max_sent = None  # a new connection: send the station maximum again
        st.connects += 1
        log.info("OCPP: %s connected (%s)", sid, proto)
        asyncio.get_running_loop().create_task(self._on_connect(sid))
        try:
            await cp.start()
        except Exception as exc:  # ConnectionClosed and the like: the station is gone
            log.info("OCPP: %s disconnected (%s)", sid, type(exc).__name__)
        finally:
            if self._cps.get(sid) is cp:
                del self._cps[sid]
                st.connected = False

    async def _on_connect(self, sid: str) -> None:
        """Units the station takes, then its setpoint again (a reconnect or a boot may have
        lost its profiles)."""
        await asyncio.sleep(0)  # let the station's first messages through
        try:
            await self.query_units(sid)
        except Exception as exc:
            log.info("OCPP: %s: no rate units (%s); A assumed", sid, exc)
        if self.resend is not None:
            self.resend(sid)

    def seen(self, sid: str) -> Station:
        st = self.station(sid)
        st.last_seen = time.monotonic()
        return st

    def online(self, sid: str) -> bool:
        st = self.stations.get(sid)
        return st is not None and st.online(time.monotonic(), self.cfg.offline_after_s)

    # ---------------------------------------------------------------------------------------
    # What stations report
    # ---------------------------------------------------------------------------------------
    def on_boot(self, sid: str, vendor: str, model: str) -> dict:
        st = self.seen(sid)
        st.boots += 1
        st.vendor, st.model = vendor, model
        st.max_sent = None  # a boot may have lost its profiles
        for c in st.connectors.values():  # a boot (new firmware?) is judged afresh
            c.compliance = Compliance()
        running = [c for c, x in st.connectors.items() if x.tx is not None]
        if running:
            log.info("OCPP: %s booted with transactions on %s: kept", sid, running)
        return {"current_time": _iso(self.clock()), "interval": self.cfg.heartbeat_interval_s}

    def on_status(self, sid: str, cid: int, status: str, ts: str | None) -> None:
        st = self.seen(sid)
        c = st.connector(cid)
        c.status = status
        if status == "Available" and c.tx is not None:  # the car left while we were away
            log.info("OCPP: %s/%d available: transaction %s ended", sid, cid, c.tx.tx_id)
            c.tx = None

    def start_tx(self, sid: str, cid: int, tx_id: str, ts: datetime, meter_wh, id_tag="") -> None:
        c = self.seen(sid).connector(cid)
        c.tx = Tx(tx_id, cid, ts, meter_wh, meter_wh, id_tag)
        c.status = "Charging"

    def stop_tx(self, sid: str, tx_id: str, meter_wh: float | None) -> None:
        st = self.seen(sid)
        for c in st.connectors.values():
            if c.tx is not None and c.tx.tx_id == tx_id:
                if meter_wh is not None:
                    c.tx.e_wh = meter_wh
                c.tx = None
                c.p_kw = 0.0

    def ensure_tx(self, sid: str, cid: int, tx_id: str) -> None:
        """A transaction reported that was never seen to start (the central system
        restarted while it ran): it begins now, and the session says it was assumed."""
        c = self.seen(sid).connector(cid)
        if c.tx is None or c.tx.tx_id != tx_id:
            c.tx = Tx(tx_id, cid, self.clock(), None, None, start_seen=False)

    def new_tx_id(self) -> int:
        return next(self._tx_ids) % 2**31

    def meter(self, sid: str, cid: int, meter_value: list, tx_id: str | None) -> None:
        st = self.seen(sid)
        if cid == 0:
            return  # the station's main meter: not one charger's
        c = st.connector(cid)
        now = self.clock()
        if tx_id is not None:
            self.ensure_tx(sid, cid, tx_id)
        asset = self.chargers.get((sid, cid))
        for ts, measurand, value, unit in sampled_values(meter_value):
            t = _parse_ts(ts, now)
            if measurand == POWER:
                c.p_kw, c.p_ts = to_kw(value, unit), t
                c.samples.append(c.p_kw)
                if asset is not None:
                    self.telemetry.append({"asset": asset, "ts": t, "p_kw": c.p_kw})
            elif measurand == ENERGY and c.tx is not None:
                wh = to_wh(value, unit)
                if c.tx.meter_start_wh is None:
                    c.tx.meter_start_wh = wh
                c.tx.e_wh = wh
        if len(self.telemetry) > 100_000:  # never handed over (no cycle): keep the newest
            del self.telemetry[:50_000]

    def ev_needs(self, sid: str, evse: int, needs: dict) -> None:
        c = self.seen(sid).connector(evse)
        if c.tx is None:
            return
        if needs.get("departure_time"):
            c.tx.departure = _parse_ts(needs["departure_time"], self.clock())
        ac = needs.get("ac_charging_parameters") or needs.get("dc_charging_parameters") or {}
        if ac.get("energy_amount") is not None:
            c.tx.e_needed_kwh = float(ac["energy_amount"]) / 1000.0

    # ---------------------------------------------------------------------------------------
    # What the central system asks
    # ---------------------------------------------------------------------------------------
    async def query_units(self, sid: str) -> tuple[str, ...]:
        cp, st = self._cps[sid], self.station(sid)
        if isinstance(cp, _Cp16):
            r = await cp.call(
                call16.GetConfiguration(key=["ChargingScheduleAllowedChargingRateUnit"])
            )
            text = next((k.get("value", "") for k in r.configuration_key or [] if "value" in k), "")
        else:
            r = await cp.call(
                call201.GetVariables(
                    get_variable_data=[
                        {
                            "component": {"name": "SmartChargingCtrlr"},
                            "variable": {"name": "RateUnit"},
                        }
                    ]
                )
            )
            text = next((x.get("attribute_value", "") for x in r.get_variable_result), "")
        parts = {x.strip() for x in str(text).split(",")}
        units = tuple(
            u for u, names in (("W", {"Power", "W"}), ("A", {"Current", "A"})) if parts & names
        )
        st.units = units or ("A",)
        return st.units

    async def set_limit(self, sid: str, cid: int, limit: float, unit: str) -> str:
        """Send a connector's (EVSE's) TxDefaultProfile, or the station maximum with
        ``cid`` 0; the station's answer (``Accepted``, ``Rejected``).

        The request is built here as OCPP JSON (:func:`profile_request`; the tests check
        its payloads against the OCPP JSON schemas) and sent as is: the library's dataclass
        round trip and per-message schema validation cost more than the round trip itself
        in a fan-out to 500 stations."""
        cp = self._cps.get(sid)
        if cp is None:
            raise ConnectionError(f"station {sid} is not connected")
        version = "1.6" if isinstance(cp, _Cp16) else "2.0.1"
        start = self.clock() - timedelta(minutes=1)
        answer = await _call_raw(
            cp, "SetChargingProfile", profile_request(version, cid, limit, unit, start)
        )
        return str(answer.get("status", "Rejected"))


async def _call_raw(cp, action: str, payload: dict) -> dict:
    """A CALL with a ready OCPP-JSON (camelCase) payload; the CALLRESULT's payload. One
    outstanding call per connection, as ``ChargePoint.call`` keeps it (its lock, its
    response queue)."""
    call = Call(unique_id=str(uuid.uuid4()), action=action, payload=payload)
    async with cp._call_lock:
        await cp._connection.send(call.to_json())
        response = await cp._get_specific_response(call.unique_id, cp._response_timeout)
    if response.message_type_id == MessageType.CallError:
        raise response.to_exception()
    return response.payload


def profile_request(version: str, cid: int, limit: float, unit: str, start: datetime) -> dict:
    """The SetChargingProfile payload (OCPP JSON): a TxDefaultProfile on connector/EVSE
    ``cid`` or, for ``cid`` 0, the station maximum (ChargePointMaxProfile /
    ChargingStationMaxProfile), one absolute period of ``limit`` (``unit`` W or A) from
    ``start``, replacing the last one (the same profile id and stack level)."""
    pid = PROFILE_STATION_MAX if cid == 0 else PROFILE_TX_DEFAULT + cid
    sched = {
        "chargingRateUnit": unit,
        "startSchedule": _iso(start),
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(limit, 1)}],
    }
    if version == "1.6":
        purpose = "ChargePointMaxProfile" if cid == 0 else "TxDefaultProfile"
        profile = {
            "chargingProfileId": pid,
            "stackLevel": 0,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": sched,
        }
        return {"connectorId": cid, "csChargingProfiles": profile}
    purpose = "ChargingStationMaxProfile" if cid == 0 else "TxDefaultProfile"
    profile = {
        "id": pid,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": pid, **sched}],
    }
    return {"evseId": cid, "chargingProfile": profile}


class _Cp16(Cp16):
    """The central system's side of one OCPP 1.6J connection."""

    cs: CentralSystem

    @on("BootNotification")
    def _boot(self, charge_point_vendor, charge_point_model, **_):
        r = self.cs.on_boot(self.id, charge_point_vendor, charge_point_model)
        return res16.BootNotification(status="Accepted", **r)

    @on("Heartbeat")
    def _heartbeat(self):
        self.cs.seen(self.id)
        return res16.Heartbeat(current_time=_iso(self.cs.clock()))

    @on("StatusNotification")
    def _status(self, connector_id, error_code, status, timestamp=None, **_):
        self.cs.on_status(self.id, connector_id, status, timestamp)
        return res16.StatusNotification()

    @on("Authorize")
    def _authorize(self, id_tag):
        self.cs.seen(self.id)
        return res16.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    def _start(self, connector_id, id_tag, meter_start, timestamp, **_):
        tx_id = self.cs.new_tx_id()
        ts = _parse_ts(timestamp, self.cs.clock())
        self.cs.start_tx(self.id, connector_id, str(tx_id), ts, float(meter_start), id_tag)
        return res16.StartTransaction(transaction_id=tx_id, id_tag_info={"status": "Accepted"})

    @on("StopTransaction")
    def _stop(self, meter_stop, timestamp, transaction_id, **_):
        self.cs.stop_tx(self.id, str(transaction_id), float(meter_stop))
        return res16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def _meter(self, connector_id, meter_value, transaction_id=None, **_):
        tx = None if transaction_id is None else str(transaction_id)
        self.cs.meter(self.id, connector_id, meter_value, tx)
        return res16.MeterValues()

    @after("BootNotification")
    async def _after_boot(self, **_):
        if self.cs.resend is not None:
            self.cs.resend(self.id)


class _Cp201(Cp201):
    """The central system's side of one OCPP 2.0.1 connection."""

    cs: CentralSystem

    @on("BootNotification")
    def _boot(self, charging_station, reason, **_):
        r = self.cs.on_boot(
            self.id, charging_station.get("vendor_name", ""), charging_station.get("model", "")
        )
        return res201.BootNotification(status="Accepted", **r)

    @on("Heartbeat")
    def _heartbeat(self, **_):
        self.cs.seen(self.id)
        return res201.Heartbeat(current_time=_iso(self.cs.clock()))

    @on("StatusNotification")
    def _status(self, timestamp, connector_status, evse_id, connector_id, **_):
        self.cs.on_status(self.id, evse_id, connector_status, timestamp)
        return res201.StatusNotification()

    @on("Authorize")
    def _authorize(self, id_token, **_):
        self.cs.seen(self.id)
        return res201.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    def _tx_event(self, event_type, timestamp, trigger_reason, seq_no, transaction_info, **kw):
        cs, sid = self.cs, self.id
        tx_id = str(transaction_info["transaction_id"])
        evse = (kw.get("evse") or {}).get("id")
        if evse is None:  # later events may omit the EVSE: find the transaction
            st = cs.seen(sid)
            evse = next((c for c, x in st.connectors.items() if x.tx and x.tx.tx_id == tx_id), 1)
        ts = _parse_ts(timestamp, cs.clock())
        if event_type == "Started":
            tag = (kw.get("id_token") or {}).get("id_token", "")
            cs.start_tx(sid, evse, tx_id, ts, None, tag)
        else:
            cs.ensure_tx(sid, evse, tx_id)
        if kw.get("meter_value"):
            cs.meter(sid, evse, kw["meter_value"], tx_id)
        if event_type == "Ended":
            cs.stop_tx(sid, tx_id, None)
        cs.seen(sid)
        if kw.get("id_token"):
            return res201.TransactionEvent(id_token_info={"status": "Accepted"})
        return res201.TransactionEvent()

    @on("MeterValues")
    def _meter(self, evse_id, meter_value, **_):
        self.cs.meter(self.id, evse_id, meter_value, None)
        return res201.MeterValues()

    @on("NotifyEVChargingNeeds")
    def _needs(self, charging_needs, evse_id, **_):
        self.cs.ev_needs(self.id, evse_id, charging_needs)
        return res201.NotifyEVChargingNeeds(status="Accepted")

    @after("BootNotification")
    async def _after_boot(self, **_):
        if self.cs.resend is not None:
            self.cs.resend(self.id)
