"""The park's AC network: the pandapower model (``network``), the batched power flow and its
sensitivities (``flow``), the validate/re-solve loop around a dispatch (``loop``) and the
stress scenarios (``scenarios``).

Imports ``vpp.park`` and ``controllers``; never ``plan``, ``accounting`` or anything above.
"""
