"""Plant drivers for real devices, each behind :class:`vpp.plan.cycle.PlantDriver` (static
telemetry now; field protocols next).

Imports ``vpp.park`` and ``vpp.plan``; never ``runtime``, ``sim``, ``api`` or ``commands``.
"""
