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

from controllers.phase_rows import PHASE_NAMES, contributions
from vpp.park.limit_groups import member_connections

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


# --------------------------------------------------------------------------------------------
# Limit groups (vpp.park.limit_groups): what each group's members drew, realised
# --------------------------------------------------------------------------------------------
def group_series(site, asset_p_kw) -> dict[str, np.ndarray]:
    """Per limit group, what its members drew together (``group:<name>:p_kw``, kW, load
    convention) and, for a group with a phase limit, each phase's current (the magnitude of
    the phasor sum, ``group:<name>:phase_<X>_a``, A); ``asset_p_kw(name)`` is one asset's
    realised power per interval."""
    out: dict[str, np.ndarray] = {}
    for g in site.limit_groups:
        conns = member_connections(site, g)
        powers = {x: np.asarray(asset_p_kw(x), dtype=float) for x, _, _ in conns}
        n = len(next(iter(powers.values()))) if powers else 0
        out[f"group:{g.name}:p_kw"] = sum(powers.values(), np.zeros(n))
        if g.phase_current_max_a is None:
            continue
        cur = {ph: np.zeros(n, dtype=complex) for ph in PHASE_NAMES}
        for x, conn, v in conns:
            for ph, ang, a_per_kw in contributions(conn, v):
                cur[ph] = cur[ph] + powers[x] * a_per_kw * np.exp(1j * np.radians(ang))
        for ph in PHASE_NAMES:
            out[f"group:{g.name}:phase_{ph}_a"] = np.abs(cur[ph])
    return out


def group_kpis(site, series: dict[str, np.ndarray], dt_h: float) -> dict:
    """Realised breaches of every limit group (from :func:`group_series` in ``series``): per
    group, import and export breaches (:class:`Breach`, kW), the worst utilisation of its kW
    limits (draw / limit), and with a phase limit each phase's largest current (A), the
    intervals any phase passed its limit and the worst phase utilisation."""
    out: dict[str, dict] = {}
    for g in site.limit_groups:
        p = series.get(f"group:{g.name}:p_kw")
        if p is None:
            continue
        imp, exp = g.import_limit_kw(), g.export_limit_kw()
        b_imp = over(f"{g.name}_import", np.maximum(p, 0.0), np.asarray(imp), dt_h)
        b_exp = over(f"{g.name}_export", np.maximum(-p, 0.0), np.asarray(exp), dt_h)
        util = [float(np.max(np.maximum(p, 0.0), initial=0.0)) / imp if imp > 0 else 0.0]
        util += [float(np.max(np.maximum(-p, 0.0), initial=0.0)) / exp if exp > 0 else 0.0]
        row: dict = {
            "import_breach": b_imp.as_dict(),
            "export_breach": b_exp.as_dict(),
            "utilisation_max": max(u for u in util if np.isfinite(u)) if util else 0.0,
            "p_max_kw": float(np.max(p, initial=0.0)),
        }
        if g.phase_current_max_a is not None:
            lim = float(g.phase_current_max_a)
            cur = {ph: series[f"group:{g.name}:phase_{ph}_a"] for ph in ("A", "B", "C")}
            worst = np.max(np.stack(list(cur.values())), axis=0)
            row["phase_current_max_a"] = {
                ph: float(np.max(c, initial=0.0)) for ph, c in cur.items()
            }
            row["phase_breach_steps"] = int(np.sum(worst > lim + TOL_KW))
            row["phase_utilisation_max"] = float(worst.max(initial=0.0) / lim) if lim > 0 else 0.0
        out[g.name] = row
    return out


def group_breach_steps(groups: dict[str, dict]) -> int:
    """Intervals-by-limit in which a group limit was broken (import, export or a phase)."""
    return int(
        sum(
            r["import_breach"]["steps"]
            + r["export_breach"]["steps"]
            + r.get("phase_breach_steps", 0)
            for r in groups.values()
        )
    )
