"""Plant drivers for real devices, each behind :class:`vpp.plan.cycle.PlantDriver`: the static
driver (configured state), and the field driver (:mod:`vpp.drivers.field`) composed of the
OCPP central system, the Modbus/SunSpec adapters and MQTT telemetry.

Imports ``vpp.park``, ``vpp.plan`` and ``vpp.store``; never ``runtime``, ``sim``, ``api`` or
``commands`` (what the runtime offers, its telemetry ingest, is injected).
"""
