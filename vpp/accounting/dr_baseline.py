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
from datetime import date, datetime, timedelta

import numpy as np

from vpp.park.model import DemandResponseEvent, DrDirection

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


# ------------------------------------------------------------------------------------------
# Settlement from the park meter after an event's window (what the service stores)
# ------------------------------------------------------------------------------------------
PRE_EVENT_METHOD = "pre_event_mean_1h"  # when no similar day has complete meter data
PRE_EVENT = timedelta(hours=1)
HISTORY_DAYS = 30  # of meter data a settlement reads: enough for 10 workdays or 5 rest days


def interval_means(
    ts_s: np.ndarray, p_kw: np.ndarray, start_s: float, step_s: float, n: int
) -> np.ndarray:
    """Mean of the readings in each of ``n`` intervals of ``step_s`` from ``start_s``
    (Unix seconds; a reading at ``t`` counts in the interval that holds ``t``). kW; NaN in
    an interval without a reading."""
    ts_s, p_kw = np.asarray(ts_s, dtype=float), np.asarray(p_kw, dtype=float)
    k = np.floor((ts_s - start_s) / step_s).astype(np.int64)
    ok = (k >= 0) & (k < n) & np.isfinite(p_kw)
    sums = np.bincount(k[ok], weights=p_kw[ok], minlength=n)
    counts = np.bincount(k[ok], minlength=n)
    out = np.full(n, np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


@dataclass(frozen=True)
class Settlement:
    """What an event delivered, measured on the park meter once its window is over.

    ``baseline_kw`` and ``realised_kw`` hold one value per interval of the windows
    (``times``: interval starts); ``realised_kw`` is NaN where the meter has no reading, and
    ``delivery`` counts only metered intervals.
    """

    event_id: str
    method: str  # the baseline method used
    days_used: tuple[date, ...]
    step: timedelta
    times: tuple[datetime, ...]
    baseline_kw: np.ndarray
    realised_kw: np.ndarray
    delivery: Delivery

    @property
    def intervals_metered(self) -> int:
        return int(np.isfinite(self.realised_kw).sum())


def settle(
    event: DemandResponseEvent,
    meter_start: datetime,
    step: timedelta,
    meter_kw: np.ndarray,
    is_workday: Callable[[date], bool],
    excluded: Iterable[date] = (),
) -> Settlement:
    """Settle ``event`` from the park meter's interval means.

    Parameters
    ----------
    event : the event; every interval of its windows is settled.
    meter_start : a local midnight (its zone is the park's) at least the history the
        baseline needs before the event day.
    step : the interval, e.g. 15 minutes; a day must hold a whole number of them.
    meter_kw : park meter, kW (+ import, load convention), one value per interval from
        ``meter_start`` to at least the end of the last window; NaN = no reading.
    is_workday : the working calendar.
    excluded : days that had a DR event (not a baseline day).

    The baseline is the GB/T 37016-style one (:func:`baseline_for_day`) from the days with
    a complete meter record; without any, the mean metered power of the hour before the
    first window (``pre_event_mean_1h``). Raises ValueError when neither exists.
    """
    tz = meter_start.tzinfo
    spd = round(timedelta(days=1) / step)
    meter_kw = np.asarray(meter_kw, dtype=float)
    day0 = meter_start.date()
    daily = {
        day0 + timedelta(days=i): meter_kw[i * spd : (i + 1) * spd]
        for i in range(len(meter_kw) // spd)
    }
    times = [
        w.start + j * step
        for w in sorted(event.windows, key=lambda w: w.start)
        for j in range(round((w.end - w.start) / step))
    ]
    index = [round((t - meter_start) / step) for t in times]
    if not times or min(index) < 0 or max(index) >= len(meter_kw):
        raise ValueError(f"{event.event_id}: the meter series does not cover the windows")
    realised = meter_kw[index]
    excluded = set(excluded)
    base, method, used = np.full(len(times), np.nan), METHOD, set()
    try:
        for day in sorted({t.astimezone(tz).date() for t in times}):
            ks = [k for k, t in zip(index, times, strict=True) if t.astimezone(tz).date() == day]
            k0 = round((datetime.combine(day, datetime.min.time(), tzinfo=tz) - meter_start) / step)
            window = slice(min(ks) - k0, max(ks) - k0 + 1)
            history = {d: v for d, v in daily.items() if d < day and len(v) == spd}
            b = baseline_for_day(day, history, window, is_workday, excluded)
            for i, k in enumerate(index):
                if times[i].astimezone(tz).date() == day:
                    base[i] = b.p_kw[k - k0]
            used |= set(b.days_used)
    except ValueError:
        k_first = min(index)
        pre = meter_kw[max(k_first - round(PRE_EVENT / step), 0) : k_first]
        if not np.isfinite(pre).any():
            raise ValueError(
                f"{event.event_id}: no baseline: no similar day with complete meter data and "
                f"no reading in the hour before the window"
            ) from None
        base, method, used = np.full(len(times), float(np.nanmean(pre))), PRE_EVENT_METHOD, set()
    ok = np.isfinite(realised) & np.isfinite(base)
    dt_h = step.total_seconds() / 3600.0
    return Settlement(
        event.event_id,
        method,
        tuple(sorted(used)),
        step,
        tuple(times),
        base,
        realised,
        delivery(event, base[ok], realised[ok], dt_h),
    )
