"""One control interval, shared by the service and the simulation: ``prepare`` turns the park,
its measured state and forecasts into a dispatch problem, ``cycle`` runs one interval (or its
fallback), ``history_forecasters`` forecast from the history the park has measured.

Imports ``vpp.park``, ``controllers`` and ``forecasts``; never ``grid``, ``accounting`` or above.
"""
