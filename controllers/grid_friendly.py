"""Plans that do not stack peaks: the objective's ``grid_friendly`` term (issue #21).

With a flat off-peak price the LP has ties: every cheap interval costs the same, so the solver
may put every battery's charging into the same hours, and a rolling plan pushes it to the
last cheap hours where all batteries then charge together. On the study park
(configs/parks/flat_offpeak.yaml, bench/peak_spread.py) the park's peak came out at 1.8 times
what it draws without batteries. The term breaks such ties in the grid's favour, at weights
small against the prices so that the plan gives up little money for it:

- ``peak_spread_cny_per_kw`` per kW of each local day's highest import on the horizon (a
  day's intervals, counted from the horizon's first local day), taken with the forecast-error
  margin the month's peak is assessed with (``peak_margin_kw``): charging spreads under the
  day's own peak instead of raising it, and keeps away from the intervals where the load may
  run above its forecast (on the study park the offices' morning ramp, at the end of the cheap
  block, is the day's peak: charging planned there on a forecast that ran low made a new one);
- ``import_ramp_cny_per_kw`` per kW of change in the park's net load (its import, or its
  export) from one interval to the next:
  charging fills the valleys of the load and an equal-cost plan does not jump (not counted
  where a called DR event's intervals begin or end: the step the grid asked for);
- ``TIE_BREAK_CNY_PER_KWH``: an import earlier on the horizon is preferred by at most this
  much per kWh (rising linearly over the horizon), so that of two equal plans the one that
  charges first wins (at a size that orders only exact ties); and
  ``BATTERY_TIE_CNY_PER_KWH``: of two batteries that could equally
  move, the one listed first in the park moves first (a cost on each battery's throughput that
  rises with its place in the list and with time), so that the optimum is one plan, not a face
  of equal ones: a warm and a cold solve of the same problem send the same setpoints.

The term is a preference, not money: reports show it among the plan's terms and leave it out
of the plan's cost (:data:`controllers.dr_choice.NOT_MONEY`). Pure computation: the rows for
the cvxpy model and the same figure on any schedule in numpy (:func:`cost_cny`).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from controllers.problem import DispatchProblem

# At most this many CNY per kWh (on the horizon's last interval; 0 on its first): a
# thousandth of a fen. A tie-break trades real money up to its size, and on a park importing
# 100 MWh a horizon 1e-3 moved the manufacturing week's DR decision by 60 CNY; the ramp
# weight, not the tie-break, is what makes a warm and a cold solve agree on the study park.
TIE_BREAK_CNY_PER_KWH = 1e-5
# At most this many CNY per kWh of a battery's charge or discharge (the last battery, on the
# horizon's last interval; the first battery on the first interval pays 1/(m n) of it): a
# tenth of a fen, a cost on throughput like a small degradation. At 1e-5 a warm and a cold
# solve of the study park still gave one battery's charging to another (setpoints 500 kW
# apart, below HiGHS's dual feasibility tolerance); at 1e-3 they agree.
BATTERY_TIE_CNY_PER_KWH = 1e-3


def days(p: DispatchProblem) -> np.ndarray:
    """Local day of every interval, counted from the horizon's first (0, 1, ...)."""
    if p.day_index is not None:
        return np.asarray(p.day_index, dtype=int)
    return np.zeros(p.n, dtype=int)


def day_slots(p: DispatchProblem) -> int:
    """Day rows a model for ``p``'s horizon holds: enough for any start time of day (a
    horizon of ``h`` hours touches at most ``ceil(h / 24) + 1`` local days)."""
    return int(np.ceil(p.n * p.dt_h / 24.0 - 1e-9)) + 1


def on(p: DispatchProblem) -> bool:
    return p.peak_spread_cny_per_kw > 0.0 or p.import_ramp_cny_per_kw > 0.0


def structure(p: DispatchProblem) -> tuple:
    """What the term adds to the model cache key: its weights are constants of the model (a
    settings change rebuilds once), because the battery and PV variables they multiply have
    Parameter bounds, which DPP forbids multiplying by a Parameter."""
    if not on(p):
        return (False,)
    return (True, day_slots(p), float(p.peak_spread_cny_per_kw), float(p.import_ramp_cny_per_kw))


def tie_break_cny_per_kwh(n: int) -> np.ndarray:
    """Per-kWh preference for earlier import, 0 on the first interval rising linearly."""
    return TIE_BREAK_CNY_PER_KWH * np.arange(n) / max(n - 1, 1)


def battery_tie_cny_per_kwh(m: int, n: int) -> np.ndarray:
    """Per-kWh tie-break on the throughput of ``m`` batteries over ``n`` intervals (m, n):
    rising with a battery's place in the list and with time (the product makes swapping two
    batteries' moves between two intervals never cost the same)."""
    rank = (np.arange(m) + 1.0) / max(m, 1)
    when = (np.arange(n) + 1.0) / n
    return BATTERY_TIE_CNY_PER_KWH * rank[:, None] * when[None, :]


def build(
    p: DispatchProblem,
    params: dict,
    imp: cp.Variable,
    net: cp.Expression,
    throughput: cp.Expression | None = None,
    pv_used: cp.Expression | None = None,
) -> tuple[list, cp.Expression]:
    """Rows and the term expression for the built model (values by :func:`update`).

    ``imp``: the connection's import (the tie-break's); ``net``: the park's net load (kW, the
    ramps' and the day peaks': with per-meter billing the connection's import and export are
    not priced, and a term on ``imp`` could be eased by importing and exporting at once).
    ``throughput``: every battery's charge + discharge power (kW, (m, n), the order of
    ``p.batteries`` then the PEDF batteries), or None without batteries; ``pv_used``: the
    PV arrays' used power (kW, (len(p.pv), n)), or None without PV."""
    n = p.n
    params["tie_break"] = cp.Parameter(n, nonneg=True)  # CNY/kWh * dt
    term: cp.Expression = params["tie_break"] @ imp
    if throughput is not None:
        m = throughput.shape[0]
        term = term + cp.sum(cp.multiply(p.dt_h * battery_tie_cny_per_kwh(m, n), throughput))
    if not on(p):
        return [], term
    d = day_slots(p)
    spread_w, ramp_w = float(p.peak_spread_cny_per_kw), float(p.import_ramp_cny_per_kw)
    # 0 on a slot's own intervals, far above any import elsewhere: the slot's peak is the
    # highest import of its day (an empty slot's peak is 0).
    params["day_off"] = cp.Parameter((d, n), nonneg=True)
    params["day_margin"] = cp.Parameter(n, nonneg=True)
    day_peak = cp.Variable(d, nonneg=True, name="day_peak_import_kw")
    ramp = cp.Variable(max(n - 1, 0), nonneg=True, name="import_ramp_kw")
    params["ramp_on"] = cp.Parameter(max(n - 1, 0), nonneg=True)  # 0 at a DR window's edge
    rows = [
        cp.reshape(day_peak, (d, 1), order="C") @ np.ones((1, n))
        >= np.ones((d, 1)) @ cp.reshape(net + params["day_margin"], (1, n), order="C")
        - params["day_off"]
    ]
    if n > 1:
        rows += [ramp >= net[1:] - net[:-1], ramp >= net[:-1] - net[1:]]
        term = term + ramp_w * (params["ramp_on"] @ ramp)
    if throughput is not None:
        # Each kW of battery throughput pays the ramp weight, so that no plan buys a smoother
        # net load by burning energy (charging and discharging at once, or through a lossy
        # efficiency segment first) where energy is worth nothing: raising the net load by x
        # that way takes x (1 + eta^2) / (1 - eta^2) kW of throughput, and saves at most 2 x
        # of ramp.
        term = term + ramp_w * cp.sum(throughput)
    if pv_used is not None:
        # The same for PV: a kW curtailed pays twice the ramp weight (it saves at most that).
        params["pv_avail_w"] = cp.Parameter(nonneg=True)  # 2 x ramp_w x sum(available)
        term = term + params["pv_avail_w"] - 2.0 * ramp_w * cp.sum(pv_used)
    term = term + spread_w * cp.sum(day_peak)
    return rows, term


def update(params: dict, p: DispatchProblem, big: float) -> None:
    params["tie_break"].value = p.dt_h * tie_break_cny_per_kwh(p.n)
    if "day_off" not in params:
        return
    d = params["day_off"].shape[0]
    k = days(p)
    params["day_off"].value = np.where(np.arange(d)[:, None] == k[None, :], 0.0, big)
    params["day_margin"].value = _margin(p)
    params["ramp_on"].value = ramp_on(p)
    if "pv_avail_w" in params:
        avail = sum(float(np.sum(a)) for a in pv_available_kw(p))
        params["pv_avail_w"].value = 2.0 * float(p.import_ramp_cny_per_kw) * avail


def _margin(p: DispatchProblem) -> np.ndarray:
    return np.maximum(np.nan_to_num(np.asarray(p.peak_margin(), dtype=float)), 0.0)


def ramp_on(p: DispatchProblem) -> np.ndarray:
    """1 for each change from one interval to the next that the ramp weight counts, 0 where
    a called DR event's intervals begin or end: the step the grid asked for is not a ramp to
    smooth (counted, it made the plan that follows the manufacturing week's short-notice call
    29 CNY dearer, enough to decline it)."""
    on_k = np.ones(max(p.n - 1, 0))
    for row in p.dr_rows:
        owned = np.asarray(row.owned, dtype=bool)
        on_k[owned[1:] != owned[:-1]] = 0.0
    return on_k


def pv_available_kw(p: DispatchProblem) -> list[np.ndarray]:
    """Every PV array's available power (kW per interval): the arrays, then the PEDF
    buildings' (the order of the PV block's rows)."""
    return [x.p_available_kw for x in p.pv] + [pe.pv_available_kw for pe in p.pedfs]


def cost_cny(
    p: DispatchProblem,
    net_kw: np.ndarray,
    throughput_kw: np.ndarray | None = None,
    pv_curtailed_kwh_per_h: float = 0.0,
) -> float:
    """The term on any schedule: the park's net load (kW per interval; its import is the
    positive part), every battery's charge + discharge power (kW, (m, n), as :func:`build`)
    and the PV arrays' curtailed power summed over arrays and intervals (kW); what the
    model's term equals."""
    net = np.asarray(net_kw, dtype=float)
    imp = np.maximum(net, 0.0)
    out = float(p.dt_h * tie_break_cny_per_kwh(p.n) @ imp)
    if throughput_kw is not None and len(throughput_kw):
        tp = np.asarray(throughput_kw, dtype=float)
        out += float(p.dt_h * (battery_tie_cny_per_kwh(*tp.shape) * tp).sum())
        if on(p):
            out += p.import_ramp_cny_per_kw * float(tp.sum())
    if on(p) and (p.pv or p.pedfs):
        out += 2.0 * p.import_ramp_cny_per_kw * float(pv_curtailed_kwh_per_h)
    if not on(p):
        return out
    k, high = days(p), net + _margin(p)
    out += p.peak_spread_cny_per_kw * sum(max(float(high[k == d].max()), 0.0) for d in np.unique(k))
    out += p.import_ramp_cny_per_kw * float(ramp_on(p) @ np.abs(np.diff(net)))
    return out
