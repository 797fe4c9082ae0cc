"""The FastAPI application: ``create_app(settings)``, routes per resource, schemas, API keys
and the audit trail.

Imports ``vpp.runtime``, ``vpp.store``, ``vpp.accounting`` and ``vpp.park``; never
``vpp.commands``.
"""
