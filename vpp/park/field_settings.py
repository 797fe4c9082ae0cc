"""The field side of ``vpp run --driver field`` as data: park-vpp's OCPP central system, the
MQTT broker its meters publish to, and the Modbus time-outs (``field_devices`` in the park
file). Re-exported by :mod:`vpp.park.model`; moved here to keep that module under the house's
800 lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OcppServer:
    """park-vpp as the OCPP central system (1.6J and 2.0.1) its charge points connect to,
    at ``ws://host:port/ocpp/{station}``."""

    host: str = "127.0.0.1"
    port: int = 9000
    # basic: OCPP Security Profile 1 (HTTP basic auth, user = station, password = its key);
    # none: no authentication, allowed on a loopback host only.
    auth: str = "basic"
    # File of the stations' keys (salted SHA-256, vpp.drivers.ocpp_auth), path relative
    # to the park file; required with auth basic.
    keys_file: str | None = None
    # Heartbeat interval given to stations at boot (s).
    heartbeat_interval_s: int = 60
    # A station silent (no message, no connection) for this long is offline (s): held safe.
    offline_after_s: float = 180.0
    # A charging profile call not answered within this long failed (s).
    call_timeout_s: float = 5.0
    # Line-to-neutral voltage that converts kW to A for stations that take A only (V).
    voltage_v: float = 230.0
    # A session whose car says nothing: assumed to stay this long (h) ...
    default_dwell_h: float = 8.0
    # ... and to need this much energy (kWh); both stated as assumptions in the plan.
    default_e_needed_kwh: float = 20.0
    # A station drawing more than its profile by this fraction (and by tolerance_kw) ...
    compliance_tolerance_frac: float = 0.1
    compliance_tolerance_kw: float = 0.5
    # ... for this many intervals in a row is non-compliant: planned at its real draw.
    compliance_intervals: int = 3


@dataclass(frozen=True)
class MqttBroker:
    """The MQTT broker the meters and gateways publish readings to."""

    host: str = "127.0.0.1"
    port: int = 1883
    # Topic of the park meter's readings (import +, export -); None: no park meter on MQTT.
    park_meter_topic: str | None = None
    client_id: str = "park-vpp"
    qos: int = 1


@dataclass(frozen=True)
class FieldDevices:
    """The field side of ``vpp run --driver field``: the OCPP central system, the MQTT
    broker, and how long a Modbus device may take."""

    ocpp: OcppServer | None = None
    mqtt: MqttBroker | None = None
    # A Modbus request not answered within this long failed: the device is held safe (s).
    modbus_timeout_s: float = 1.0
    # A device whose last good reading is older than this is stale, held safe (s).
    stale_after_s: float = 300.0
