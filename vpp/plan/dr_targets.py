"""DR targets of one plan: the import corridor per interval from the called events.

Pure computation, used by :func:`vpp.plan.prepare.build_problem`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from vpp.park.model import DemandResponseEvent, DrDirection, DrStatus, Horizon

DR_ACTIVE = (DrStatus.CONFIRMED, DrStatus.ACTIVE)


def dr_limits(
    events: Iterable[DemandResponseEvent],
    horizon: Horizon,
    baseline_kw: np.ndarray,
    margin_kw: np.ndarray | float = 0.0,
    reserve_kw: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Import cap and floor per interval from the confirmed DR events.

    A DR response is settled on the energy between the baseline and the metered import
    (:mod:`vpp.accounting.dr_baseline`) and is *effective* only inside the event's band (80-120 % of
    the request by default): short is a failed response, far over is not paid and costs the
    park what it gave up. So the import is held in a corridor, per interval:

    * peak shaving of ``T`` kW against the baseline ``B``: import <= B - T - m (delivery at
      least the request when the realised import strays up to ``m`` above the plan) and
      import >= B - hi * T + m (at most ``hi`` x the request, ``hi`` the band's top);
    * peak shaving to an absolute ``import_cap_kw``: import <= cap - m, and the same floor
      with the request ``B - cap`` (no floor where the baseline is already under the cap);
    * valley filling: import >= B + T + m and import <= B + hi * T - m.

    ``m`` is ``margin_kw`` (the forecast error of the park's net load), clipped to half the
    band above 100 % so that the corridor never closes: at the clip it pins the import at
    the band's middle (110 % for 80-120 %). ``reserve_kw`` moves the request side further
    (the cap of peak shaving down, the floor of valley filling up), unclipped, in the windows
    that have not begun at the horizon's start: the plan holds the energy for a response
    under a worse forecast, and where the reserve crosses the over-delivery limit that limit
    gives way. Once a window has begun the reserve is dropped: a plan short of energy would
    otherwise fall short now, in the interval it applies, to meet a reserve later. Outside
    every window the limits are +inf / -inf.
    """
    n = horizon.n
    req_max, over_min = np.full(n, np.inf), np.full(n, -np.inf)  # peak shaving
    req_min, over_max = np.full(n, -np.inf), np.full(n, np.inf)  # valley filling
    base = np.asarray(baseline_kw, dtype=float)
    margin = np.broadcast_to(np.maximum(np.asarray(margin_kw, dtype=float), 0.0), (n,))
    reserve = np.broadcast_to(np.maximum(np.asarray(reserve_kw, dtype=float), 0.0), (n,))
    times = horizon.times()
    for e in events:
        if e.status not in DR_ACTIVE:
            continue
        hi = max(e.effective_band_frac[1], 1.0)
        for w in e.windows:
            mask = np.array([w.start <= t < w.end for t in times])
            if not mask.any():
                continue
            rsv = reserve if w.start > horizon.start else np.zeros(n)
            if e.direction is DrDirection.PEAK_SHAVING:
                if e.import_cap_kw is not None:
                    # The request is what the cap takes off the baseline, unless cleared
                    # (as vpp.accounting.dr_baseline.delivery settles it).
                    ask = np.maximum(base - e.import_cap_kw, 0.0)
                    if e.cleared_kw is not None:
                        ask = np.where(ask > 0, e.cleared_kw, 0.0)
                    m = np.minimum(margin, (hi - 1.0) / 2.0 * ask)
                    top = np.full(n, e.import_cap_kw) - m - rsv
                    low = np.where(ask > 0, base - hi * ask + m, -np.inf)
                else:
                    m = np.minimum(margin, (hi - 1.0) / 2.0 * e.target_kw)
                    top = base - e.target_kw - m - rsv
                    low = base - hi * e.target_kw + m
                req_max = np.where(mask, np.minimum(req_max, top), req_max)
                over_min = np.where(mask, np.maximum(over_min, low), over_min)
            else:
                m = np.minimum(margin, (hi - 1.0) / 2.0 * e.target_kw)
                low = base + e.target_kw + m + rsv
                req_min = np.where(mask, np.maximum(req_min, low), req_min)
                top = base + hi * e.target_kw - m
                over_max = np.where(mask, np.minimum(over_max, top), over_max)
    # Where overlapping events disagree, the request wins over the over-delivery limit.
    dr_max = np.minimum(req_max, np.maximum(over_max, req_min))
    dr_min = np.maximum(req_min, np.minimum(over_min, req_max))
    return dr_max, dr_min
