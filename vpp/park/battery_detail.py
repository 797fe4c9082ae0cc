"""Optional battery detail for simulators that have it: a charge power that tapers near full
and an efficiency that falls with power. Both are off by default (a battery without them is
the plain model: one rated power, one efficiency each way).

- :class:`ChargeTaper`: above ``soc_start_frac`` the most the battery takes falls linearly
  from ``p_charge_max_kw`` to ``floor_frac x p_charge_max_kw`` at SOC 1 (the whole
  ``e_kwh``). In energy ``e`` (kWh) at the start of an interval that is one linear limit,
  ``p_charge_kw <= a_kw - slope_kw_per_kwh x e`` (:func:`taper_line`): the line lies above
  the rating below the threshold, so the one row holds at every SOC and the dispatch stays
  an LP. ``soc_start_frac`` 1 is no taper.
- :class:`EfficiencySegment`: the charge (and discharge) power is split into segments of the
  rated power, each with its own efficiency, falling from the first segment to the last. The
  stored energy is then a concave piecewise-linear function of the charge power (and the
  energy drawn a convex one of the discharge power): an LP again, and a low power uses the
  efficient segment first. The battery's own ``eta_charge`` / ``eta_discharge`` stay the
  single figures that the rule-based baselines and the end value of stored energy use.

Pure functions on the battery's fields; the dispatch (:mod:`controllers.battery_rows`), the
invariants and the simulated park use the same ones, so that plan and outcome agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vpp.park.model import Battery


@dataclass(frozen=True)
class ChargeTaper:
    """Charge power falling linearly near full (fractions of the battery's ``e_kwh`` and of
    its ``p_charge_max_kw``)."""

    soc_start_frac: float = 0.8  # above this SOC the charge power falls
    floor_frac: float = 0.1  # what is left of the rated charge power at SOC 1


@dataclass(frozen=True)
class EfficiencySegment:
    """One power segment: from the previous segment's top (0 for the first) to
    ``p_max_frac`` of the rated power (charge: ``p_charge_max_kw``, discharge:
    ``p_discharge_max_kw``; the last segment runs to the rated power whatever its
    ``p_max_frac``), stored at ``eta_charge`` and drawn at ``eta_discharge``."""

    p_max_frac: float  # where the next segment begins, a fraction of the rated power
    eta_charge: float  # of the charge power in this segment, stored
    eta_discharge: float  # of the energy drawn for the discharge power in this segment


def taper_line(b: Battery) -> tuple[float, float]:
    """``(a_kw, slope_kw_per_kwh)`` of the taper's limit ``p_charge_kw <= a - slope x e``;
    ``(inf, 0)`` without a taper."""
    t = b.taper
    if t is None or b.e_kwh <= 0 or t.soc_start_frac >= 1.0:
        return np.inf, 0.0
    p = b.p_charge_max_kw
    slope = p * (1.0 - t.floor_frac) / ((1.0 - t.soc_start_frac) * b.e_kwh)
    return p + slope * t.soc_start_frac * b.e_kwh, slope


def charge_limit_kw(b: Battery, e_kwh: float | np.ndarray) -> float | np.ndarray:
    """The most the battery takes (kW, >= 0) at stored energy ``e_kwh`` (the interval's
    start): its rating, under the taper when it has one."""
    a, slope = taper_line(b)
    if not np.isfinite(a):
        return np.full(np.shape(e_kwh), float(b.p_charge_max_kw))
    return np.clip(a - slope * np.asarray(e_kwh, dtype=float), 0.0, b.p_charge_max_kw)


def segments(b: Battery, charge: bool) -> list[tuple[float, float]]:
    """``(width_kw, eta)`` of each segment, charge (``charge`` True) or discharge, in order;
    one segment at the battery's own efficiency without segments."""
    p = b.p_charge_max_kw if charge else b.p_discharge_max_kw
    if not b.efficiency_segments:
        return [(p, b.eta_charge if charge else b.eta_discharge)]
    out, lo, last = [], 0.0, len(b.efficiency_segments) - 1
    for j, s in enumerate(b.efficiency_segments):
        top = 1.0 if j == last else s.p_max_frac  # the last runs to the rated power
        out.append(((top - lo) * p, s.eta_charge if charge else s.eta_discharge))
        lo = s.p_max_frac
    return out


def _split(p_kw: np.ndarray, segs: list[tuple[float, float]]) -> list[np.ndarray]:
    """``p_kw`` split over the segments in order (the last takes any rest beyond the rating)."""
    out, start = [], 0.0
    for j, (width, _) in enumerate(segs):
        top = np.inf if j == len(segs) - 1 else width
        out.append(np.clip(p_kw - start, 0.0, top))
        start += width
    return out


def stored_kw(
    b: Battery, p_charge_kw: float | np.ndarray, p_discharge_kw: float | np.ndarray
) -> np.ndarray:
    """Rate of change of the stored energy (kW, + filling) at the given charge and discharge
    powers (>= 0), each split over its segments in order (the efficient one first)."""
    pc = np.asarray(p_charge_kw, dtype=float)
    pd = np.asarray(p_discharge_kw, dtype=float)
    if not b.efficiency_segments:
        return b.eta_charge * pc - pd / b.eta_discharge
    cs, ds = segments(b, True), segments(b, False)
    gain = sum(eta * x for (_, eta), x in zip(cs, _split(pc, cs), strict=True))
    loss = sum(x / eta for (_, eta), x in zip(ds, _split(pd, ds), strict=True))
    return gain - loss


def charge_for_room_kw(b: Battery, room_kwh: float, dt_h: float) -> float:
    """The most charge power (kW) whose stored energy over ``dt_h`` fits in ``room_kwh``
    (within the rating and the taper at the present energy is the caller's)."""
    room = max(room_kwh, 0.0)
    if not b.efficiency_segments:
        return min(b.p_charge_max_kw, room / (b.eta_charge * dt_h))
    return _invert(segments(b, True), room / dt_h, lambda x, eta: x * eta)


def discharge_for_energy_kw(b: Battery, avail_kwh: float, dt_h: float) -> float:
    """The most discharge power (kW) whose energy drawn over ``dt_h`` stays within
    ``avail_kwh``."""
    avail = max(avail_kwh, 0.0)
    if not b.efficiency_segments:
        return min(b.p_discharge_max_kw, avail * b.eta_discharge / dt_h)
    return _invert(segments(b, False), avail / dt_h, lambda x, eta: x / eta)


def _invert(segs: list[tuple[float, float]], rate_kw: float, energy) -> float:
    """The power (kW, at most the segments' total) whose segment-wise energy rate is
    ``rate_kw``, the segments filled in order."""
    p, left = 0.0, rate_kw
    for width, eta in segs:
        full = energy(width, eta)
        if left <= full:
            return p + width * left / full if full > 0 else p
        p, left = p + width, left - full
    return p


def detail_problems(b: Battery, path: str) -> Iterable[str]:
    """What is wrong with a battery's taper and segments, each message led by its field path."""
    t = b.taper
    if t is not None:
        if not 0.0 <= t.soc_start_frac <= 1.0:
            yield f"{path}.taper.soc_start_frac: must be in [0, 1], got {t.soc_start_frac:g}"
        if not 0.0 <= t.floor_frac <= 1.0:
            yield f"{path}.taper.floor_frac: must be in [0, 1], got {t.floor_frac:g}"
    segs = b.efficiency_segments
    lo, eta_c, eta_d = 0.0, 1.0, 1.0
    for i, s in enumerate(segs):
        at = f"{path}.efficiency_segments[{i}]"
        if not lo < s.p_max_frac <= 1.0:
            yield f"{at}.p_max_frac: must rise above {lo:g} and stay <= 1, got {s.p_max_frac:g}"
        for name, eta, before in (
            ("eta_charge", s.eta_charge, eta_c),
            ("eta_discharge", s.eta_discharge, eta_d),
        ):
            if not 0.0 < eta <= before:
                yield (
                    f"{at}.{name}: must be in (0, {before:g}] (efficiency falls with power, "
                    f"which keeps the dispatch an LP), got {eta:g}"
                )
        lo, eta_c, eta_d = max(lo, s.p_max_frac), s.eta_charge, s.eta_discharge
