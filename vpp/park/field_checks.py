"""Field devices in the park file: the endpoints of assets and the servers they reach
(:mod:`vpp.drivers.field`), each problem named by its field path. Called by
:mod:`vpp.park.config` with the other checks of a loaded park."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vpp.park import model as m
from vpp.park.value_checks import in_range, nonneg, positive

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _endpoints(site: m.Site) -> Iterable[tuple[str, str, Any]]:
    """(path, kind, asset) of every asset that may have an endpoint."""
    a = site.assets
    for group, kind in (
        ("pv_arrays", "pv"),
        ("batteries", "battery"),
        ("ev_chargers", "charger"),
        ("base_loads", "meter"),
    ):
        for i, asset in enumerate(getattr(a, group)):
            yield f"assets.{group}[{i}]", kind, asset


def field_problems(site: m.Site) -> Iterable[str]:
    """Endpoints name what their asset can be reached by, once each; the servers they need
    are configured (``field_devices``); files named exist."""
    fd = site.field_devices
    stations: dict[tuple[str, int], str] = {}
    topics: dict[str, str] = {}
    if fd.mqtt is not None and fd.mqtt.park_meter_topic:
        topics[fd.mqtt.park_meter_topic] = "field_devices.mqtt.park_meter_topic"
        yield from _topic_problems(fd.mqtt.park_meter_topic, "field_devices.mqtt.park_meter_topic")
    uses_ocpp = uses_mqtt = False
    for p, kind, asset in _endpoints(site):
        ep = asset.endpoint
        if ep is None:
            continue
        p = f"{p}.endpoint"
        if ep.ocpp is not None:
            uses_ocpp = True
            if kind != "charger":
                yield f"{p}.ocpp: only an EV charger is reached over OCPP ({asset.name})"
            yield from _ocpp_endpoint_problems(ep.ocpp, f"{p}.ocpp", stations)
        if ep.modbus is not None:
            if kind not in ("pv", "battery"):
                yield f"{p}.modbus: only a PV inverter or a battery PCS is reached over Modbus"
            yield from _modbus_endpoint_problems(ep.modbus, f"{p}.modbus", site)
        if ep.mqtt_topic is not None:
            uses_mqtt = True
            yield from _topic_problems(ep.mqtt_topic, f"{p}.mqtt_topic", topics)
    for i, pe in enumerate(site.assets.pedf_buildings):
        for role in ("pv", "battery", "base_load"):
            if getattr(pe, role).endpoint is not None:
                yield (
                    f"assets.pedf_buildings[{i}].{role}.endpoint: not supported: a PEDF "
                    "building is reached as a whole (its converter), not member by member"
                )
    if uses_ocpp and fd.ocpp is None:
        yield "field_devices.ocpp: required: chargers name OCPP endpoints"
    if uses_mqtt and fd.mqtt is None:
        yield "field_devices.mqtt: required: assets name MQTT topics"
    yield from positive("field_devices.modbus_timeout_s", fd.modbus_timeout_s)
    yield from positive("field_devices.stale_after_s", fd.stale_after_s)
    if fd.ocpp is not None:
        yield from _ocpp_server_problems(fd.ocpp, "field_devices.ocpp", site)
    if fd.mqtt is not None:
        yield from in_range("field_devices.mqtt.port", fd.mqtt.port, 1, 65535)
        if fd.mqtt.qos not in (0, 1, 2):
            yield f"field_devices.mqtt.qos: must be 0, 1 or 2, got {fd.mqtt.qos}"


def _ocpp_endpoint_problems(
    o: m.OcppEndpoint, p: str, seen: dict[tuple[str, int], str]
) -> Iterable[str]:
    if not o.station or any(c in o.station for c in "/?#: "):
        yield f"{p}.station: must be a charge point id without '/', '?', '#', ':' or spaces"
    if o.connector < 1:
        yield f"{p}.connector: must be >= 1 (0 is the whole station), got {o.connector}"
    if o.phases not in (1, 3):
        yield f"{p}.phases: must be 1 or 3, got {o.phases}"
    key = (o.station, o.connector)
    if key in seen:
        yield f"{p}: station {o.station!r} connector {o.connector} is already used by {seen[key]}"
    seen[key] = p


def _modbus_endpoint_problems(mb: m.ModbusEndpoint, p: str, site: m.Site) -> Iterable[str]:
    if not mb.host:
        yield f"{p}.host: must name a host"
    yield from in_range(f"{p}.port", mb.port, 1, 65535)
    yield from in_range(f"{p}.unit_id", mb.unit_id, 0, 247)
    yield from _file_problem(mb.register_map, f"{p}.register_map", site)


def _file_problem(name: str | None, p: str, site: m.Site) -> Iterable[str]:
    base = Path(site.source_file).parent if site.source_file else Path.cwd()
    if not name or not (base / name).is_file():
        yield f"{p}: no such file {name!r} (looked at {(base / (name or '')).resolve()})"


def _topic_problems(topic: str, p: str, seen: dict[str, str] | None = None) -> Iterable[str]:
    if not topic or "+" in topic or "#" in topic:
        yield f"{p}: must be an exact topic (no '+' or '#' wildcards), got {topic!r}"
    if seen is not None:
        if topic in seen:
            yield f"{p}: topic {topic!r} is already used by {seen[topic]}"
        seen[topic] = p


def _ocpp_server_problems(o: m.OcppServer, p: str, site: m.Site) -> Iterable[str]:
    yield from in_range(f"{p}.port", o.port, 0, 65535)
    if o.auth not in ("basic", "none"):
        yield f"{p}.auth: must be 'basic' (Security Profile 1) or 'none', got {o.auth!r}"
    elif o.auth == "none" and o.host not in _LOOPBACK:
        yield f"{p}.auth: 'none' is allowed on a loopback host only, got host {o.host!r}"
    elif o.auth == "basic":
        yield from _file_problem(o.keys_file, f"{p}.keys_file", site)
    for f in ("heartbeat_interval_s", "offline_after_s", "call_timeout_s", "voltage_v"):
        yield from positive(f"{p}.{f}", getattr(o, f))
    yield from positive(f"{p}.default_dwell_h", o.default_dwell_h)
    yield from nonneg(f"{p}.default_e_needed_kwh", o.default_e_needed_kwh)
    yield from nonneg(f"{p}.compliance_tolerance_frac", o.compliance_tolerance_frac)
    yield from nonneg(f"{p}.compliance_tolerance_kw", o.compliance_tolerance_kw)
    if o.compliance_intervals < 1:
        yield f"{p}.compliance_intervals: must be >= 1, got {o.compliance_intervals}"


__all__ = ["field_problems"]
