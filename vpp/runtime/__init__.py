"""The running service: the runtime that plans, stores and publishes each cycle, the planner
and its long-lived process, the scheduler, the plant adapter, typed settings and Prometheus
metrics.

Imports every layer below (park, controllers, forecasts, grid, plan, accounting, store); never
``sim``, ``drivers``, ``api`` or ``commands``.
"""
