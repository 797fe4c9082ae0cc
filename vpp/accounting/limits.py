"""Realised breaches of the park's configured limits (pure computation on the run's arrays).

Each limit is checked on what the park drew, interval by interval, against the limit in force
in that interval. A breach counts when the realised value passes the limit by more than
:data:`TOL_KW` (numerical noise, not a margin):

* **connection import**: import above the smaller of the contract's ``import_max_kw`` and
  what the connection transformer carries at the minimum power factor;
* **connection export**: export above ``export_max_kw``;
* **DR cap**: import above the import cap the dispatch held in that interval (a confirmed
  event's cap or band top);
* **DR floor**: import below the floor the dispatch held (a valley-filling event's band
  bottom).

Limits inside the park (transformers, cables, voltage) come from the AC power flow of the
realised bus powers (:mod:`vpp.sim.realised`); converter ratings are physics in the simulated
park (what does not fit is unserved load or spilled PV, counted as such).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOL_KW = 1e-3


@dataclass(frozen=True)
class Breach:
    """How often and by how much a realised series passed one limit."""

    limit: str
    steps: int
    energy_kwh: float  # energy beyond the limit over the breached intervals
    worst_kw: float  # largest excess in one interval (0 when none)

    def as_dict(self) -> dict:
        return {
            "limit": self.limit,
            "steps": self.steps,
            "energy_kwh": self.energy_kwh,
            "worst_kw": self.worst_kw,
        }


def over(limit: str, value_kw: np.ndarray, limit_kw: np.ndarray, dt_h: float) -> Breach:
    """Intervals where ``value_kw`` exceeds ``limit_kw`` (non-finite limits do not apply)."""
    value_kw = np.asarray(value_kw, dtype=float)
    limit_kw = np.broadcast_to(np.asarray(limit_kw, dtype=float), value_kw.shape)
    excess = np.where(np.isfinite(limit_kw), value_kw - limit_kw, 0.0)
    hit = excess > TOL_KW
    return Breach(
        limit=limit,
        steps=int(hit.sum()),
        energy_kwh=float(excess[hit].sum() * dt_h),
        worst_kw=float(excess[hit].max(initial=0.0)),
    )


def breaches(
    net_kw: np.ndarray,
    dr_cap_kw: np.ndarray,
    dr_floor_kw: np.ndarray,
    import_max_kw: float,
    export_max_kw: float,
    dt_h: float,
) -> dict[str, Breach]:
    """Every connection and DR limit of a run, by name (see the module docstring).

    ``net_kw`` is the park's realised net import per interval (+ import, - export); the DR
    limits apply to it as the dispatch held them (an export counts against a floor).
    """
    net_kw = np.asarray(net_kw, dtype=float)
    imp, exp = np.maximum(net_kw, 0.0), np.maximum(-net_kw, 0.0)
    return {
        "connection_import": over("connection_import", imp, np.asarray(import_max_kw), dt_h),
        "connection_export": over("connection_export", exp, np.asarray(export_max_kw), dt_h),
        "dr_cap": over("dr_cap", net_kw, dr_cap_kw, dt_h),
        "dr_floor": over("dr_floor", -net_kw, -np.asarray(dr_floor_kw), dt_h),
    }
