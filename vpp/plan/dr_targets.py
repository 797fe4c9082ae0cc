"""DR targets of one plan: per called event, the energy still to deliver and an import corridor.

Pure computation, used by :func:`vpp.plan.prepare.build_problem`; :func:`dr_targets` takes
plain arrays so that tests can drive it.

A DR response is settled on the *energy* delivered over the event's own intervals
(:mod:`vpp.accounting.dr_baseline`) and is effective only when delivered / requested lies in
the event's band (80-120 % by default). So the plan tracks the event as a whole, with
feedback: every cycle it takes what the park meter says was delivered so far
(:class:`vpp.park.state.DrProgress`) and re-aims the rest at the band's middle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from controllers.problem import DrEventRow
from vpp.park import dr_rules
from vpp.park.model import (
    DemandResponseEvent,
    DrDirection,
    DrStatus,
    DrTerms,
    Horizon,
    dr_terms,
)
from vpp.park.state import DrProgress

DR_ACTIVE = (DrStatus.CONFIRMED, DrStatus.ACTIVE)


@dataclass(frozen=True)
class DrTargets:
    """The import corridor per interval (``+inf`` / ``-inf`` where no event owns the
    interval) and one :class:`~controllers.problem.DrEventRow` per event with own intervals
    on the horizon."""

    import_max_kw: np.ndarray
    import_min_kw: np.ndarray
    rows: tuple[DrEventRow, ...]


def dr_targets(
    events: Iterable[DemandResponseEvent],
    horizon: Horizon,
    baseline_kw: np.ndarray,
    margin_kw: np.ndarray | float = 0.0,
    reserve_kw: np.ndarray | float = 0.0,
    progress: Mapping[str, DrProgress] | None = None,
    defaults: DrTerms | None = None,
) -> DrTargets:
    """Corridor and energy rows of the confirmed and active events.

    Parameters
    ----------
    events : the DR events; only confirmed and active ones are planned for.
    horizon : the plan's intervals.
    baseline_kw : the park's import without DR per interval (kW, + import), the baseline
        the settlement uses.
    margin_kw : the forecast error of the park's net load a settlement sees, per interval
        (kW, >= 0; prepare's diversified P90-P50 spread times ``risk_frac``).
    reserve_kw : the non-diversified headroom (kW, >= 0), held on the request side of the
        windows that have not begun.
    progress : per event id, what the park meter says the event delivered so far over its
        own past intervals (absent: nothing metered, the past is not counted).
    defaults : the park's DR terms (``Site.dr_defaults``); an event's own win.

    Returns
    -------
    DrTargets

    Notes
    -----
    Each interval belongs to one event, the stricter one where several cover it
    (:func:`vpp.park.dr_rules.attribute`); its corridor is that event's, and each event's
    energy row covers only its own intervals. For an event asking ``T`` kW (cleared or
    requested) with band ``[lo, hi]``, middle ``mid``:

    * **Aim.** Requested energy ``Q`` = metered past + ``T x dt`` per own interval ahead
      (on the horizon and after it). The event should end at ``mid x Q``; what remains,
      ``R = mid x Q - delivered_so_far``, is spread evenly over the own intervals left:
      a response ``r = R / (intervals left x dt)`` kW each. A past that over-delivered
      lowers ``r``, one that fell short raises it: the feedback that brings the event back
      to the middle, every cycle.
    * **Energy row** (soft): delivery over the own intervals on the horizon within
      ``R_h +- tol`` (``R_h`` = ``r`` over those intervals), ``tol = min(h/2 x Q,
      max(h x Q - e_last, 0))`` with ``h = (hi - lo) / 2`` the band's half width and
      ``e_last`` the largest one-interval forecast error of the own intervals ahead
      (``margin x dt``). Why: re-aimed every cycle, the error left when the event ends is
      mostly the last interval's, which no later cycle corrects; a plan anywhere inside the
      row ends at most ``tol + e_last <= h x Q`` from the middle, inside the band. Half the
      band at most: the plan keeps at least half the band for what the forecast does not
      know (a zero ``margin`` with ``risk_frac`` 0 would otherwise let the plan sit on the
      band's edge). Inside the row the LP may trade response against its cost (deliver less
      where more would need a new peak); it does not chase the subsidy to the row's top
      (the settlement pays all or nothing, so the middle is worth most: the dispatch
      credits a followed event's subsidy at its aim, :mod:`controllers.dr_rows`).
    * **Corridor** per own interval, around the aim: response in ``[r - w, r + w]`` kW,
      ``w = max(margin, h/2 x T)``: the interval's forecast error, the spread the realised
      import shows around any plan anyway, so a narrower corridor would constrain the plan
      without making the outcome any surer; the plan itself stays at the aim unless a cost
      says otherwise (a tie-break, :mod:`controllers.dr_block`), and the next cycle re-aims
      from what was metered. The floor ``h/2 x T`` keeps it open when the forecast claims
      no error; it is never clipped to a point (cap == floor), and ``R_h +- tol`` always
      meets it.
    * **Reserve** (``DrEventRow.reserve_kw``). In a window that has not begun the request
      side moves further by ``reserve_kw`` (the cap of peak shaving down, the floor of
      valley filling up) and the row's top with it, so the energy for a response under a
      worse forecast is there when the window opens. A margin, not the request: soft at a
      price below any demand-charge rise (the plan holds it where that is cheap, never by
      setting a new peak), and left out of the plans that decide whether to follow. Dropped
      once the window has begun: a plan short of energy would otherwise fall short now to
      meet a reserve later.
    * **Valley filling** is peak shaving with the sign flipped: response = import -
      baseline, the corridor's request side is its floor.
    * **Cap-only events** (an absolute ``import_cap_kw``, no cleared amount: settled as
      compliance) stay a cap: import <= cap - margin (the reserve below it, soft), and an
      over-delivery floor ``baseline - hi x ask - margin`` where the baseline is over the
      cap (``ask`` = the baseline above the cap; energy beyond ``hi x ask`` is not paid).
      No energy row.

    An event with an import cap *and* a cleared amount is settled on the cleared amount
    (:func:`vpp.accounting.dr_baseline.delivery`) and planned as such; its cap is not held.
    """
    n = horizon.n
    base = np.asarray(baseline_kw, dtype=float)
    margin = np.broadcast_to(np.maximum(np.asarray(margin_kw, dtype=float), 0.0), (n,))
    reserve = np.broadcast_to(np.maximum(np.asarray(reserve_kw, dtype=float), 0.0), (n,))
    progress = progress or {}
    active = dr_rules.ordered(e for e in events if e.status in DR_ACTIVE)
    dr_max, dr_min = np.full(n, np.inf), np.full(n, -np.inf)
    if not active:
        return DrTargets(dr_max, dr_min, ())
    times = horizon.times()
    covered = np.array([dr_rules.covers(e, times) for e in active]).reshape(len(active), n)
    strict = np.array([dr_rules.strictness_kw(e, base) for e in active]).reshape(len(active), n)
    owner = dr_rules.attribute(covered, strict)
    beyond = _beyond_owned(active, horizon)
    rows = []
    for i, e in enumerate(active):
        owned = owner == i
        if not owned.any():
            continue
        rsv = np.where(_not_begun(e, times, horizon.start), reserve, 0.0)
        prog = progress.get(e.event_id)
        terms = dr_terms(e, defaults)
        if e.cap_only:
            top, low, row = _cap_only(e, horizon, base, margin, rsv, owned, prog, terms)
        else:
            top, low, row = _tracked(e, horizon, base, margin, rsv, owned, beyond[i], prog, terms)
        dr_max = np.where(owned, top, dr_max)
        dr_min = np.where(owned, low, dr_min)
        rows.append(row)
    return DrTargets(dr_max, dr_min, tuple(rows))


def _not_begun(e: DemandResponseEvent, times: list[datetime], start: datetime) -> np.ndarray:
    """True in the intervals of ``e``'s windows that open after ``start``."""
    return np.array(
        [any(w.start > start and w.start <= t < w.end for w in e.windows) for t in times]
    )


def _beyond_owned(active: list[DemandResponseEvent], horizon: Horizon) -> list[int]:
    """Per event, its own intervals after the horizon (ranked on the kW asked: a cap-only
    event cannot be ranked without a baseline there and takes none)."""
    end = max(w.end for e in active for w in e.windows)
    k = round((end - horizon.end) / horizon.step)
    if k <= 0:
        return [0] * len(active)
    times = Horizon(horizon.end, horizon.step, k).times()
    covered = np.array([dr_rules.covers(e, times) for e in active]).reshape(len(active), k)
    strict = np.array(
        [np.full(k, -np.inf if e.cap_only else float(e.target_kw)) for e in active]
    ).reshape(len(active), k)
    owner = dr_rules.attribute(covered & np.isfinite(strict), strict)
    return [int(np.sum(owner == i)) for i in range(len(active))]


def _tracked(
    e: DemandResponseEvent,
    horizon: Horizon,
    base: np.ndarray,
    margin: np.ndarray,
    rsv: np.ndarray,
    owned: np.ndarray,
    n_beyond: int,
    prog: DrProgress | None,
    terms: DrTerms,
) -> tuple[np.ndarray, np.ndarray, DrEventRow]:
    """Corridor (top, low) and energy row of an event settled on energy (see dr_targets)."""
    dt = horizon.dt_h
    lo, hi = e.effective_band_frac
    mid, half = 0.5 * (lo + hi), 0.5 * max(hi - lo, 0.0)
    p = prog or DrProgress()
    t_kw = float(e.target_kw)
    n_h = int(owned.sum())
    q_ahead = t_kw * dt * n_h
    q_beyond = t_kw * dt * n_beyond
    q = p.requested_kwh + q_ahead + q_beyond
    remaining = mid * q - p.delivered_kwh
    r_kw = remaining / ((n_h + n_beyond) * dt)
    w = np.maximum(margin, 0.5 * half * t_kw)
    e_last = float(margin[owned].max(initial=0.0)) * dt
    tol = min(0.5 * half * q, max(half * q - e_last, 0.0))
    resp_lo, resp_hi = r_kw - w, r_kw + w
    r_h = r_kw * dt * n_h
    held = float(rsv[owned].sum()) * dt
    sign = 1.0 if e.direction is DrDirection.PEAK_SHAVING else -1.0
    top = base - sign * (resp_lo if sign > 0 else resp_hi)
    low = base - sign * (resp_hi if sign > 0 else resp_lo)
    row = DrEventRow(
        event_id=e.event_id,
        sign=sign,
        owned=owned.copy(),
        e_min_kwh=r_h - tol,
        e_max_kwh=r_h + tol + held,
        e_aim_kwh=r_h,
        tol_kwh=tol,
        reserve_kw=np.where(owned, rsv, 0.0) if held > 0 else None,
        delivered_kwh=p.delivered_kwh,
        requested_kwh=q,
        requested_beyond_kwh=q_beyond,
        hours=(q / t_kw) if t_kw > 0 else 0.0,
        band=(lo, hi),
        terms=terms,
        note=_note(e, p, prog is not None, mid, q, remaining, n_h + n_beyond, r_h, tol),
        binding=e.binding,
    )
    return top, low, row


def _cap_only(
    e: DemandResponseEvent,
    horizon: Horizon,
    base: np.ndarray,
    margin: np.ndarray,
    rsv: np.ndarray,
    owned: np.ndarray,
    prog: DrProgress | None,
    terms: DrTerms,
) -> tuple[np.ndarray, np.ndarray, DrEventRow]:
    """Corridor (top, low) and row of a cap-only event (see dr_targets)."""
    dt = horizon.dt_h
    hi = max(e.effective_band_frac[1], 1.0)
    cap = float(e.import_cap_kw)
    ask = np.maximum(base - cap, 0.0)
    top = cap - margin
    low = np.where(ask > 0, base - hi * ask - margin, -np.inf)
    p = prog or DrProgress()
    row = DrEventRow(
        event_id=e.event_id,
        sign=1.0,
        owned=owned.copy(),
        delivered_kwh=p.delivered_kwh,
        requested_kwh=p.requested_kwh + float(ask[owned].sum()) * dt,
        hours=(p.intervals_done + int(owned.sum())) * dt,
        band=e.effective_band_frac,
        terms=terms,
        cap_kw=cap,
        e_over_cap_kwh=p.e_over_cap_kwh,
        reserve_kw=np.where(owned, rsv, 0.0) if (rsv[owned] > 0).any() else None,
        note=_cap_note(e, p, prog is not None),
        binding=e.binding,
    )
    return top, low, row


def _metered(p: DrProgress) -> str:
    missing = f", {p.intervals_missing} without a meter reading" if p.intervals_missing else ""
    return (
        f"{p.delivered_kwh:,.1f} of {p.requested_kwh:,.1f} kWh delivered so far over "
        f"{p.intervals_done} own intervals{missing}"
    )


def _note(e, p, metered, mid, q, remaining, left, r_h, tol) -> str:
    past = _metered(p) if metered else "nothing metered so far"
    return (
        f"DR {e.event_id}: {past}; aiming at {100 * mid:.0f} % of {q:,.1f} kWh: "
        f"{remaining:,.1f} kWh over the {left} own intervals left "
        f"({r_h:,.1f} +- {tol:,.1f} kWh on this horizon)"
    )


def _cap_note(e, p, metered) -> str:
    past = _metered(p) if metered else "nothing metered so far"
    over = f"; {p.intervals_over_cap} intervals over the cap" if p.intervals_over_cap else ""
    return f"DR {e.event_id}: cap {e.import_cap_kw:,.0f} kW; {past}{over}"
