"""What may be written to a device: a setpoint within the device's limits, encoded in its
register's integer without rounding past them. Pure functions, no I/O.

Every adapter computes the value it writes here, once: the plan's setpoint (kW, load
convention) is clipped to the intersection of the asset's configured range and what the
device itself reports (its nameplate, its rate settings), then converted to the device's
unit and sign and rounded *towards zero*, so that the decoded register value is never
outside the range (0 lies in every range: idle, or no output). A value that cannot be
represented (NaN, a range that excludes 0) raises :class:`LimitError` and nothing is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Integer ranges of the register types a write can use.
INT_RANGES = {
    "uint16": (0, 0xFFFF - 1),  # 0xFFFF is SunSpec's "not implemented"
    "int16": (-0x7FFF, 0x7FFF),  # -0x8000 likewise
    "uint32": (0, 0xFFFFFFFF - 1),
    "int32": (-0x7FFFFFFF, 0x7FFFFFFF),
}


# A decoded value may exceed the value asked for by this fraction of it (float rounding of
# raw * scale, e.g. 3 * 0.1 = 0.30000000000000004); nothing more.
REL_TOL = 1e-9


class LimitError(ValueError):
    """A setpoint that cannot be written within the device's limits."""


@dataclass(frozen=True)
class Write:
    """One value to write: ``raw`` in the register, which decodes to ``value`` (device unit)
    and stands for ``p_kw`` (load convention) after clipping ``requested_kw`` to the range."""

    raw: int
    value: float
    p_kw: float
    requested_kw: float
    clipped: bool


def intersect(*ranges: tuple[float, float] | None) -> tuple[float, float]:
    """The common part of power ranges (kW, lo <= hi); None entries are ignored.

    Raises
    ------
    LimitError
        When the ranges do not overlap or do not contain 0 (a device that may never idle).
    """
    lo, hi = -math.inf, math.inf
    for r in ranges:
        if r is None:
            continue
        lo, hi = max(lo, float(r[0])), min(hi, float(r[1]))
    if not (lo <= 0.0 <= hi) or math.isnan(lo) or math.isnan(hi):
        raise LimitError(f"no admissible power: range [{lo:g}, {hi:g}] kW does not hold 0")
    return lo, hi


def clip_kw(p_kw: float, rng: tuple[float, float]) -> float:
    """``p_kw`` within ``rng`` (kW); NaN or infinite raises :class:`LimitError`."""
    if p_kw is None or not math.isfinite(p_kw):
        raise LimitError(f"not a finite setpoint: {p_kw!r}")
    return min(max(float(p_kw), rng[0]), rng[1])


def encode(value: float, scale: float, reg_type: str) -> tuple[int, float]:
    """``value`` (device unit) as a register integer ``raw`` with ``raw * scale`` no further
    from 0 than ``value``; returns (raw, decoded value).

    Parameters
    ----------
    value : float
        In the device's unit (W, %), already within its limits.
    scale : float
        Unit per count (a SunSpec scale factor ``10**sf``, a vendor map's scale), > 0.
    reg_type : str
        One of :data:`INT_RANGES`.
    """
    if not math.isfinite(value) or not scale > 0:
        raise LimitError(f"cannot encode {value!r} at scale {scale!r}")
    lo, hi = INT_RANGES[reg_type]
    q = value / scale
    raw = math.trunc(q + math.copysign(1e-9, q))  # 2.9999999999999996 counts is 3
    if abs(raw * scale) > abs(value) * (1 + REL_TOL):  # never further from 0 than value
        raw -= 1 if raw > 0 else -1
    if raw < lo or raw > hi:
        raise LimitError(f"{value:g} at scale {scale:g} does not fit a {reg_type} register")
    return raw, raw * scale


def power_write(
    p_kw: float,
    rng_kw: tuple[float, float],
    scale_w: float,
    reg_type: str,
    generation_positive: bool,
) -> Write:
    """A storage setpoint (kW, + charge) as a register value in W.

    ``generation_positive``: the device counts discharge as + (SunSpec 704 ``WSet``, most
    PCS); else charge as + (the load convention)."""
    p = clip_kw(p_kw, rng_kw)
    w = -p * 1000.0 if generation_positive else p * 1000.0
    raw, value_w = encode(w, scale_w, reg_type)
    sent_kw = (-value_w if generation_positive else value_w) / 1000.0
    return Write(raw, value_w, sent_kw, float(p_kw), abs(p - p_kw) > 1e-9)


def pv_limit_write(
    p_kw: float | None, rng_kw: tuple[float, float], rating_kw: float, scale_pct: float
) -> Write:
    """A PV output limit as a percentage of the inverter's rating (SunSpec ``WMaxLimPct``).

    ``p_kw``: the plan's setpoint (<= 0: the most the array may generate); None releases
    the limit (100 %). The percentage is rounded down, so the inverter is never allowed
    more than the plan's limit."""
    if not rating_kw > 0:
        raise LimitError(f"inverter rating must be > 0 kW, got {rating_kw!r}")
    if p_kw is None:
        raw, pct = encode(100.0, scale_pct, "uint16")
        return Write(raw, pct, -rating_kw * pct / 100.0, math.nan, False)
    p = clip_kw(p_kw, rng_kw)
    pct = min(max(-p / rating_kw * 100.0, 0.0), 100.0)
    raw, value = encode(pct, scale_pct, "uint16")
    return Write(raw, value, -rating_kw * value / 100.0, float(p_kw), abs(p - p_kw) > 1e-9)


def current_limit_a(p_kw: float, voltage_v: float, phases: int) -> float:
    """A charger's power limit (kW) as a current per phase (A), rounded down to 0.1 A."""
    if not (voltage_v > 0 and phases in (1, 3)):
        raise LimitError(f"cannot convert kW to A at {voltage_v!r} V, {phases!r} phases")
    a = max(p_kw, 0.0) * 1000.0 / (voltage_v * phases)
    return math.floor(a * 10.0 + 1e-9) / 10.0


def charger_limit(
    p_kw: float, rng_kw: tuple[float, float], unit: str, voltage_v: float, phases: int
):
    """A charging profile's limit for setpoint ``p_kw``: (limit in ``unit`` W or A, the kW
    it allows). Rounded down (W to 0.1 W, A to 0.1 A); below 0 (V2G) is sent as 0."""
    p = max(clip_kw(p_kw, rng_kw), 0.0)
    if unit == "W":
        w = math.floor(p * 1000.0 * 10.0 + 1e-9) / 10.0
        return w, w / 1000.0
    a = current_limit_a(p, voltage_v, phases)
    return a, a * voltage_v * phases / 1000.0
