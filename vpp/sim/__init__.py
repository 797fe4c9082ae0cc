"""Closed-loop studies: the simulated park (its physics, weather, EV arrivals and telemetry
faults, and how its truth departs from the profiles), the scenario files that name a park,
its days, DR calls and truth, the loop that runs a controller against it over days, and the
offline report.

Imports every layer below ``store`` and ``store`` itself not at all; never ``runtime``,
``drivers``, ``api`` or ``commands``.
"""
