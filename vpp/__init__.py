"""park-vpp: the park and its runtime, one sub-package per concern.

Layers, lowest first (``.importlinter`` enforces them; a package imports only from lower
layers): ``park`` and ``errors``; ``controllers`` and ``forecasts`` (top-level, pure);
``grid``, ``plan``, ``accounting``; ``store``; ``sim``, ``runtime``, ``drivers``; ``api``;
``commands``; ``cli``.
"""
