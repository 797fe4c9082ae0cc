"""Rules of a DR call that the planner and the settlement must apply alike (pure, no I/O).

* :func:`ask_kw`: what an event asks of each interval, against a baseline.
* :func:`attribute`: which event an interval counts for when events overlap. **Rule: the
  stricter event.** Each interval covered by more than one event counts once, for the event
  that asks the most of it: the largest ``baseline - ceiling`` for peak shaving (the ceiling
  is ``import_cap_kw`` for a cap-only event, ``baseline - cleared/requested kW`` otherwise,
  so the lowest import ceiling wins even where the baseline is under every cap) and the
  largest cleared/requested kW for valley filling. Ties go to the event given first (callers
  order events by their first window's start, then ``event_id``: :func:`ordered`).
* :func:`credit_cny_per_kwh`: the subsidy the planner's objective credits per kWh of
  response, per interval, under the same attribution.
* :func:`in_band` and :func:`money`: when a response is effective and what it earns or
  pays (CNY): the settlement's rule (:func:`vpp.accounting.dr_baseline.compensation`) and
  the planner's valuation of a plan that follows an event or does not
  (:mod:`controllers.dr_choice`) are this one function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

from vpp.park.model import DemandResponseEvent, DrDirection, DrTerms, Horizon, dr_terms


def ordered(events: Iterable[DemandResponseEvent]) -> list[DemandResponseEvent]:
    """Events by their first window's start, then ``event_id`` (the tie-break order)."""
    return sorted(events, key=lambda e: (min(w.start for w in e.windows), e.event_id))


def covers(event: DemandResponseEvent, times: Sequence[datetime]) -> np.ndarray:
    """True for each interval start in ``times`` inside one of ``event``'s windows."""
    return np.array([any(w.start <= t < w.end for w in event.windows) for t in times], bool)


def window_hours(event: DemandResponseEvent) -> float:
    """Total length of ``event``'s windows (h)."""
    return sum((w.end - w.start).total_seconds() for w in event.windows) / 3600.0


def ask_kw(event: DemandResponseEvent, baseline_kw: np.ndarray) -> np.ndarray:
    """Response ``event`` asks per interval (kW, >= 0, in the event's direction).

    Parameters
    ----------
    event : the event.
    baseline_kw : the park's import without DR, kW per interval (+ import).
    """
    base = np.asarray(baseline_kw, dtype=float)
    if event.cap_only:
        return np.maximum(base - event.import_cap_kw, 0.0)
    return np.full(base.shape, float(event.target_kw))


def strictness_kw(event: DemandResponseEvent, baseline_kw: np.ndarray) -> np.ndarray:
    """What ranks overlapping events (kW; larger = stricter): ``baseline - cap`` for a
    cap-only event (negative where the baseline is under the cap), the cleared or requested
    kW otherwise."""
    base = np.asarray(baseline_kw, dtype=float)
    if event.cap_only:
        return base - event.import_cap_kw
    return np.full(base.shape, float(event.target_kw))


def attribute(covered: np.ndarray, strictness: np.ndarray) -> np.ndarray:
    """Owner of each interval: the index of the stricter covering event, -1 where none.

    Parameters
    ----------
    covered : bool, (events, intervals): the event's windows cover the interval.
    strictness : kW, (events, intervals): :func:`strictness_kw` of each event (rows in the
        tie-break order: on equal strictness the lower index wins).
    """
    covered = np.asarray(covered, dtype=bool)
    if covered.size == 0:
        return np.full(covered.shape[-1] if covered.ndim == 2 else 0, -1)
    score = np.where(covered, np.asarray(strictness, dtype=float), -np.inf)
    owner = np.argmax(score, axis=0)  # first maximum: the tie-break order
    return np.where(covered.any(axis=0), owner, -1)


def credit_cny_per_kwh(
    events: Iterable[DemandResponseEvent],
    horizon: Horizon,
    baseline_kw: np.ndarray,
    defaults: DrTerms | None = None,
) -> np.ndarray:
    """Subsidy per kWh of import below ``baseline_kw`` (CNY/kWh per interval) for the plan.

    Each interval earns the terms of the event it is attributed to (:func:`attribute`):
    ``subsidy_cny_per_kwh`` plus ``subsidy_cny_per_kw`` over the event's window hours (a
    per-kW subsidy pays on the mean response, so each kWh of it earns that share), where
    the event asks something (a cap-only event: where the baseline is over the cap). The
    sign carries the direction: positive for peak shaving (each kWh *less* import earns),
    negative for valley filling (each kWh *more* import earns). The planner's revenue is
    ``sum(credit * (baseline - import)) * dt``; the settlement pays only inside the band,
    which the DR limits hold the plan to.
    """
    events = ordered(events)
    times = horizon.times()
    n = horizon.n
    base = np.asarray(baseline_kw, dtype=float)
    out = np.zeros(n)
    if not events:
        return out
    covered = np.array([covers(e, times) for e in events]).reshape(len(events), n)
    owner = attribute(covered, np.array([strictness_kw(e, base) for e in events]))
    for i, e in enumerate(events):
        t = dr_terms(e, defaults)
        hours = window_hours(e)
        rate = t.subsidy_cny_per_kwh + (t.subsidy_cny_per_kw / hours if hours > 0 else 0.0)
        sign = 1.0 if e.direction is DrDirection.PEAK_SHAVING else -1.0
        mine = (owner == i) & (ask_kw(e, base) > 0)
        out[mine] = sign * rate
    return out


def in_band(delivered_kwh: float, requested_kwh: float, band: tuple[float, float]) -> bool:
    """Whether ``delivered_kwh`` of ``requested_kwh`` lies in ``band`` (fractions of the
    request, ends included); never when nothing was requested (no ratio exists)."""
    if requested_kwh <= 0:
        return False
    return band[0] <= delivered_kwh / requested_kwh <= band[1]


def money(
    delivered_kwh: float,
    requested_kwh: float,
    hours: float,
    band: tuple[float, float],
    terms: DrTerms,
    effective: bool,
    e_over_cap_kwh: float | None = None,
) -> tuple[float, float, float, float, float, float]:
    """What a response earns and pays under ``terms`` (the settlement's rule).

    An effective response is paid ``subsidy_cny_per_kwh`` on its delivered energy (at most
    the band's top times the request; nothing where nothing was requested) and
    ``subsidy_cny_per_kw`` on that energy's mean power over ``hours``. A response short of
    its band pays ``nonperformance_cny_per_kwh`` on the shortfall to the band's lower edge;
    a cap-only event out of compliance (``e_over_cap_kwh`` given) pays it on the energy
    above the cap. A response over the band's top is neither paid nor penalised.

    Parameters
    ----------
    delivered_kwh, requested_kwh : kWh, in the event's direction.
    hours : h, the settled hours.
    band : the effective band (fractions of the request).
    terms : the event's terms (:func:`vpp.park.model.dr_terms`).
    effective : whether the response counts (in band, or compliant with its cap).
    e_over_cap_kwh : kWh above the cap, for a cap-only event; None otherwise.

    Returns
    -------
    paid_kwh, paid_kw, shortfall_kwh, subsidy_energy_cny, subsidy_capacity_cny, penalty_cny
    """
    lo, hi = band
    paid = shortfall = 0.0
    if effective:
        paid = float(np.clip(delivered_kwh, 0.0, hi * requested_kwh)) if requested_kwh > 0 else 0.0
    elif e_over_cap_kwh is not None:
        shortfall = float(e_over_cap_kwh)
    elif requested_kwh > 0:
        shortfall = max(lo * requested_kwh - delivered_kwh, 0.0)
    paid_kw = paid / hours if hours > 0 else 0.0
    return (
        paid,
        paid_kw,
        shortfall,
        terms.subsidy_cny_per_kwh * paid,
        terms.subsidy_cny_per_kw * paid_kw,
        terms.nonperformance_cny_per_kwh * shortfall,
    )
