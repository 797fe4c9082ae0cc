"""What the simulated park did to its network: an AC power flow of the power each bus actually
drew, every interval of a run, whatever the planner used.

The planner's AC check (``--grid``) validates the *plan* on the *forecast*; when the forecast
is wrong, the park draws something else. This module runs the park's pandapower model on the
realised bus powers (:meth:`vpp.sim.simulated_park.SimulatedPark.bus_p_kw`) and reports the
violations by element, the worst loading and the voltage range: the figures the KPIs give as
the park's own, beside the plan's ``plan_grid_violation_steps``.

Reactive power follows the network model's rule (:mod:`vpp.grid.network`): base, curtailable
and shiftable loads consume at the configured inductive power factor; PV inverters,
batteries, EV chargers and PEDF converters run at unity power factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from vpp.grid.network import GridModel, GridOptions, GridReport, tan_phi
from vpp.park.model import Site


@dataclass
class RealisedGrid:
    """A run's realised network figures; ``checked`` is False when the park has no network."""

    checked: bool
    note: str = ""
    violation_steps: int | None = None
    by_element: list[dict] = field(default_factory=list)
    trafo_loading_max_percent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    line_loading_max_percent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v_min_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v_max_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))


def has_network(site: Site) -> bool:
    nw = site.network
    return bool(nw.transformers or nw.lines or nw.pandapower_json or nw.simbench_code)


def inductive_q_kvar(site: Site, asset_p_kw, buses: Sequence[str], pf: float) -> dict:
    """Reactive power per bus (kvar) of the realised consumption: the park's base,
    curtailable and shiftable loads outside PEDF buildings at ``pf``, everything else at 1.

    ``asset_p_kw(name)`` gives one asset's realised power per interval (kW).
    """
    tan = tan_phi(pf)
    a = site.assets
    out: dict[str, np.ndarray] = {}
    for x in [*a.base_loads, *a.curtailable_loads, *a.shiftable_loads]:
        if x.bus in buses:
            q = np.maximum(asset_p_kw(x.name), 0.0) * tan
            out[x.bus] = out.get(x.bus, 0.0) + q
    return out


def check(
    site: Site, bus_p_kw: dict[str, np.ndarray], asset_p_kw, times: Sequence[datetime]
) -> RealisedGrid:
    """AC power flow of the realised bus powers over every interval of the run."""
    if not has_network(site):
        return RealisedGrid(
            checked=False,
            note="no network configured (transformers, lines or a study network): "
            "only the connection limits are checked",
        )
    options = GridOptions()
    model = GridModel.from_site(site, options)
    q = inductive_q_kvar(site, asset_p_kw, model.buses, options.load_power_factor)
    known = {b: v for b, v in bus_p_kw.items() if b in model.buses}
    report = model.validate(known, {b: v for b, v in q.items() if b in known})
    return summarise(report, times)


def summarise(report: GridReport, times: Sequence[datetime]) -> RealisedGrid:
    """Violations by element (intervals, worst value and when) and the per-interval figures."""
    steps: dict[tuple[str, str], set[int]] = {}
    for v in report.violations:
        steps.setdefault((v.element, v.kind), set()).add(v.step)
    rows = []
    for (element, kind), worst in sorted(report.worst().items()):
        rows.append(
            {
                "element": element,
                "kind": kind,
                "intervals": len(steps[(element, kind)]),
                "worst": _finite(worst.value),
                "limit": _finite(worst.limit),
                "worst_at": times[worst.step].isoformat(),
            }
        )
    return RealisedGrid(
        checked=True,
        violation_steps=len({v.step for v in report.violations}),
        by_element=rows,
        trafo_loading_max_percent=report.trafo_loading_max_percent,
        line_loading_max_percent=report.line_loading_max_percent,
        v_min_pu=report.vm_min_pu,
        v_max_pu=report.vm_max_pu,
    )


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
