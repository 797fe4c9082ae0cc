"""The offline optimum of a charger fleet's bill: a lower bound no online controller can beat.

Given the whole run in hindsight (every session's arrival, departure and energy, and the
realised base load), one linear programme finds the cheapest bill (energy at the TOU price
plus the demand charge on the run's peak, pro-rated as the accounting does) at which every
session gets its energy. It is a *relaxation* of what any controller faces:

* powers are continuous (no pilot steps, no minimum power);
* only the limits given here (the connection's import limit and each charger's maximum)
  constrain it; limit groups and phase currents, which only take plans away, are left out;
* nothing is uncertain.

So its bill is at most that of any controller, online or offline, that delivers every
session's energy within the same run: a goal of "X % below the better baseline" that lies
below this bound cannot be met by any controller, and the gap between a controller and the
bound is what better forecasting, planning or hardware could still win. (The "offline
optimal" of acnportal plays the same part in EV scheduling studies.)

Pure computation: arrays in, figures out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class OfflineSession:
    """One session in hindsight: it may draw in intervals ``[start_k, end_k)`` up to
    ``p_max_kw`` (at the grid) and must get ``e_kwh`` into the car at efficiency ``eta``."""

    start_k: int
    end_k: int
    p_max_kw: float
    e_kwh: float
    eta: float = 1.0


@dataclass(frozen=True)
class OfflineBound:
    """The offline optimum: its bill and the parts of it (CNY), its peak (kW) and status."""

    bill_cny: float
    energy_cost_cny: float
    demand_charge_cny: float
    peak_import_kw: float
    delivered_kwh: float
    status: str


def offline_bill_bound(
    base_kw: np.ndarray,
    price_cny_per_kwh: np.ndarray,
    dt_h: float,
    sessions: Sequence[OfflineSession],
    demand_cny_per_kw: float,
    import_max_kw: float = np.inf,
    peak_floor_kw: float = 0.0,
) -> OfflineBound:
    """The cheapest bill that serves every session (see the module docstring).

    Parameters
    ----------
    base_kw : the realised inflexible load per interval (kW).
    price_cny_per_kwh : the import price per interval.
    dt_h : interval length (h).
    sessions : the sessions; one whose energy cannot be had at full power over its stay is
        asked for what full power gives (the physically possible), so the bound stays finite.
    demand_cny_per_kw : the demand charge per kW of the run's peak, pro-rated as billed
        (rate per kW-month x the share of the month the run covers).
    import_max_kw : the connection's import limit (kW).
    peak_floor_kw : a peak already metered in the month (billed whatever the run does).
    """
    base = np.asarray(base_kw, dtype=float)
    price = np.asarray(price_cny_per_kwh, dtype=float)
    n = len(base)
    if price.shape != (n,):
        raise ValueError(f"price has {price.shape} values for {n} intervals")
    rows, cols, p_max, want, eta = [], [], [], [], []
    for s in sessions:
        lo, hi = max(s.start_k, 0), min(s.end_k, n)
        if hi <= lo or s.e_kwh <= 0 or s.p_max_kw <= 0:
            continue
        k = np.arange(lo, hi)
        rows.append(np.full(len(k), len(want)))
        cols.append(k)
        p_max.append(np.full(len(k), s.p_max_kw))
        want.append(min(s.e_kwh, s.eta * s.p_max_kw * dt_h * len(k)))
        eta.append(s.eta)
    if not want:
        imp = np.maximum(base, 0.0)
        peak = max(float(imp.max(initial=0.0)), peak_floor_kw)
        energy = float(price @ imp * dt_h)
        demand = demand_cny_per_kw * peak
        return OfflineBound(energy + demand, energy, demand, peak, 0.0, "optimal")
    r, c, pm = np.concatenate(rows), np.concatenate(cols), np.concatenate(p_max)
    m = len(r)
    x = cp.Variable(m, nonneg=True)  # kW of each session in each interval it is plugged
    per_interval = _incidence(c, n, m)
    per_session = _incidence(r, len(want), m)
    load = base + per_interval @ x
    peak = cp.Variable()
    imp = cp.Variable(n, nonneg=True)
    cons = [
        x <= pm,
        per_session @ x * dt_h >= np.asarray(want) / np.asarray(eta),
        imp >= load,
        imp <= import_max_kw,
        peak >= imp,
        peak >= peak_floor_kw,
    ]
    energy = price @ imp * dt_h
    prob = cp.Problem(cp.Minimize(energy + demand_cny_per_kw * peak), cons)
    prob.solve(solver=cp.HIGHS)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        return OfflineBound(np.nan, np.nan, np.nan, np.nan, 0.0, str(prob.status))
    pk = float(peak.value)
    e_cost = float(energy.value)
    demand = demand_cny_per_kw * pk
    delivered = float(np.sum(np.asarray(want)))
    return OfflineBound(e_cost + demand, e_cost, demand, pk, delivered, str(prob.status))


def _incidence(index: np.ndarray, rows: int, m: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(m), (index, np.arange(m))), shape=(rows, m))


__all__ = ["OfflineBound", "OfflineSession", "offline_bill_bound"]
