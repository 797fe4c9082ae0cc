"""What each called DR event has delivered so far, from the park meter (pure computation).

The plan re-aims an event's remaining energy every cycle (:mod:`vpp.plan.dr_targets`); this
module gives it the feedback: per event, the energy delivered over its *own* past intervals
(each interval counted once, for the stricter event: :func:`vpp.park.dr_rules.attribute`)
against the same baseline the plan uses, by the settlement's own rule
(:func:`vpp.accounting.dr_baseline.delivery`). Only metered intervals count, as in the
settlement; those without a reading are counted apart, so that a plan on a stale meter says
so. The simulation feeds it the realised import, the service the stored park meter.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np

from vpp.accounting.dr_baseline import delivery
from vpp.park import dr_rules
from vpp.park.model import DemandResponseEvent, DrStatus, Horizon
from vpp.park.state import DrProgress

NOT_CALLED = (DrStatus.DECLINED, DrStatus.CANCELLED)


def progress(
    events: Iterable[DemandResponseEvent],
    past: Horizon,
    metered_kw: np.ndarray,
    baseline_kw: np.ndarray,
) -> dict[str, DrProgress]:
    """Delivery so far of each called event with own intervals in ``past``.

    Parameters
    ----------
    events : the DR events; declined and cancelled ones are left out (and take no interval
        from the others).
    past : the intervals whose metering has passed (the last one ends at or before now).
    metered_kw : park import per interval of ``past`` (kW, + import); NaN = no reading.
    baseline_kw : the park's DR baseline per interval of ``past`` (kW), the one the plan
        and the settlement use.

    Returns
    -------
    dict of str to DrProgress
        Per event id with at least one own interval in ``past``.
    """
    n = past.n
    real = np.asarray(metered_kw, dtype=float)
    base = np.asarray(baseline_kw, dtype=float)
    if real.shape != (n,) or base.shape != (n,):
        raise ValueError(f"metered_kw and baseline_kw: expected {n} values each")
    called = dr_rules.ordered(e for e in events if e.status not in NOT_CALLED)
    if not called or n == 0:
        return {}
    times = past.times()
    covered = np.array([dr_rules.covers(e, times) for e in called]).reshape(len(called), n)
    strict = np.array([dr_rules.strictness_kw(e, base) for e in called]).reshape(len(called), n)
    owner = dr_rules.attribute(covered, strict)
    out = {}
    for i, e in enumerate(called):
        mine = owner == i
        if not mine.any():
            continue
        ok = mine & np.isfinite(real) & np.isfinite(base)
        d = delivery(e, base[ok], real[ok], past.dt_h)
        c = d.compliance
        out[e.event_id] = DrProgress(
            delivered_kwh=d.delivered_kwh,
            requested_kwh=d.requested_kwh,
            intervals_done=int(ok.sum()),
            intervals_missing=int((mine & ~ok).sum()),
            e_over_cap_kwh=c.e_over_kwh if c is not None else 0.0,
            intervals_over_cap=c.intervals_over if c is not None else 0,
        )
    return out


def past_horizon(
    events: Iterable[DemandResponseEvent], at: datetime, step: timedelta
) -> Horizon | None:
    """The intervals from the earliest window start of ``events`` that has passed up to
    ``at`` (each interval over by ``at``): the span :func:`progress` reads; None when no
    window has begun."""
    starts = [w.start for e in events for w in e.windows if w.start < at]
    if not starts:
        return None
    start = min(starts)
    n = int((at - start) // step)
    return Horizon(start, step, n) if n > 0 else None
