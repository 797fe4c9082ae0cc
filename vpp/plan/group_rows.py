"""The park's limit groups as rows of the dispatch (:class:`controllers.problem.GroupRow`).

Each :class:`vpp.park.model.LimitGroup` is flattened to its member assets
(:func:`vpp.park.limit_groups.members`: nested groups to their assets, buses to the assets on
them); a PEDF building counts with its battery, PV and flexible load as decisions and its base
load as the fixed part. Base loads are fixed parts (their P50 forecast); every other member
is a decision of the dispatch. The fixed part carries the margin against forecast error that
every other limit carries (``dispatch.risk_frac`` times the spread of the base loads'
forecasts, P90 - P50 above and P50 - P10 below, summed over the members: errors under one
circuit move together), on the side that loads the row. Per group:

- ``import``: sum of the members' powers + fixed <= the import limit (kW, or the current limit
  as kW at the group's voltage and power factor);
- ``export``: the same negated <= the export limit;
- ``phase_A`` / ``phase_B`` / ``phase_C``: with ``phase_current_max_a``, one row per facet of
  the inscribed 12-gon (:mod:`controllers.phase_rows`), in kW: amperes along the facet times
  the group's phase-to-neutral voltage / 1000.

Pure computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from controllers import phase_rows
from controllers.problem import GroupRow
from vpp.park import limit_groups
from vpp.park.model import LimitGroup, Site


def _consuming_only(site: Site, decide: list[str]) -> bool:
    a = site.assets
    loads = {c.name for c in a.ev_chargers if not c.v2g}
    loads |= {s.name for s in a.shiftable_loads} | {c.name for c in a.curtailable_loads}
    return all(x in loads for x in decide)


Spread = Callable[[str], np.ndarray]


def group_rows(
    site: Site,
    n: int,
    fixed_kw: Callable[[str], np.ndarray],
    spread_up_kw: Spread | None = None,
    spread_down_kw: Spread | None = None,
) -> tuple[GroupRow, ...]:
    """Every row of every limit group of ``site`` over ``n`` intervals; ``fixed_kw(name)``
    gives a base load's forecast (kW per interval), ``spread_up_kw(name)`` /
    ``spread_down_kw(name)`` its margin above and below it (kW, >= 0, risk included; None:
    no margin)."""
    out: list[GroupRow] = []
    conn = limit_groups.connections(site)
    zero = np.zeros(n)

    def total(fn, names) -> np.ndarray:
        if fn is None:
            return zero
        return sum((np.maximum(np.asarray(fn(x), float), 0.0) for x in names), zero)

    for g in site.limit_groups:
        decide, fixed = limit_groups.split_members(site, limit_groups.members(site, g))
        base = sum((np.asarray(fixed_kw(x), float) for x in fixed), np.zeros(n))
        up, down = total(spread_up_kw, fixed), total(spread_down_kw, fixed)
        assets = tuple(decide)
        imp, exp = g.import_limit_kw(), g.export_limit_kw()
        if math.isfinite(imp):
            out.append(GroupRow(g.name, "import", assets, (1.0,) * len(assets), imp, base + up))
        if math.isfinite(exp):
            row = GroupRow(g.name, "export", assets, (-1.0,) * len(assets), exp, down - base)
            out.append(row)
        if g.phase_current_max_a is not None:
            out += _phase_rows(site, g, decide, (base, up, down), conn)
    return tuple(out)


def _phase_rows(site, g: LimitGroup, decide, fixed, conn) -> list[GroupRow]:
    base, up, down = fixed
    v = float(g.voltage_v)
    kw_per_a = v / math.sqrt(3.0) / 1000.0  # one phase to neutral
    limit_kw = phase_rows.facet_limit_a(g.phase_current_max_a) * kw_per_a
    rows = []
    for ph in phase_rows.PHASE_NAMES:
        for theta in phase_rows.facets_deg(_consuming_only(site, decide)):
            coeff = tuple(
                kw_per_a * phase_rows.facet_coeff(*conn.get(x, ("three_phase", v)), ph, theta)
                for x in decide
            )
            c = kw_per_a * phase_rows.facet_coeff("three_phase", v, ph, theta)
            # the margin on the side that moves the facet toward its limit
            fixed_kw = c * base + abs(c) * (up if c > 0 else down)
            rows.append(GroupRow(g.name, f"phase_{ph}", tuple(decide), coeff, limit_kw, fixed_kw))
    return rows
