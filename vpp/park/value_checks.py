"""Field-path problems of single values, shared by the park file's checks: each yields
``"<path>: must be ..., got <value>"`` when the value is out of its range."""

from __future__ import annotations

from collections.abc import Iterable


def in_range(path: str, value: float, lo: float, hi: float, lo_open: bool = False) -> Iterable[str]:
    bad = value <= lo if lo_open else value < lo
    if bad or value > hi:
        lb = "(" if lo_open else "["
        yield f"{path}: must be in {lb}{lo:g}, {hi:g}], got {value:g}"


def nonneg(path: str, value: float) -> Iterable[str]:
    if value < 0:
        yield f"{path}: must be >= 0, got {value:g}"


def positive(path: str, value: float) -> Iterable[str]:
    if value <= 0:
        yield f"{path}: must be > 0, got {value:g}"
