"""Register maps of Modbus devices: data files under ``configs/registers/``, validated once
at start-up like the park file (every problem names the file and the field path).

Two kinds:

``kind: sunspec``
    A SunSpec device: its models are discovered on the device from the ``SunS`` marker at
    ``base_address`` (40000 by default); the points are read with the layouts of the
    ``pysunspec2`` model definitions (:mod:`vpp.drivers.sunspec`). ``role: inverter`` reads
    power from model 101/102/103 or 701 and limits it through 123 or 704 ``WMaxLimPct``;
    ``role: storage`` reads power from 701 (or 103) and the state of charge from 713 (or
    124's ``ChaState``) and sets power through 704 ``WSet``.

``kind: vendor``
    A PCS with a register map of its own (many Chinese PCS): each point is a holding register
    with an address (0-based protocol address), a type, a scale (device unit per count) and,
    for powers, a sign (``generation``: discharge is +, ``load``: charge is +). Points:
    ``soc`` (required; ``unit: pct`` or ``frac``), ``p`` (required, W or kW), ``p_set``
    (required, writable, W or kW), ``p_charge_max`` and ``p_discharge_max`` (optional,
    read: the device's own limits), ``enable`` (optional, writable: written ``value``
    before each setpoint, e.g. remote-control mode).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vpp.park.config import ConfigError

TYPES = ("uint16", "int16", "uint32", "int32")
UNITS = {"p": ("W", "kW"), "p_set": ("W", "kW"), "soc": ("pct", "frac")}
UNITS["p_charge_max"] = UNITS["p_discharge_max"] = UNITS["p"]
REQUIRED = {"soc", "p", "p_set"}
OPTIONAL = {"p_charge_max", "p_discharge_max", "enable"}
WRITABLE = {"p_set", "enable"}


@dataclass(frozen=True)
class VendorPoint:
    """One holding register (or two, for 32-bit types; high word first)."""

    address: int
    type: str
    scale: float = 1.0
    unit: str = ""
    sign: str = "generation"  # generation: + is discharge; load: + is charge
    value: int | None = None  # enable: the value written

    @property
    def count(self) -> int:
        return 2 if self.type.endswith("32") else 1


@dataclass(frozen=True)
class RegisterMap:
    """A validated register map file."""

    kind: str  # "sunspec" | "vendor"
    role: str  # "inverter" | "storage"
    source: str
    base_address: int = 40000
    vendor: str = ""
    points: dict[str, VendorPoint] | None = None


def load(path: str | Path) -> RegisterMap:
    """Read and validate one register map file. Raises :class:`ConfigError` with every
    problem as ``FILE: field.path: message``."""
    path = Path(path)
    return _load(str(path.resolve()))


@functools.lru_cache(maxsize=64)
def _load(path: str) -> RegisterMap:
    p = Path(path)
    label = str(Path(*p.parts[-2:]))
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{p}: file not found"]) from None
    except yaml.YAMLError:
        raise ConfigError([f"{label}: not valid YAML"]) from None
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError([f"{label}: expected a mapping at the top level"])
    kind, role = raw.get("kind"), raw.get("role")
    if kind not in ("sunspec", "vendor"):
        problems.append(f"kind: must be 'sunspec' or 'vendor', got {kind!r}")
    if role not in ("inverter", "storage"):
        problems.append(f"role: must be 'inverter' or 'storage', got {role!r}")
    allowed = {"kind", "role", "base_address", "vendor", "points", "description"}
    problems += [
        f"{k}: unknown key; expected one of {sorted(allowed)}" for k in raw if k not in allowed
    ]
    base = raw.get("base_address", 40000)
    if not isinstance(base, int) or isinstance(base, bool) or not 0 <= base <= 65535 - 70:
        problems.append(f"base_address: must be a register address 0..65465, got {base!r}")
    points = None
    if kind == "vendor":
        if role != "storage":
            problems.append("role: a vendor map is for a storage PCS; use kind sunspec otherwise")
        points = _vendor_points(raw.get("points"), problems)
    elif "points" in raw:
        problems.append("points: a SunSpec map has no points (models are discovered)")
    if problems:
        raise ConfigError([f"{label}: {x}" for x in problems])
    return RegisterMap(kind, role, path, base, str(raw.get("vendor", "")), points)


def _vendor_points(raw: Any, problems: list[str]) -> dict[str, VendorPoint]:
    if not isinstance(raw, dict):
        problems.append("points: expected a mapping of point name to register")
        return {}
    out: dict[str, VendorPoint] = {}
    for name in sorted(REQUIRED - set(raw)):
        problems.append(f"points.{name}: required point is missing")
    for name, spec in raw.items():
        where = f"points.{name}"
        if name not in REQUIRED | OPTIONAL:
            problems.append(
                f"{where}: unknown point; expected one of {sorted(REQUIRED | OPTIONAL)}"
            )
            continue
        pt = _vendor_point(name, spec, where, problems)
        if pt is not None:
            out[name] = pt
    used: dict[int, str] = {}
    for name, pt in out.items():
        for a in range(pt.address, pt.address + pt.count):
            if a in used:
                problems.append(f"points.{name}.address: register {a} is also {used[a]}'s")
            used[a] = name
    return out


def _vendor_point(name: str, spec: Any, where: str, problems: list[str]) -> VendorPoint | None:
    if not isinstance(spec, dict):
        problems.append(f"{where}: expected a mapping with address and type")
        return None
    keys = {"address", "type", "scale", "unit", "sign", "value"}
    bad = [k for k in spec if k not in keys]
    problems += [f"{where}.{k}: unknown key; expected one of {sorted(keys)}" for k in bad]
    n = len(problems)
    addr, tp = spec.get("address"), spec.get("type")
    if not isinstance(addr, int) or isinstance(addr, bool) or not 0 <= addr <= 65534:
        problems.append(f"{where}.address: must be a register address 0..65534, got {addr!r}")
    if tp not in TYPES:
        problems.append(f"{where}.type: must be one of {list(TYPES)}, got {tp!r}")
    scale = spec.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        problems.append(f"{where}.scale: must be a number > 0, got {scale!r}")
    unit = spec.get("unit", "")
    if name in UNITS and unit not in UNITS[name]:
        problems.append(f"{where}.unit: must be one of {list(UNITS[name])}, got {unit!r}")
    sign = spec.get("sign", "generation")
    if sign not in ("generation", "load"):
        problems.append(f"{where}.sign: must be 'generation' or 'load', got {sign!r}")
    value = spec.get("value")
    if name == "enable" and not isinstance(value, int):
        problems.append(f"{where}.value: the value to write is required (an integer)")
    if len(problems) > n:
        return None
    return VendorPoint(addr, tp, float(scale), unit, sign, value)


def resolve(register_map: str, park_file: str) -> Path:
    """The file an endpoint's ``register_map`` names (relative to the park file)."""
    base = Path(park_file).parent if park_file else Path.cwd()
    return (base / register_map).resolve()
