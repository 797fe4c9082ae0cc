"""Scenario sweeps: many closed-loop simulations of one park, one task per case on Dask.

- :mod:`vpp.sweep.spec`: the sweep file (axes, how they combine), read and validated once;
  every case resolved (its park variant, tariff, DR calls, truth) and hashed before any runs;
- :mod:`vpp.sweep.cases`: one case in a worker (:func:`vpp.sim.closed_loop.simulate`), its
  realised KPIs, its error and traceback when it fails;
- :mod:`vpp.sweep.runner`: the Dask client (a ``LocalCluster`` or a scheduler's address),
  resumable per-case result files written atomically, progress on stderr;
- :mod:`vpp.sweep.results`: the table of every case (Parquet and CSV), rebuilt from those files;
- :mod:`vpp.sweep.summary`: the offline HTML summary with box plots across seeds.

Sits above ``vpp.sim`` (it calls it) and below ``api`` and ``vpp.commands``.
"""
