"""Give chargers, in a priority order, the largest allowed power that keeps every limit.

One interval at a time: :func:`allocate` walks the chargers in ``order`` and gives each the
largest power it may be set to (a step of ``steps_kw``, or any power in ``[p_min_kw,
p_max_kw]`` when it has no steps) that is not above what it wants and keeps every limit of the
problem, given the powers of every other asset and of the chargers before it: every
:class:`controllers.problem.GroupRow`, every bus import limit (``DispatchProblem.bus_max``) and
the connection's import limit (``DispatchProblem.import_max_kw``). A charger no allowed power
fits gets 0. The earliest-deadline-first and least-laxity-first baselines
(:mod:`controllers.ev_schedulers`) schedule with it; the safety layer rounds with it.

:class:`Allocator` does the same with the rows prepared once per problem (the schedulers call
it for every interval of every horizon); :func:`allocate` is the one-call form.

Pure computation (numpy and the problem types only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from controllers.problem import DispatchProblem

TOL_KW = 1e-9  # a power within this of a bound counts as on it (kW)


def allocate(
    order: Sequence[str],
    want_kw: Mapping[str, float],
    problem: DispatchProblem,
    k: int,
    steps_kw: Mapping[str, Sequence[float]] | None = None,
    base_kw: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Powers for the chargers in ``order`` at interval ``k`` that keep every import limit.

    Parameters
    ----------
    order : sequence of str
        Charger names (``problem.ev_chargers``), first served first. Each at most once.
    want_kw : mapping str -> float
        What each charger in ``order`` would draw (kW at its terminal, load convention, >= 0;
        a negative want counts as 0). A charger missing from it wants 0.
    problem : DispatchProblem
        Gives the chargers' buses and ``p_min_kw`` / ``p_max_kw``, the group rows, the bus
        and connection import limits.
    k : int
        The interval (index into the horizon) whose limits apply.
    steps_kw : mapping str -> sequence of float, optional
        The powers each charger may be set to (kW); default the charger's
        ``EvChargerInput.steps_kw``. Empty: any power in ``[p_min_kw, p_max_kw]``, or 0.
    base_kw : mapping str -> float, optional
        The power of every other asset at ``k`` (kW, load convention): batteries, PV, loads,
        chargers not in ``order`` (V2G discharge goes here, not in ``want_kw``). Default
        :func:`default_base_kw`: base loads, PV at its available power, curtailable loads at
        their baseline, PEDF members likewise, everything else at 0.

    Returns
    -------
    dict str -> float
        kW for every charger in ``order``: 0, or an allowed power not above its want and its
        ``p_max_kw``.

    Notes
    -----
    A power is given only if, with it, no limit goes over, and no limit that the powers
    before it already broke (a fixed part above a limit) goes further over. So: the limits
    that hold with the chargers of ``order`` at 0 hold with the returned powers (to
    :data:`TOL_KW`), whatever the rows' coefficients.

    For rows whose coefficients on the chargers are all >= 0 (import rows, the bus and
    connection limits, phase rows of consuming chargers) a power lower than the one returned
    also keeps them: rounding a charger down is always safe there. That is not so for a row
    with a negative coefficient (an export row, ``-p``): less charging raises it, so where
    charging is what keeps an export row (PV surplus taken by the cars) rounding down can
    break it. Such rows never restrict a charger here (more charging only lowers them), and
    a charger's discharge (V2G, a negative power) is not allocated but given in ``base_kw``.

    Raises
    ------
    ValueError
        A name in ``order`` that is no charger of the problem, a name given twice, ``k``
        outside the horizon, or a name in ``base_kw`` that is no asset of the problem.
    """
    return Allocator(problem).allocate(order, want_kw, k, steps_kw=steps_kw, base_kw=base_kw)


def asset_buses(problem: DispatchProblem) -> dict[str, str]:
    """Every asset of ``problem`` (PEDF members included, the PEDF aggregate not) to its bus."""
    p = problem
    out: dict[str, str] = {}
    for group in (p.pv, p.batteries, p.ev_chargers, p.shiftables, p.curtailables):
        out.update({x.spec.name: x.spec.bus for x in group})
    out.update({b.name: b.bus for b in p.base_loads})
    for pe in p.pedfs:
        s = pe.spec
        for m in (s.battery, s.pv, s.base_load, s.flexible_load):
            if m is not None:
                out[m.name] = m.bus
    return out


def default_base_kw(problem: DispatchProblem, k: int) -> dict[str, float]:
    """What every asset but the chargers does at ``k`` with no control (kW, load convention):
    base loads at their forecast, PV at its available power, curtailable loads at their
    baseline (PEDF members likewise), batteries, shiftable loads and chargers at 0."""
    p = problem
    out = {b.name: float(b.p_kw[k]) for b in p.base_loads}
    out.update({x.spec.name: -float(x.p_available_kw[k]) for x in p.pv})
    out.update({c.spec.name: float(c.baseline_kw[k]) for c in p.curtailables})
    for pe in p.pedfs:
        s = pe.spec
        out[s.base_load.name] = float(pe.base_kw[k])
        out[s.pv.name] = -float(pe.pv_available_kw[k])
        if s.flexible_load is not None:
            out[s.flexible_load.name] = float(pe.flex_baseline_kw[k])
    return out


class Allocator:
    """:func:`allocate` with the problem's limits prepared once (rows as coefficient lists
    per charger), for many intervals of one problem."""

    def __init__(self, problem: DispatchProblem) -> None:
        p = problem
        self.problem = p
        self.buses = asset_buses(p)
        self.chargers = {c.spec.name: c for c in p.ev_chargers}
        # Limits as rows: (coefficients by asset, limit per interval). Group rows first, then
        # each bus with a finite limit, then the connection.
        rows: list[tuple[dict[str, float], np.ndarray]] = []
        for r in p.group_rows:
            coeff: dict[str, float] = {}
            for name, c in zip(r.assets, r.coeff, strict=True):
                coeff[name] = coeff.get(name, 0.0) + float(c)
            fixed = np.zeros(p.n) if r.fixed_kw is None else np.asarray(r.fixed_kw, float)
            rows.append((coeff, float(r.limit_kw) - fixed))
        bus_max = np.asarray(p.bus_max(), dtype=float)
        for b, lim in zip(p.buses, bus_max, strict=True):
            if math.isfinite(lim):
                on = {a: 1.0 for a, bus in self.buses.items() if bus == b}
                rows.append((on, np.full(p.n, float(lim))))
        rows.append(({a: 1.0 for a in self.buses}, np.asarray(p.import_max_kw, dtype=float)))
        self.rows = rows
        # Per charger: the rows it appears in (all, and those with a positive coefficient).
        self.rows_of: dict[str, list[tuple[int, float]]] = {n: [] for n in self.chargers}
        for j, (coeff, _) in enumerate(rows):
            for name, c in coeff.items():
                if c != 0.0 and name in self.rows_of:
                    self.rows_of[name].append((j, c))
        self.pos = {n: [(j, c) for j, c in r if c > 0] for n, r in self.rows_of.items()}

    def lhs(self, powers_kw: Mapping[str, float], k: int) -> list[float]:
        """Each row's left side less its limit at ``k`` (kW; <= 0 holds) for ``powers_kw``."""
        out = []
        for coeff, lim in self.rows:
            s = sum(c * powers_kw.get(a, 0.0) for a, c in coeff.items())
            out.append(s - float(lim[k]))
        return out

    def allocate(
        self,
        order: Sequence[str],
        want_kw: Mapping[str, float],
        k: int,
        steps_kw: Mapping[str, Sequence[float]] | None = None,
        base_kw: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """See :func:`allocate` (same parameters but the problem)."""
        p = self.problem
        if not 0 <= k < p.n:
            raise ValueError(f"allocate: interval {k} is outside the horizon (0..{p.n - 1})")
        order = list(order)
        self._check(order, base_kw)
        base = default_base_kw(p, k) if base_kw is None else dict(base_kw)
        for name in order:
            base.pop(name, None)
        over = self.lhs(base, k)  # row value less limit, kept up to date
        out: dict[str, float] = {}
        for name in order:
            ch = self.chargers[name]
            steps = ch.steps_kw if steps_kw is None or name not in steps_kw else steps_kw[name]
            want = min(max(float(want_kw.get(name, 0.0)), 0.0), ch.spec.p_max_kw)
            room = want
            for j, c in self.pos[name]:
                room = min(room, max(-over[j], 0.0) / c)
            pk = pick(room, steps, ch.spec.p_min_kw, ch.spec.p_max_kw)
            if pk > 0.0:
                for j, c in self.rows_of[name]:
                    over[j] += c * pk
            out[name] = pk
        return out

    def _check(self, order: list[str], base_kw: Mapping[str, float] | None) -> None:
        seen: set[str] = set()
        for name in order:
            if name not in self.chargers:
                raise ValueError(f"allocate: {name!r} in order is not a charger of the problem")
            if name in seen:
                raise ValueError(f"allocate: charger {name!r} appears twice in order")
            seen.add(name)
        for name in base_kw or {}:
            if name not in self.buses:
                raise ValueError(f"allocate: {name!r} in base_kw is not an asset of the problem")


def pick(room_kw: float, steps_kw: Sequence[float], p_min_kw: float, p_max_kw: float) -> float:
    """The largest power allowed for a charger that is not above ``room_kw`` (kW): the
    largest of ``steps_kw`` (those up to ``p_max_kw``), or with no steps ``room_kw`` itself
    when it reaches ``p_min_kw``; 0 when nothing fits."""
    room = min(room_kw, p_max_kw)
    if room <= TOL_KW:
        return 0.0
    if steps_kw:
        best = 0.0
        for s in steps_kw:
            if s <= room + TOL_KW and s <= p_max_kw + TOL_KW and s > best:
                best = float(s)
        return best
    return max(room, p_min_kw) if room >= p_min_kw - TOL_KW else 0.0
