"""Demand-response baselines and delivery, of the GB/T 37016-2018 kind (pure computation).

Method ``gbt37016_5of10`` (named after the standard's practice; the exact clauses of
GB/T 37016 were not available here, so treat the parameters as defaults a user can change):

* candidate days: the most recent days *of the same kind* as the event day (workdays with
  workdays, weekends and holidays with rest days), before the event day, excluding days that
  had a DR event; up to ``m`` of them (10 for workdays, 5 for rest days);
* of those, the ``k`` with the highest mean load over the event window (5 of 10, or 3 of 5);
* the baseline of each interval is the mean over the chosen days of the same interval.

Delivery of a peak-shaving event = sum over the window of (baseline - realised import) x dt
(kWh); valley filling counts the other way. The delivery ratio compares it with the cleared
(or requested) energy, and the response is *effective* when the ratio lies in the event's
band (80-120 % by default, ``DemandResponseEvent.effective_band_frac``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from vpp.model import DemandResponseEvent, DrDirection

METHOD = "gbt37016_5of10"
WORKDAY_DAYS = (5, 10)  # k highest of the last m similar days
REST_DAYS = (3, 5)


@dataclass(frozen=True)
class Baseline:
    """A baseline profile for one day (kW per interval of the day) and how it was made."""

    day: date
    p_kw: np.ndarray
    days_used: tuple[date, ...]
    method: str = METHOD


def similar_days(
    day: date,
    available: Iterable[date],
    is_workday: Callable[[date], bool],
    excluded: Iterable[date] = (),
    m: int | None = None,
) -> list[date]:
    """Up to ``m`` most recent days before ``day`` of the same kind, newest first."""
    kind = is_workday(day)
    m = m if m is not None else (WORKDAY_DAYS if kind else REST_DAYS)[1]
    skip = set(excluded)
    days = sorted((d for d in available if d < day and d not in skip), reverse=True)
    return [d for d in days if is_workday(d) == kind][:m]


def baseline_for_day(
    day: date,
    daily_kw: dict[date, np.ndarray],
    window: slice,
    is_workday: Callable[[date], bool],
    excluded: Iterable[date] = (),
) -> Baseline:
    """GB/T 37016-style baseline of ``day`` from ``daily_kw`` (measured load per past day).

    Parameters
    ----------
    day : the event day.
    daily_kw : measured park import per day, kW per interval (each array a whole day).
    window : the event's intervals within the day; ranks the candidate days.
    is_workday : the working calendar.
    excluded : days that had a DR event (their load is not a baseline).
    """
    k, m = WORKDAY_DAYS if is_workday(day) else REST_DAYS
    cands = similar_days(day, daily_kw, is_workday, excluded, m)
    cands = [d for d in cands if np.all(np.isfinite(daily_kw[d]))]
    if not cands:
        raise ValueError(f"no similar day before {day} to build a {METHOD} baseline from")
    ranked = sorted(cands, key=lambda d: float(np.mean(daily_kw[d][window])), reverse=True)
    chosen = ranked[:k]
    profile = np.mean([daily_kw[d] for d in chosen], axis=0)
    return Baseline(day, profile, tuple(sorted(chosen)))


@dataclass(frozen=True)
class Delivery:
    event_id: str
    requested_kwh: float  # cleared (or requested) kW x window hours
    delivered_kwh: float
    baseline_kwh: float
    realised_kwh: float
    band: tuple[float, float]

    @property
    def ratio(self) -> float:
        return self.delivered_kwh / self.requested_kwh if self.requested_kwh > 0 else 0.0

    @property
    def effective(self) -> bool:
        return self.band[0] <= self.ratio <= self.band[1]


def delivery(
    event: DemandResponseEvent, baseline_kw: np.ndarray, realised_kw: np.ndarray, dt_h: float
) -> Delivery:
    """Delivered energy of ``event`` over its window intervals (arrays cover only the window).

    For an absolute import cap (``import_cap_kw``) the request is baseline - cap.
    """
    base = float(np.sum(baseline_kw) * dt_h)
    real = float(np.sum(realised_kw) * dt_h)
    hours = len(baseline_kw) * dt_h
    if event.direction is DrDirection.PEAK_SHAVING:
        got = base - real
        if event.import_cap_kw is not None and event.cleared_kw is None:
            requested = float(np.sum(np.maximum(baseline_kw - event.import_cap_kw, 0.0)) * dt_h)
        else:
            requested = event.target_kw * hours
    else:
        got = real - base
        requested = event.target_kw * hours
    return Delivery(event.event_id, requested, got, base, real, event.effective_band_frac)


def event_days(events: Iterable[DemandResponseEvent], tz) -> set[date]:
    """Local days touched by any window of ``events``."""
    out: set[date] = set()
    for e in events:
        for w in e.windows:
            d = w.start.astimezone(tz).date()
            while d <= (w.end - timedelta(microseconds=1)).astimezone(tz).date():
                out.add(d)
                d += timedelta(days=1)
    return out
