"""Real protocol peers on loopback for the field driver's tests, the end-to-end test and
``bench/field.py``: a ``pymodbus`` server holding SunSpec register images (built from the
pysunspec2 model definitions) and a vendor-map PCS, with a little physics; OCPP 1.6J and
2.0.1 charge points built on the ``ocpp`` package's own ChargePoint (as clients), one of
which can ignore its charging profile. Nothing here mocks a protocol.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as res16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as res201
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from vpp.drivers.ocpp_auth import basic_header

BASE = 40000


class PeerLoop:
    """An event loop in a thread for the peers (the service's loop is another one)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout_s: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def run_all(self, coros, timeout_s: float = 30.0, return_exceptions: bool = False):
        """Several coroutines at once on the peers' loop; their results."""

        async def together():
            return await asyncio.gather(*coros, return_exceptions=return_exceptions)

        return self.run(together(), timeout_s)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --------------------------------------------------------------------------------------------
# SunSpec register images
# --------------------------------------------------------------------------------------------
def _points(model_id: int) -> list[dict]:
    import sunspec2

    path = Path(sunspec2.__file__).parent / "models" / "json" / f"model_{model_id}.json"
    return json.loads(path.read_text())["group"]["points"]


def _words(value: int, size: int, signed: bool) -> list[int]:
    if size == 1:
        return [value & 0xFFFF]
    u = value & 0xFFFFFFFF
    return [u >> 16, u & 0xFFFF]


def model_block(model_id: int, values: dict[str, int]) -> tuple[list[int], dict[str, int]]:
    """The registers of one model (its ID and L first) with ``values`` (raw integers) set
    and every other point "not implemented"; and each point's offset."""
    regs: list[int] = []
    offsets: dict[str, int] = {}
    pts = _points(model_id)
    length = sum(int(p["size"]) for p in pts) - 2
    for p in pts:
        size, name, tp = int(p["size"]), p["name"], p["type"]
        offsets[name] = len(regs)
        if name == "ID":
            v = model_id
        elif name == "L":
            v = length
        elif name in values:
            v = values[name]
        elif tp in ("int16", "sunssf"):
            v = -0x8000
        elif tp in ("uint16", "enum16", "bitfield16"):
            v = 0xFFFF
        elif tp in ("int32",):
            v = -0x80000000
        elif tp in ("uint32", "enum32", "bitfield32"):
            v = 0xFFFFFFFF
        else:
            v = 0
        regs += _words(v, size, True) if size <= 2 else [0] * size
    return regs, offsets


def sunspec_image(models: list[tuple[int, dict[str, int]]]) -> tuple[list[int], dict]:
    """'SunS', the models, the end marker; and per model its point addresses."""
    regs = [0x5375, 0x6E53]
    where: dict[int, dict[str, int]] = {}
    for mid, values in models:
        block, offsets = model_block(mid, values)
        start = BASE + len(regs)
        where[mid] = {k: start + v for k, v in offsets.items()}
        regs += block
    regs += [0xFFFF, 0]
    return regs, where


def _s16(v: int) -> int:
    return v - 0x10000 if v >= 0x8000 else v


def _s32(hi: int, lo: int) -> int:
    v = (hi << 16) | lo
    return v - 0x100000000 if v >= 0x80000000 else v


@dataclass
class SimUnit:
    """One simulated Modbus device (unit id) with its physics and faults."""

    unit: int
    regs: list[int]
    where: dict
    start: int = BASE
    silent: bool = False  # stops answering (a request waits for ever)
    refuse_writes: bool = False  # answers writes with an exception reply
    delay_s: float = 0.0  # answers every request this late (a slow gateway)
    writes: list[tuple[int, list[int]]] = field(default_factory=list)
    written: asyncio.Event | None = None
    violations: list[str] = field(default_factory=list)  # writes outside the device's limits

    def get(self, addr: int) -> int:
        return self.regs[addr - self.start]

    def put(self, addr: int, value: int) -> None:
        self.regs[addr - self.start] = value & 0xFFFF

    def physics(self) -> None:
        """Update measured values from the control registers (on every read)."""

    def check_write(self, address: int, values: list[int]) -> None:
        """Record a write outside what the device can do (the driver must never make one)."""

    async def action(self, fc, start, address, count, registers, values):
        if self.silent:
            await asyncio.sleep(3600)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if values is not None and fc in (6, 16):
            if self.refuse_writes:
                return ExcCodes.DEVICE_FAILURE
            self.writes.append((address, list(values)))
            self.check_write(address, list(values))
            if self.written is not None:
                self.written.set()
            return None
        self.regs = registers  # the server's own list: physics writes into it
        self.start = start
        self.physics()
        return None


class SimInverter(SimUnit):
    """A SunSpec PV inverter (103 + 120 + 123, or 701 + 702 + 704): W follows the limit."""

    available_w: float = 0.0

    @classmethod
    def build(cls, unit: int, rating_w: int, available_w: float, der: bool = False):
        if der:
            models = [
                (1, {}),
                (701, {"W": 0, "W_SF": 1}),
                (702, {"WMaxRtg": rating_w // 10, "WMax": rating_w // 10, "W_SF": 1}),
                (704, {"WMaxLimPctEna": 0, "WMaxLimPct": 10000, "WMaxLimPct_SF": -2}),
            ]
        else:
            models = [
                (1, {}),
                (103, {"W": 0, "W_SF": 1}),
                (120, {"WRtg": rating_w // 10, "WRtg_SF": 1}),
                (123, {"WMaxLim_Ena": 0, "WMaxLimPct": 1000, "WMaxLimPct_SF": -1}),
            ]
        regs, where = sunspec_image(models)
        dev = cls(unit, regs, where)
        dev.available_w, dev.rating_w, dev.der = available_w, rating_w, der
        return dev

    def limit_pct(self) -> float | None:
        if self.der:
            w = self.where[704]
            if self.get(w["WMaxLimPctEna"]) != 1:
                return None
            return self.get(w["WMaxLimPct"]) * 10.0 ** _s16(self.get(w["WMaxLimPct_SF"]))
        w = self.where[123]
        if self.get(w["WMaxLim_Ena"]) != 1:
            return None
        return self.get(w["WMaxLimPct"]) * 10.0 ** _s16(self.get(w["WMaxLimPct_SF"]))

    def check_write(self, address: int, values: list[int]) -> None:
        w = self.where[704 if self.der else 123]
        if address == w["WMaxLimPct"]:
            pct = values[0] * 10.0 ** _s16(self.get(w["WMaxLimPct_SF"]))
            if not 0.0 <= pct <= 100.0:
                self.violations.append(f"WMaxLimPct {pct} % outside 0..100")

    def physics(self) -> None:
        pct = self.limit_pct()
        w = self.available_w if pct is None else min(self.available_w, self.rating_w * pct / 100)
        self.put(self.where[701 if self.der else 103]["W"], round(w / 10))


class SimVendorPcs(SimUnit):
    """A PCS with the vendor map of configs/registers/vendor_pcs_example.yaml: SOC in 0.1 %
    at 30100, power (W, + discharge) at 30101-30102, limits (10 W) at 30110-30111, the
    setpoint (W, + discharge) at 40100-40101, remote enable at 40102."""

    @classmethod
    def build(cls, unit: int, soc_pct: float, charge_max_w: int, discharge_max_w: int):
        dev = cls(unit, [0] * 10200, {}, start=30000)
        dev.put(30100, round(soc_pct * 10))
        dev.put(30110, charge_max_w // 10)
        dev.put(30111, discharge_max_w // 10)
        return dev

    def setpoint_w(self) -> int:
        return _s32(self.get(40100), self.get(40101))

    def check_write(self, address: int, values: list[int]) -> None:
        if address == 40100:
            w = _s32(values[0], values[1])
            lo, hi = -self.get(30110) * 10, self.get(30111) * 10
            if not lo <= w <= hi:
                self.violations.append(f"p_set {w} W outside [{lo}, {hi}] W")

    def physics(self) -> None:
        p = self.setpoint_w() if self.get(40102) == 1 else 0
        u = p & 0xFFFFFFFF
        self.put(30101, u >> 16)
        self.put(30102, u & 0xFFFF)


class SimSunSpecStorage(SimUnit):
    """A SunSpec storage PCS (701 + 702 + 704 + 713): W (+ discharge) follows WSet."""

    @classmethod
    def build(cls, unit: int, soc_pct: float, charge_max_w: int, discharge_max_w: int):
        regs, where = sunspec_image(
            [
                (1, {}),
                (701, {"W": 0, "W_SF": 1}),
                (
                    702,
                    {
                        "WChaRteMax": charge_max_w // 10,
                        "WDisChaRteMax": discharge_max_w // 10,
                        "W_SF": 1,
                    },
                ),
                (704, {"WSetEna": 0, "WSetMod": 0, "WSet": 0, "WSet_SF": 0}),
                (713, {"SoC": round(soc_pct * 10), "Pct_SF": -1}),
            ]
        )
        return cls(unit, regs, where)

    def setpoint_w(self) -> int:
        w = self.where[704]["WSet"]
        return _s32(self.get(w), self.get(w + 1))

    def check_write(self, address: int, values: list[int]) -> None:
        if address == self.where[704]["WSet"]:
            w = _s32(values[0], values[1])
            lo, hi = (
                -self.get(self.where[702]["WChaRteMax"]) * 10,
                self.get(self.where[702]["WDisChaRteMax"]) * 10,
            )
            if not lo <= w <= hi:
                self.violations.append(f"WSet {w} W outside [{lo}, {hi}] W")

    def physics(self) -> None:
        w = self.where[704]
        on = self.get(w["WSetEna"]) == 1 and self.get(w["WSetMod"]) == 1
        self.put(self.where[701]["W"], round((self.setpoint_w() if on else 0) / 10))


class ModbusPeer:
    """A pymodbus TCP server on 127.0.0.1, an ephemeral port, with several unit ids."""

    def __init__(self, units: list[SimUnit]):
        self.units = {u.unit: u for u in units}
        self.server = None
        self.port = None

    async def start(self) -> int:
        devices = []
        for u in self.units.values():
            u.written = asyncio.Event()
            devices.append(
                SimDevice(
                    id=u.unit,
                    simdata=[SimData(u.start, values=list(u.regs), datatype=DataType.REGISTERS)],
                    action=u.action,
                )
            )
        self.server = ModbusTcpServer(devices, address=("127.0.0.1", 0))
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self.server.shutdown()


# --------------------------------------------------------------------------------------------
# OCPP charge points
# --------------------------------------------------------------------------------------------
class _Handlers16(Cp16):
    sim: ChargePointSim

    @on("SetChargingProfile")
    async def _set(self, connector_id, cs_charging_profiles):
        if self.sim.hang:  # a station that answers a call only after its time-out
            await asyncio.sleep(3)
        self.sim.on_profile(connector_id, cs_charging_profiles, "1.6")
        return res16.SetChargingProfile(status="Accepted")

    @on("GetConfiguration")
    def _config(self, key=None):
        units = {"W": "Power", "A": "Current", "WA": "Current,Power"}[self.sim.units]
        return res16.GetConfiguration(
            configuration_key=[
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": units}
            ]
        )


class _Handlers201(Cp201):
    sim: ChargePointSim

    @on("SetChargingProfile")
    def _set(self, evse_id, charging_profile, **_):
        self.sim.on_profile(evse_id, charging_profile, "2.0.1")
        return res201.SetChargingProfile(status="Accepted")

    @on("GetVariables")
    def _vars(self, get_variable_data, **_):
        units = {"W": "W", "A": "A", "WA": "A,W"}[self.sim.units]
        return res201.GetVariables(
            get_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "attribute_value": units,
                    "component": {"name": "SmartChargingCtrlr"},
                    "variable": {"name": "RateUnit"},
                }
            ]
        )


class _Fast16(_Handlers16):
    """A 1.6 station whose firmware does not schema-check the profiles it takes (the bench:
    500 stations share one CPU here, where each real one has its own)."""

    @on("SetChargingProfile", skip_schema_validation=True)
    async def _set(self, connector_id, cs_charging_profiles):
        self.sim.on_profile(connector_id, cs_charging_profiles, "1.6")
        return res16.SetChargingProfile(status="Accepted")


class _Fast201(_Handlers201):
    @on("SetChargingProfile", skip_schema_validation=True)
    def _set(self, evse_id, charging_profile, **_):
        self.sim.on_profile(evse_id, charging_profile, "2.0.1")
        return res201.SetChargingProfile(status="Accepted")


class ChargePointSim:
    """A charge point (OCPP 1.6J or 2.0.1) with one connector/EVSE per ``connectors``.

    ``follows``: draws min(car demand, profile limit); False: draws the car's demand
    whatever its profile says (a charger known to accept profiles and not follow them).
    """

    def __init__(
        self,
        sid: str,
        version: str,
        url: str,
        key: str | None,
        connectors: int = 1,
        units: str = "W",
        follows: bool = True,
        voltage_v: float = 230.0,
        phases: int = 3,
        validate: bool = True,
        clock: Callable[[], datetime] | None = None,
    ):
        self.sid, self.version, self.url, self.key = sid, version, url, key
        self.clock = clock or (lambda: datetime.now(UTC))  # stamps its messages
        self.connectors, self.units, self.follows = connectors, units, follows
        self.voltage_v, self.phases, self.validate = voltage_v, phases, validate
        self.limits_w: dict[int, float] = {}  # connector (0 = station) -> W
        self.profiles: list[tuple[int, dict]] = []
        self.profile_times: list[float] = []  # monotonic time each profile arrived
        self.demand_w: dict[int, float] = {}
        self.energy_wh: dict[int, float] = dict.fromkeys(range(1, connectors + 1), 0.0)
        self.tx: dict[int, str] = {}
        self.cp = None
        self.ws = None
        self._task = None
        self.got_profile = asyncio.Event()
        self.closed = asyncio.Event()
        self.hang = False

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat().replace("+00:00", "Z")

    def on_profile(self, cid: int, profile: dict, version: str) -> None:
        sched = profile["charging_schedule"]
        sched = sched[0] if isinstance(sched, list) else sched
        limit = float(sched["charging_schedule_period"][0]["limit"])
        unit = sched["charging_rate_unit"]
        w = limit if unit == "W" else limit * self.voltage_v * self.phases
        self.limits_w[cid] = w
        self.profiles.append((cid, profile))
        self.profile_times.append(time.monotonic())
        self.got_profile.set()

    def draw_w(self, cid: int) -> float:
        want = self.demand_w.get(cid, 0.0) if cid in self.tx else 0.0
        if not self.follows:
            return want
        lim = min(self.limits_w.get(cid, float("inf")), self.limits_w.get(0, float("inf")))
        return min(want, lim)

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"Authorization": basic_header(self.sid, self.key)} if self.key else {}
        proto = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        self.ws = await connect(
            f"{self.url}/{self.sid}", subprotocols=[proto], additional_headers=headers
        )
        if self.validate:
            cls = _Handlers16 if self.version == "1.6" else _Handlers201
        else:
            cls = _Fast16 if self.version == "1.6" else _Fast201
        self.cp = cls(self.sid, self.ws, response_timeout=10)
        self.cp.sim = self
        self.closed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self):
        try:
            await self.cp.start()
        except Exception:
            pass
        finally:
            self.closed.set()

    async def boot(self) -> None:
        if self.version == "1.6":
            await self.cp.call(
                call16.BootNotification(charge_point_model="Sim-16", charge_point_vendor="Loop")
            )
            for c in range(1, self.connectors + 1):
                await self.cp.call(
                    call16.StatusNotification(
                        connector_id=c, error_code="NoError", status="Available"
                    )
                )
        else:
            await self.cp.call(
                call201.BootNotification(
                    charging_station={"model": "Sim-201", "vendor_name": "Loop"},
                    reason="PowerUp",
                )
            )
            for c in range(1, self.connectors + 1):
                await self.cp.call(
                    call201.StatusNotification(
                        timestamp=self._now(),
                        connector_status="Available",
                        evse_id=c,
                        connector_id=1,
                    )
                )

    async def plug_in(
        self,
        cid: int,
        demand_w: float,
        departure: datetime | None = None,
        e_needed_wh: float | None = None,
    ) -> str:
        self.demand_w[cid] = demand_w
        if self.version == "1.6":
            await self.cp.call(call16.Authorize(id_tag="TAG-" + self.sid))
            r = await self.cp.call(
                call16.StartTransaction(
                    connector_id=cid,
                    id_tag="TAG-" + self.sid,
                    meter_start=int(self.energy_wh[cid]),
                    timestamp=self._now(),
                )
            )
            self.tx[cid] = str(r.transaction_id)
            return self.tx[cid]
        tx = f"{self.sid}-{cid}-{len(self.profiles)}-{id(self)}"
        self.tx[cid] = tx
        await self.cp.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=self._now(),
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transaction_id": tx, "charging_state": "EVConnected"},
                evse={"id": cid, "connector_id": 1},
                id_token={"id_token": "TAG-" + self.sid, "type": "ISO14443"},
                meter_value=[self._mv201(cid)],
            )
        )
        if departure is not None or e_needed_wh is not None:
            needs = {"requested_energy_transfer": "AC_three_phase"}
            if departure is not None:
                needs["departure_time"] = departure.astimezone(UTC).isoformat()
            if e_needed_wh is not None:
                needs["ac_charging_parameters"] = {
                    "energy_amount": int(e_needed_wh),
                    "ev_min_current": 6,
                    "ev_max_current": 32,
                    "ev_max_voltage": 400,
                }
            await self.cp.call(call201.NotifyEVChargingNeeds(charging_needs=needs, evse_id=cid))
        return tx

    def _mv201(self, cid: int) -> dict:
        return {
            "timestamp": self._now(),
            "sampled_value": [
                {
                    "value": self.draw_w(cid),
                    "measurand": "Power.Active.Import",
                    "unit_of_measure": {"unit": "W"},
                },
                {
                    "value": self.energy_wh[cid],
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": {"unit": "Wh"},
                },
            ],
        }

    async def meter(self, dt_s: float = 1.0) -> None:
        """Every connector's power and energy register (energy advanced by ``dt_s`` at the
        power drawn)."""
        for cid in range(1, self.connectors + 1):
            self.energy_wh[cid] += self.draw_w(cid) * dt_s / 3600.0
            if self.version == "1.6":
                mv = {
                    "timestamp": self._now(),
                    "sampled_value": [
                        {
                            "value": f"{self.draw_w(cid):.1f}",
                            "measurand": "Power.Active.Import",
                            "unit": "W",
                        },
                        {
                            "value": f"{self.energy_wh[cid]:.1f}",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        },
                    ],
                }
                tx = int(self.tx[cid]) if cid in self.tx else None
                await self.cp.call(
                    call16.MeterValues(connector_id=cid, meter_value=[mv], transaction_id=tx)
                )
            elif cid in self.tx:
                await self.cp.call(
                    call201.TransactionEvent(
                        event_type="Updated",
                        timestamp=self._now(),
                        trigger_reason="MeterValuePeriodic",
                        seq_no=1,
                        transaction_info={"transaction_id": self.tx[cid]},
                        evse={"id": cid, "connector_id": 1},
                        meter_value=[self._mv201(cid)],
                    )
                )
            else:
                await self.cp.call(call201.MeterValues(evse_id=cid, meter_value=[self._mv201(cid)]))

    async def unplug(self, cid: int) -> None:
        tx = self.tx.pop(cid)
        if self.version == "1.6":
            await self.cp.call(
                call16.StopTransaction(
                    meter_stop=int(self.energy_wh[cid]),
                    timestamp=self._now(),
                    transaction_id=int(tx),
                )
            )
        else:
            await self.cp.call(
                call201.TransactionEvent(
                    event_type="Ended",
                    timestamp=self._now(),
                    trigger_reason="EVDeparted",
                    seq_no=2,
                    transaction_info={"transaction_id": tx, "stopped_reason": "EVDisconnected"},
                    evse={"id": cid, "connector_id": 1},
                    meter_value=[self._mv201(cid)],
                )
            )

    async def heartbeat(self) -> None:
        await self.cp.call(call16.Heartbeat() if self.version == "1.6" else call201.Heartbeat())

    async def disconnect(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self.closed.wait(), 10)


# --------------------------------------------------------------------------------------------
# The loopback park file, moved to the test's ports, topics and keys
# --------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = ROOT / "configs" / "parks" / "field_loopback.yaml"


def loopback_park(
    tmp: Path,
    modbus_port: int,
    chargers: int = 20,
    keys: dict[str, str] | None = None,
    tag: str = "",
    horizon_steps: int = 16,
    ocpp: dict | None = None,
    modbus_timeout_s: float = 0.3,
) -> tuple[Path, str, dict[str, str]]:
    """``configs/parks/field_loopback.yaml`` written to ``tmp`` with the OCPP server on an
    ephemeral port, the Modbus devices on ``modbus_port``, MQTT topics and client id of
    this test's own (``tag``), ``chargers`` stations CP-01.. with ``keys`` (station -> key;
    hashed into a keys file here). Returns the file, the park meter's topic and the keys."""
    import uuid

    import yaml

    from vpp.drivers.ocpp_auth import hash_key

    doc = yaml.safe_load(LOOPBACK.read_text())
    tag = tag or uuid.uuid4().hex[:10]
    doc["tariff"] = str(ROOT / "configs" / "tariffs" / "zhejiang_2026.yaml")
    doc["carbon"]["factors"] = str(ROOT / "configs" / "carbon" / "cn_grid_factors.yaml")
    fd = doc["field_devices"]
    fd["ocpp"]["port"] = 0
    fd["modbus_timeout_s"] = modbus_timeout_s
    fd["ocpp"].update(ocpp or {})
    topic = f"park-vpp/test/{tag}/meter/park"
    fd["mqtt"]["park_meter_topic"] = topic
    fd["mqtt"]["client_id"] = f"park-vpp-test-{tag}"
    a = doc["assets"]
    for x in [*a["pv_arrays"], *a["batteries"]]:
        mb = x["endpoint"]["modbus"]
        mb["port"] = modbus_port
        mb["register_map"] = str((LOOPBACK.parent / mb["register_map"]).resolve())
    a["ev_chargers"] = [
        {
            "name": f"EV-{i:02d}",
            "bus": "LV",
            "p_max_kw": 11,
            "endpoint": {"ocpp": {"station": f"CP-{i:02d}", "connector": 1}},
        }
        for i in range(1, chargers + 1)
    ]
    keys = keys or {f"CP-{i:02d}": f"key-{tag}-{i:02d}" for i in range(1, chargers + 1)}
    keys_file = tmp / "ocpp_keys.yaml"
    keys_file.write_text(yaml.safe_dump({"stations": {s: hash_key(k) for s, k in keys.items()}}))
    fd["ocpp"]["keys_file"] = str(keys_file)
    doc["dispatch"]["horizon_steps"] = horizon_steps
    path = tmp / "field_park.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, topic, keys
