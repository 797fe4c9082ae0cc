"""Modbus TCP adapters: SunSpec PV inverters and storage PCS, and PCS with a vendor map.

The ``pymodbus`` asyncio client talks to the device; the SunSpec point layouts come from the
``pysunspec2`` model definitions (JSON shipped with the package), so no offset is typed here.
Each adapter translates at the edge and nothing more (STYLE habit 12):

- units and signs once: SunSpec and most PCS count generation (discharge) as +; the park
  counts consumption (charge) as + (``p_kw = -W / 1000``);
- the device's own limits (nameplate ``WRtg``/``WMax``, storage ``WChaRteMax`` and
  ``WDisChaRteMax``, a vendor map's limit registers) intersected with the asset's configured
  range before every write (:mod:`vpp.drivers.limits`): nothing outside them is written;
- a read-back after every write: a device that answers but does not hold the value failed;
- a time-out or an exception reply raises :class:`DeviceError`; the field driver marks the
  asset stale and holds it safe.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from vpp.drivers import limits
from vpp.drivers.register_maps import RegisterMap, VendorPoint

log = logging.getLogger(__name__)

SUNS = (0x5375, 0x6E53)  # "SunS"
END_MODEL = 0xFFFF
READ_CHUNK = 120  # registers per read (a Modbus read holds at most 125)
RETRY_S = 5.0  # a host that took no connection is tried again after this long
NOT_IMPL = {"int16": -0x8000, "sunssf": -0x8000, "uint16": 0xFFFF, "enum16": 0xFFFF}
NOT_IMPL |= {"int32": -0x80000000, "uint32": 0xFFFFFFFF, "acc32": 0}
MEASURE_INVERTER = (103, 102, 101, 701)
MEASURE_STORAGE = (701, 103, 102, 101)


class DeviceError(Exception):
    """A device did not answer, answered with an exception, or did not hold a write."""


# --------------------------------------------------------------------------------------------
# SunSpec layouts from the pysunspec2 model definitions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    name: str
    offset: int  # from the model's ID register
    size: int
    type: str
    sf: str | None = None


@functools.lru_cache(maxsize=64)
def model_points(model_id: int) -> dict[str, Point]:
    """The top-level points of SunSpec model ``model_id`` with their offsets (registers from
    the model's ``ID`` point), from pysunspec2's model definition."""
    import sunspec2

    path = Path(sunspec2.__file__).parent / "models" / "json" / f"model_{model_id}.json"
    if not path.is_file():
        raise DeviceError(f"SunSpec model {model_id}: no definition in pysunspec2")
    group = json.loads(path.read_text())["group"]
    out: dict[str, Point] = {}
    off = 0
    for p in group["points"]:
        size = int(p["size"])
        out[p["name"]] = Point(p["name"], off, size, p["type"], p.get("sf"))
        off += size
    return out


def decode(regs: list[int], pt: Point, sentinels: bool = True) -> int | None:
    """A point's integer value from the model's registers (None: SunSpec's "not
    implemented" value, unless ``sentinels`` is False: a vendor map has none)."""
    w = regs[pt.offset : pt.offset + pt.size]
    if len(w) < pt.size:
        raise DeviceError(f"point {pt.name}: model block too short")
    if pt.size == 1:
        v = w[0]
        if pt.type in ("int16", "sunssf") and v >= 0x8000:
            v -= 0x10000
    elif pt.size == 2:
        v = (w[0] << 16) | w[1]
        if pt.type == "int32" and v >= 0x80000000:
            v -= 0x100000000
    else:
        raise DeviceError(f"point {pt.name}: type {pt.type} is not read here")
    return None if sentinels and NOT_IMPL.get(pt.type) == v else v


def to_words(raw: int, size: int) -> list[int]:
    """An integer as ``size`` registers, high word first (two's complement)."""
    if size == 1:
        return [raw & 0xFFFF]
    u = raw & 0xFFFFFFFF
    return [u >> 16, u & 0xFFFF]


def scaled(regs: list[int], points: dict[str, Point], name: str) -> float | None:
    """Point ``name`` times 10**(its scale factor); None when either is not implemented."""
    pt = points[name]
    v = decode(regs, pt)
    if v is None:
        return None
    if pt.sf is None:
        return float(v)
    sf = decode(regs, points[pt.sf])
    return None if sf is None else v * 10.0**sf


# --------------------------------------------------------------------------------------------
# The link: one TCP connection per host and port, requests one at a time
# --------------------------------------------------------------------------------------------
class ModbusLink:
    """One Modbus TCP connection (a device, or a gateway in front of several unit ids).

    Requests on it are serialised (one outstanding at a time, as most gateways require);
    each waits at most ``timeout_s``."""

    def __init__(self, host: str, port: int, timeout_s: float):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._client = None
        self._lock: asyncio.Lock | None = None
        self._down_until, self._down_why = 0.0, ""

    def _ensure(self):
        from pymodbus.client import AsyncModbusTcpClient

        if self._client is None:
            # pymodbus logs every time-out at ERROR with a frame dump; the adapter says what
            # failed, for which asset, once (DeviceError, the field driver's warning).
            logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
            self._client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0, reconnect_delay=0
            )
            self._lock = asyncio.Lock()
        return self._client

    async def _connected(self):
        """The connected client; a host that refused or did not take a connection is not
        tried again for ``RETRY_S`` (the other unit ids behind it fail at once)."""
        now = time.monotonic()
        if now < self._down_until:
            raise DeviceError(f"modbus {self.host}:{self.port}: unreachable ({self._down_why})")
        c = self._ensure()
        if not c.connected:
            try:
                ok = await asyncio.wait_for(c.connect(), self.timeout_s + 0.5)
            except TimeoutError:
                ok = False
            if not ok:
                self._down_until, self._down_why = now + RETRY_S, "cannot connect"
                self.close()
                raise DeviceError(f"modbus {self.host}:{self.port}: cannot connect")
        return c

    async def read(self, unit: int, address: int, count: int) -> list[int]:
        """``count`` holding registers from ``address`` (0-based) of unit ``unit``."""
        out: list[int] = []
        async with self._lock_():
            c = await self._connected()
            for a in range(address, address + count, READ_CHUNK):
                n = min(READ_CHUNK, address + count - a)
                rr = await self._call(c.read_holding_registers(a, count=n, device_id=unit), a)
                out += list(rr.registers)
        return out

    async def write(self, unit: int, address: int, values: list[int]) -> None:
        async with self._lock_():
            c = await self._connected()
            await self._call(c.write_registers(address, values, device_id=unit), address)

    def _lock_(self) -> asyncio.Lock:
        self._ensure()
        assert self._lock is not None
        return self._lock

    async def _call(self, coro, address: int):
        from pymodbus.exceptions import ModbusException, ModbusIOException

        where = f"modbus {self.host}:{self.port} register {address}"
        try:
            rr = await asyncio.wait_for(coro, self.timeout_s + 0.5)
        except TimeoutError:
            self.close()  # a late answer must not be taken for the next request's
            raise DeviceError(f"{where}: no answer within {self.timeout_s:g} s") from None
        except ModbusIOException:  # pymodbus's own time-out: no response
            self.close()
            raise DeviceError(f"{where}: no answer within {self.timeout_s:g} s") from None
        except ModbusException as exc:
            self.close()
            raise DeviceError(f"{where}: {exc}") from None
        if rr.isError():
            code = getattr(rr, "exception_code", "?")
            raise DeviceError(f"{where}: exception reply (code {code})")
        return rr

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """What one read of a device gave, in the park's units and signs."""

    p_kw: float | None  # load convention: PV <= 0, storage + charging
    soc_frac: float | None = None
    p_range_kw: tuple[float, float] | None = None  # the device's own limits, when it says


@dataclass(frozen=True)
class WriteResult:
    """What was written: the power it stands for (kW, load convention), whether the plan's
    value had to be clipped to the device's limits, and a line for the log."""

    sent_kw: float | None
    clipped: bool
    detail: str


class ModbusDevice:
    """Common to the Modbus adapters: the link, the unit id, the configured range (kW)."""

    kind = ""

    def __init__(self, asset: str, link: ModbusLink, unit: int, range_kw: tuple[float, float]):
        self.asset, self.link, self.unit, self.range_kw = asset, link, unit, range_kw
        self.device_range_kw: tuple[float, float] | None = None

    @property
    def where(self) -> str:
        return f"{self.link.host}:{self.link.port} unit {self.unit}"

    async def read(self) -> Reading:
        raise NotImplementedError

    async def write(self, p_kw: float | None) -> WriteResult:
        raise NotImplementedError

    def admissible_kw(self) -> tuple[float, float]:
        """The configured range within what the device last said it can do."""
        return limits.intersect(self.range_kw, self.device_range_kw)

    async def _write_checked(self, address: int, words: list[int], what: str) -> None:
        """Write and read back; a value the device does not hold is a failure."""
        await self.link.write(self.unit, address, words)
        back = await self.link.read(self.unit, address, len(words))
        if back != words:
            raise DeviceError(
                f"{self.asset} ({self.where}): {what} read back {back}, wrote {words}"
            )


class SunSpecDevice(ModbusDevice):
    """A SunSpec device: models found from the ``SunS`` marker, read by their layouts."""

    def __init__(self, asset, link, unit, range_kw, regmap: RegisterMap):
        super().__init__(asset, link, unit, range_kw)
        self.base = regmap.base_address
        self.models: dict[int, int] | None = None  # model id -> address of its ID register

    async def discover(self) -> dict[int, int]:
        head = await self.link.read(self.unit, self.base, 2)
        if tuple(head) != SUNS:
            raise DeviceError(f"{self.asset} ({self.where}): no SunS marker at {self.base}")
        models: dict[int, int] = {}
        addr = self.base + 2
        for _ in range(64):
            mid, length = await self.link.read(self.unit, addr, 2)
            if mid == END_MODEL:
                break
            models[mid] = addr
            addr += 2 + length
        self.models = models
        return models

    async def block(self, model_id: int) -> tuple[int, list[int], dict[str, Point]]:
        """(address, registers, points) of one model, read whole."""
        if self.models is None:
            await self.discover()
        assert self.models is not None
        if model_id not in self.models:
            raise DeviceError(f"{self.asset} ({self.where}): no SunSpec model {model_id}")
        addr = self.models[model_id]
        pts = model_points(model_id)
        size = sum(p.size for p in pts.values())
        return addr, await self.link.read(self.unit, addr, size), pts

    def first(self, candidates: tuple[int, ...]) -> int | None:
        assert self.models is not None
        return next((m for m in candidates if m in self.models), None)

    async def _enable_and_set(
        self, model: int, value_pt: str, raw: int, ena_pt: str, ena: int
    ) -> None:
        """Write a control value, then its enable point, each read back."""
        assert self.models is not None
        addr, pts = self.models[model], model_points(model)
        v = pts[value_pt]
        await self._write_checked(addr + v.offset, to_words(raw, v.size), f"{model}.{value_pt}")
        e = pts[ena_pt]
        await self._write_checked(addr + e.offset, [ena], f"{model}.{ena_pt}")


class SunSpecInverter(SunSpecDevice):
    """A PV inverter: power from 101-103 or 701; the rating from 121/120 or 702; the limit
    through 123 ``WMaxLimPct`` (``WMaxLim_Ena``) or 704 ``WMaxLimPct`` (``WMaxLimPctEna``)."""

    kind = "pv"

    async def read(self) -> Reading:
        if self.models is None:
            await self.discover()
        m = self.first(MEASURE_INVERTER)
        if m is None:
            raise DeviceError(f"{self.asset} ({self.where}): no SunSpec measurement model")
        _, regs, pts = await self.block(m)
        w = scaled(regs, pts, "W")
        rating = await self._rating_kw()
        self.device_range_kw = (-rating, 0.0) if rating else None
        return Reading(None if w is None else -w / 1000.0, None, self.device_range_kw)

    async def _rating_kw(self) -> float | None:
        found = []
        for model, pt in ((121, "WMax"), (120, "WRtg"), (702, "WMax"), (702, "WMaxRtg")):
            if model in (self.models or {}):
                _, regs, pts = await self.block(model)
                v = scaled(regs, pts, pt)
                if v is not None and v > 0:
                    found.append(v / 1000.0)
        return min(found) if found else None

    async def write(self, p_kw: float | None) -> WriteResult:
        if self.models is None:
            await self.discover()
        model = self.first((123, 704))
        if model is None:
            raise DeviceError(f"{self.asset} ({self.where}): no SunSpec model 123 or 704")
        _, regs, pts = await self.block(model)
        sf = decode(regs, pts["WMaxLimPct_SF"])
        if sf is None:
            raise DeviceError(f"{self.asset} ({self.where}): WMaxLimPct_SF not implemented")
        if self.device_range_kw is None:  # the rating, once per read (read_state reads it)
            rating = await self._rating_kw() or -self.range_kw[0]
            self.device_range_kw = (-rating, 0.0)
        rating = -self.device_range_kw[0]
        wr = limits.pv_limit_write(p_kw, self.admissible_kw(), rating, 10.0**sf)
        ena_pt = "WMaxLim_Ena" if model == 123 else "WMaxLimPctEna"
        await self._enable_and_set(model, "WMaxLimPct", wr.raw, ena_pt, 0 if p_kw is None else 1)
        what = "released (100 %)" if p_kw is None else f"limit {wr.value:g} % of {rating:g} kW"
        return WriteResult(None if p_kw is None else wr.p_kw, wr.clipped, f"{model}: {what}")


class SunSpecStorage(SunSpecDevice):
    """A storage PCS on SunSpec: power from 701, SOC from 713, its rate limits from 702, the
    setpoint through 704 ``WSet`` (``WSetMod`` WATTS, ``WSetEna``); + discharges there."""

    kind = "battery"

    async def read(self) -> Reading:
        if self.models is None:
            await self.discover()
        m = self.first(MEASURE_STORAGE)
        if m is None or 713 not in (self.models or {}):
            raise DeviceError(f"{self.asset} ({self.where}): needs SunSpec 701 and 713")
        _, regs, pts = await self.block(m)
        w = scaled(regs, pts, "W")
        _, regs, pts = await self.block(713)
        soc = scaled(regs, pts, "SoC")
        await self._limits()
        return Reading(
            None if w is None else -w / 1000.0,
            None if soc is None else soc / 100.0,
            self.device_range_kw,
        )

    async def _limits(self) -> None:
        if 702 not in (self.models or {}):
            return
        _, regs, pts = await self.block(702)
        cha = scaled(regs, pts, "WChaRteMax")
        dis = scaled(regs, pts, "WDisChaRteMax")
        if cha is not None and dis is not None:
            self.device_range_kw = (-dis / 1000.0, cha / 1000.0)

    async def write(self, p_kw: float | None) -> WriteResult:
        if self.models is None:
            await self.discover()
        if 704 not in (self.models or {}):
            raise DeviceError(f"{self.asset} ({self.where}): no SunSpec model 704")
        await self._limits()
        addr, regs, pts = await self.block(704)
        sf = decode(regs, pts["WSet_SF"])
        if sf is None:
            raise DeviceError(f"{self.asset} ({self.where}): WSet_SF not implemented")
        wr = limits.power_write(
            0.0 if p_kw is None else p_kw, self.admissible_kw(), 10.0**sf, "int32", True
        )
        mod = pts["WSetMod"]
        await self._write_checked(addr + mod.offset, [1], "704.WSetMod")  # WATTS
        await self._enable_and_set(704, "WSet", wr.raw, "WSetEna", 1)
        return WriteResult(wr.p_kw, wr.clipped, f"704: WSet {wr.value:g} W")


class VendorPcs(ModbusDevice):
    """A storage PCS with a vendor register map (:mod:`vpp.drivers.register_maps`)."""

    kind = "battery"

    def __init__(self, asset, link, unit, range_kw, regmap: RegisterMap):
        super().__init__(asset, link, unit, range_kw)
        assert regmap.points is not None
        self.points = regmap.points

    async def _get(self, name: str) -> float | None:
        pt = self.points.get(name)
        if pt is None:
            return None
        regs = await self.link.read(self.unit, pt.address, pt.count)
        v = decode(regs, Point(name, 0, pt.count, pt.type), sentinels=False)
        return None if v is None else v * pt.scale

    def _kw(self, pt: VendorPoint, value: float) -> float:
        """A power in the device's unit and sign as kW, load convention."""
        kw = value / 1000.0 if pt.unit == "W" else value
        return (-kw if pt.sign == "generation" else kw) + 0.0  # never -0.0

    async def read(self) -> Reading:
        p = await self._get("p")
        soc = await self._get("soc")
        cha, dis = await self._get("p_charge_max"), await self._get("p_discharge_max")
        if cha is not None and dis is not None:
            to_kw = 1000.0 if self.points["p_charge_max"].unit == "W" else 1.0
            self.device_range_kw = (-dis / to_kw, cha / to_kw)
        soc_frac = None if soc is None else soc / 100.0 if self.points["soc"].unit == "pct" else soc
        p_kw = None if p is None else self._kw(self.points["p"], p)
        return Reading(p_kw, soc_frac, self.device_range_kw)

    async def write(self, p_kw: float | None) -> WriteResult:
        if "p_charge_max" in self.points and self.device_range_kw is None:
            await self.read()  # the device's limits before its first setpoint
        pt = self.points["p_set"]
        per_w = pt.scale if pt.unit == "W" else pt.scale * 1000.0  # W per count
        wr = limits.power_write(
            0.0 if p_kw is None else p_kw,
            self.admissible_kw(),
            per_w,
            pt.type,
            pt.sign == "generation",
        )
        en = self.points.get("enable")
        if en is not None and en.value is not None:
            await self._write_checked(en.address, to_words(en.value, en.count), "enable")
        await self._write_checked(pt.address, to_words(wr.raw, pt.count), "p_set")
        return WriteResult(wr.p_kw, wr.clipped, f"p_set {wr.value:g} W ({wr.raw} counts)")


def make_device(
    asset: str, link: ModbusLink, unit: int, range_kw: tuple[float, float], regmap: RegisterMap
) -> ModbusDevice:
    """The adapter for ``regmap``'s kind and role."""
    if regmap.kind == "vendor":
        return VendorPcs(asset, link, unit, range_kw, regmap)
    if regmap.role == "inverter":
        return SunSpecInverter(asset, link, unit, range_kw, regmap)
    return SunSpecStorage(asset, link, unit, range_kw, regmap)


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
