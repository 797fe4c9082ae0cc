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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from vpp.park import dr_rules
from vpp.park.model import (
    DemandResponseEvent,
    DrDirection,
    DrStatus,
    DrTerms,
    Horizon,
    dr_terms,
)

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


COMPLIANCE_TOL_KW = 1e-3  # an interval at the cap (to rounding) complies


@dataclass(frozen=True)
class Compliance:
    """How a cap-only event held its cap over the settled intervals."""

    cap_kw: float
    intervals: int  # settled (metered) intervals
    intervals_over: int  # of them, above the cap
    e_over_kwh: float  # energy imported above the cap

    @property
    def compliant_frac(self) -> float | None:
        """Share of the settled intervals at or under the cap (None: nothing settled)."""
        return 1.0 - self.intervals_over / self.intervals if self.intervals else None


@dataclass(frozen=True)
class Delivery:
    """Energy an event delivered against its baseline over the intervals settled for it.

    ``ratio`` is None when nothing was requested (no ratio exists, it is not 0). A cap-only
    event (``DemandResponseEvent.cap_only``) carries ``compliance`` and is *effective* when
    every settled interval is at or under the cap; any other event is effective when its
    ratio lies inside ``band``.
    """

    event_id: str
    requested_kwh: float  # cleared (or requested) kW x hours; cap-only: baseline above cap
    delivered_kwh: float
    baseline_kwh: float
    realised_kwh: float
    band: tuple[float, float]
    compliance: Compliance | None = None
    hours: float = 0.0  # settled hours (the per-kW subsidy pays on the mean response)

    @property
    def ratio(self) -> float | None:
        return self.delivered_kwh / self.requested_kwh if self.requested_kwh > 0 else None

    @property
    def effective(self) -> bool:
        if self.compliance is not None:
            return self.compliance.intervals > 0 and self.compliance.intervals_over == 0
        return dr_rules.in_band(self.delivered_kwh, self.requested_kwh, self.band)


def delivery(
    event: DemandResponseEvent, baseline_kw: np.ndarray, realised_kw: np.ndarray, dt_h: float
) -> Delivery:
    """Delivered energy of ``event`` over the settled intervals (arrays hold only those).

    For an absolute import cap (``import_cap_kw``) without a cleared amount the request is
    the baseline above the cap, and the event is settled as compliance with the cap.
    """
    baseline_kw = np.asarray(baseline_kw, dtype=float)
    realised_kw = np.asarray(realised_kw, dtype=float)
    base = float(np.sum(baseline_kw) * dt_h)
    real = float(np.sum(realised_kw) * dt_h)
    hours = len(baseline_kw) * dt_h
    compliance = None
    if event.direction is DrDirection.PEAK_SHAVING:
        got = base - real
        if event.cap_only:
            cap = float(event.import_cap_kw)
            requested = float(np.sum(np.maximum(baseline_kw - cap, 0.0)) * dt_h)
            over = realised_kw > cap + COMPLIANCE_TOL_KW
            e_over = float(np.sum(np.maximum(realised_kw - cap, 0.0)[over]) * dt_h)
            compliance = Compliance(cap, len(realised_kw), int(over.sum()), e_over)
        else:
            requested = event.target_kw * hours
    else:
        got = real - base
        requested = event.target_kw * hours
    return Delivery(
        event.event_id, requested, got, base, real, event.effective_band_frac, compliance, hours
    )


@dataclass(frozen=True)
class Compensation:
    """What an event earns (CNY) on its settlement, and the quantities it is paid on.

    Rules: an effective event is paid ``subsidy_cny_per_kwh`` on its delivered energy (at
    most the band's top times the request; nothing where nothing was requested) and
    ``subsidy_cny_per_kw`` on that energy's mean power over the settled hours. An event
    short of its band pays ``nonperformance_cny_per_kwh`` on the shortfall to the band's
    lower edge; a cap-only event out of compliance pays it on the energy above the cap. An
    event over its band's top is neither paid nor penalised.
    """

    paid_kwh: float
    paid_kw: float
    shortfall_kwh: float
    subsidy_energy_cny: float
    subsidy_capacity_cny: float
    penalty_cny: float

    @property
    def total_cny(self) -> float:
        """Subsidies less the penalty (CNY; + is income to the park)."""
        return self.subsidy_energy_cny + self.subsidy_capacity_cny - self.penalty_cny


def compensation(d: Delivery, terms: DrTerms) -> Compensation:
    """:class:`Compensation` of delivery ``d`` under ``terms`` (see :func:`dr_terms`); the
    rule is :func:`vpp.park.dr_rules.money`, which the planner values its plans by."""
    over = d.compliance.e_over_kwh if d.compliance is not None else None
    return Compensation(
        *dr_rules.money(d.delivered_kwh, d.requested_kwh, d.hours, d.band, terms, d.effective, over)
    )


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
    (``times``: interval starts); ``realised_kw`` is NaN where the meter has no reading.
    ``owned`` marks the intervals attributed to this event (an interval another, stricter
    event also covers counts for that one: :func:`vpp.park.dr_rules.attribute`; the events
    that took intervals are in ``shared_with``). ``delivery`` counts only metered, owned
    intervals; ``compensation`` is what it earns under ``terms``.
    """

    event_id: str
    method: str  # the baseline method used
    days_used: tuple[date, ...]
    step: timedelta
    times: tuple[datetime, ...]
    baseline_kw: np.ndarray
    realised_kw: np.ndarray
    delivery: Delivery
    owned: np.ndarray | None = None
    shared_with: tuple[str, ...] = ()
    terms: DrTerms = field(default_factory=DrTerms)
    compensation: Compensation | None = None

    @property
    def intervals_metered(self) -> int:
        return int(np.isfinite(self.realised_kw).sum())

    @property
    def intervals_owned(self) -> int:
        return len(self.times) if self.owned is None else int(np.sum(self.owned))


def _window_times(event: DemandResponseEvent, step: timedelta) -> list[datetime]:
    return [
        w.start + j * step
        for w in sorted(event.windows, key=lambda w: w.start)
        for j in range(round((w.end - w.start) / step))
    ]


def _meter_baseline(
    event: DemandResponseEvent,
    meter_start: datetime,
    step: timedelta,
    meter_kw: np.ndarray,
    is_workday: Callable[[date], bool],
    excluded: set[date],
) -> tuple[list[datetime], list[int], np.ndarray, str, set[date]]:
    """Interval starts of ``event``'s windows, their meter indices, the baseline there, the
    method and the days used (see :func:`settle`)."""
    tz = meter_start.tzinfo
    spd = round(timedelta(days=1) / step)
    day0 = meter_start.date()
    daily = {
        day0 + timedelta(days=i): meter_kw[i * spd : (i + 1) * spd]
        for i in range(len(meter_kw) // spd)
    }
    times = _window_times(event, step)
    index = [round((t - meter_start) / step) for t in times]
    if not times or min(index) < 0 or max(index) >= len(meter_kw):
        raise ValueError(f"{event.event_id}: the meter series does not cover the windows")
    base, used = np.full(len(times), np.nan), set()
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
        return times, index, base, METHOD, used
    except ValueError:
        k_first = min(index)
        pre = meter_kw[max(k_first - round(PRE_EVENT / step), 0) : k_first]
        if not np.isfinite(pre).any():
            raise ValueError(
                f"{event.event_id}: no baseline: no similar day with complete meter data and "
                f"no reading in the hour before the window"
            ) from None
        return times, index, np.full(len(times), float(np.nanmean(pre))), PRE_EVENT_METHOD, set()


def _owned_in_meter(
    event: DemandResponseEvent,
    times: list[datetime],
    base: np.ndarray,
    others: list[DemandResponseEvent],
    baseline_of: Callable[[DemandResponseEvent], dict[datetime, float]],
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Which of ``event``'s intervals are its own, and the events that took the others."""
    overlapping = [o for o in others if dr_rules.covers(o, times).any()]
    if not overlapping:
        return np.ones(len(times), bool), ()
    group = dr_rules.ordered([event, *overlapping])
    covered, strict = [], []
    for e in group:
        if e is event:
            b = base
        else:
            got = baseline_of(e) if e.cap_only else {}
            b = np.array([got.get(t, base[i]) for i, t in enumerate(times)])
        covered.append(dr_rules.covers(e, times))
        strict.append(dr_rules.strictness_kw(e, b))
    owner = dr_rules.attribute(np.array(covered), np.array(strict))
    me = group.index(event)
    taken = {group[int(k)].event_id for k in owner if k >= 0 and k != me}
    return owner == me, tuple(sorted(taken))


def settle(
    event: DemandResponseEvent,
    meter_start: datetime,
    step: timedelta,
    meter_kw: np.ndarray,
    is_workday: Callable[[date], bool],
    excluded: Iterable[date] = (),
    others: Iterable[DemandResponseEvent] = (),
    defaults: DrTerms | None = None,
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
    others : the other called events; where one overlaps ``event`` each interval counts
        once, for the stricter event (:mod:`vpp.park.dr_rules`; a cap-only event is ranked
        on its own baseline, built the same way).
    defaults : the park's compensation terms (``Site.dr_defaults``); the event's own win.

    The baseline is the GB/T 37016-style one (:func:`baseline_for_day`) from the days with
    a complete meter record; without any, the mean metered power of the hour before the
    first window (``pre_event_mean_1h``). Raises ValueError when neither exists.
    """
    meter_kw = np.asarray(meter_kw, dtype=float)
    excluded = set(excluded)
    times, index, base, method, used = _meter_baseline(
        event, meter_start, step, meter_kw, is_workday, excluded
    )

    def baseline_of(other: DemandResponseEvent) -> dict[datetime, float]:
        try:
            t, _, b, _, _ = _meter_baseline(
                other, meter_start, step, meter_kw, is_workday, excluded
            )
        except ValueError:
            return {}
        return dict(zip(t, b, strict=True))

    others = [o for o in others if o.event_id != event.event_id]
    owned, shared = _owned_in_meter(event, times, base, others, baseline_of)
    realised = meter_kw[index]
    ok = np.isfinite(realised) & np.isfinite(base) & owned
    dt_h = step.total_seconds() / 3600.0
    d = delivery(event, base[ok], realised[ok], dt_h)
    terms = dr_terms(event, defaults)
    return Settlement(
        event.event_id,
        method,
        tuple(sorted(used)),
        step,
        tuple(times),
        base,
        realised,
        d,
        owned,
        shared,
        terms,
        compensation(d, terms),
    )


# ------------------------------------------------------------------------------------------
# A whole run's events at once (the closed-loop simulation's KPIs)
# ------------------------------------------------------------------------------------------
def settle_run(
    events: Iterable[DemandResponseEvent],
    horizon: Horizon,
    realised_kw: np.ndarray,
    baseline_kw: np.ndarray,
    defaults: DrTerms | None = None,
    method: str = METHOD,
) -> list[Settlement]:
    """Settle every called event of a run whose windows lie inside ``horizon``.

    Parameters
    ----------
    events : the run's events; declined and cancelled ones, and those with a window
        outside ``horizon``, are left out (and take no interval from the others).
    horizon : the run's intervals.
    realised_kw : park import per interval of ``horizon``, kW (+ import); NaN = unmetered.
    baseline_kw : the park's baseline per interval of ``horizon``, kW (one array for all
        events), or a mapping ``event_id -> array`` when each event has its own.
    defaults : the park's compensation terms (``Site.dr_defaults``); an event's own win.
    method : the baseline method, carried as each settlement's label.

    Returns
    -------
    One :class:`Settlement` per settled event, ordered by first window start then id: each
    interval counted once, for the stricter event (:mod:`vpp.park.dr_rules`), cap-only
    events settled as compliance, and the compensation in CNY.
    """
    n, dt_h = horizon.n, horizon.dt_h
    real = np.asarray(realised_kw, dtype=float)
    if real.shape != (n,):
        raise ValueError(f"realised_kw: expected {n} values, got shape {real.shape}")
    called = [
        e
        for e in dr_rules.ordered(events)
        if e.status not in (DrStatus.DECLINED, DrStatus.CANCELLED)
        and all(w.start >= horizon.start and w.end <= horizon.end for w in e.windows)
    ]

    def base_of(e: DemandResponseEvent) -> np.ndarray:
        b = baseline_kw[e.event_id] if isinstance(baseline_kw, Mapping) else baseline_kw
        b = np.asarray(b, dtype=float)
        if b.shape != (n,):
            raise ValueError(f"baseline_kw[{e.event_id!r}]: expected {n} values, got {b.shape}")
        return b

    times = horizon.times()
    covered = np.array([dr_rules.covers(e, times) for e in called]).reshape(len(called), n)
    strict = [dr_rules.strictness_kw(e, base_of(e)) for e in called]
    owner = dr_rules.attribute(covered, np.array(strict).reshape(len(called), n))
    out = []
    for i, e in enumerate(called):
        mine = covered[i]
        base = base_of(e)
        owned = owner[mine] == i
        taken = {called[int(k)].event_id for k in owner[mine] if k != i}
        ok = owned & np.isfinite(real[mine]) & np.isfinite(base[mine])
        d = delivery(e, base[mine][ok], real[mine][ok], dt_h)
        terms = dr_terms(e, defaults)
        out.append(
            Settlement(
                e.event_id,
                method,
                (),
                horizon.step,
                tuple(t for t, m in zip(times, mine, strict=True) if m),
                base[mine],
                real[mine],
                d,
                owned,
                tuple(sorted(taken)),
                terms,
                compensation(d, terms),
            )
        )
    return out


def summary(settlements: Iterable[Settlement]) -> dict[str, float | int]:
    """The DR headline of a run, per event, never a sum of unlike ratios.

    ``events``: settlements with at least one interval of their own (an event whose every
    interval went to a stricter one is counted in ``absorbed`` instead); ``effective``: of
    those, how many were effective; ``compensation_cny``: subsidies less penalties (CNY),
    with its parts ``subsidy_cny`` and ``penalty_cny``; ``cap_only``: events settled as
    compliance.
    """
    own = absorbed = effective = cap_only = 0
    subsidy = penalty = 0.0
    for s in settlements:
        if s.intervals_owned == 0:
            absorbed += 1
            continue
        own += 1
        effective += int(s.delivery.effective)
        cap_only += int(s.delivery.compliance is not None)
        c = s.compensation or compensation(s.delivery, s.terms)
        subsidy += c.subsidy_energy_cny + c.subsidy_capacity_cny
        penalty += c.penalty_cny
    return {
        "events": own,
        "effective": effective,
        "absorbed": absorbed,
        "cap_only": cap_only,
        "compensation_cny": subsidy - penalty,
        "subsidy_cny": subsidy,
        "penalty_cny": penalty,
    }
