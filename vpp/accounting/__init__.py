"""Accounting on arrays: carbon and energy, KPIs, DR baselines and settlement, what the park
can offer (flexibility) and the park without the VPP (counterfactual). Pure computation; the
stored readings it settles come from ``vpp.store``.

Imports ``vpp.park`` and ``controllers``; never ``grid``, ``plan``, ``store`` or above.
"""
