"""Who gave way in a plan, by how much, and why: the limit at its bound where it was short.

Pure computation on a problem and a result (any controller's). An EV session, a shiftable
load's window or a curtailable load ranked ``normal`` or ``last`` that gives way is a
relaxation of the plan (``ev_energy``, ``ev_target``, ``shiftable_energy``, ``comfort``, in
kWh). :func:`give_way` finds, for each, the steps it was short in (the charger or load below
its full power while it could run, or curtailed) and what held the park at a bound in those
steps:

- ``dr_import_cap``: the park's import at a DR call's cap, named by its event (the event
  whose own intervals these are, ``DispatchProblem.dr_rows``, or else the events the plan
  layer says hold in that step);
- ``dr_energy``: a DR event's energy row at its bound (peak shaving delivering no more than
  its least, valley filling no less than its most), in that event's intervals;
- ``import_limit``: the import at the connection's limit;
- ``bus_import_limit``: the asset's bus at its import limit (a building transformer);
- ``network``: a network row (:class:`~controllers.problem.NetworkConstraint`) at its limit
  that more load at the asset's bus would push further;
- ``pedf_converter``: a PEDF building's exchange at its converter's import limit (its
  flexible load);
- ``peak``: only where none of those binds, the import at the month's peak while a demand
  charge applies;
- ``none``: nothing at its bound in those steps.

A shortfall no decision could avoid keeps the reason :func:`controllers.relaxations.unavoidable`
gave it: ``physically impossible``. :func:`explain` writes the reasons into the result's
relaxations; the plan layer calls it for every plan (:mod:`vpp.plan.cycle`).

Curtailable loads at ``give_way: first`` are curtailed for their cost, an economic choice of
the plan (its ``curtail_kw``), not a relaxation; the realised KPIs list their curtailment too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult, Relaxation

GIVE_WAY = ("ev_energy", "ev_target", "shiftable_energy", "comfort")  # what gives way, in kWh
IMPOSSIBLE = "physically impossible"
BIND_TOL_KW = 0.01  # a quantity within this of its limit (kW) is at its bound
NONE_LABEL = "no limit at its bound in those steps"


@dataclass(frozen=True)
class Cause:
    """What held the park at a bound in steps where an asset gave way.

    ``limit`` is the kind (module docstring), ``label`` what a person reads, ``steps`` the
    horizon steps where it held (empty for an unavoidable shortfall).
    """

    limit: str
    label: str
    steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class GiveWayNote:
    """One asset that gave way in a plan.

    ``asset`` is the session id (EV) or the load's name, ``device`` the charger or the load,
    ``give_way`` its priority, ``amount_kwh`` the relaxation's amount, ``causes`` the limits
    at their bound in the steps it was short in (most steps first), ``reason`` the sentence.
    """

    constraint: str
    asset: str
    device: str
    give_way: str
    amount_kwh: float
    avoidable: bool
    causes: tuple[Cause, ...]
    reason: str


def give_way(
    problem: DispatchProblem,
    result: DispatchResult,
    dr_event_at: Sequence[str] | None = None,
) -> list[GiveWayNote]:
    """Every session or load that gave way in ``result``, with why.

    Parameters
    ----------
    problem : DispatchProblem
        The problem ``result`` solves.
    result : DispatchResult
        A plan; its relaxations in :data:`GIVE_WAY` are explained.
    dr_event_at : sequence of str, optional
        Per horizon step, the DR event(s) whose window holds there (``""`` where none); the
        plan layer knows the events' windows. Without it a DR cap is named generically.

    Returns
    -------
    list of GiveWayNote
        One per such relaxation, in the result's order.
    """
    bind = _Binding(problem, result, dr_event_at)
    out = []
    for r in result.relaxed:
        if r.constraint not in GIVE_WAY:
            continue
        device, level, bus, pedf, steps = _where(problem, result, r)
        if not r.avoidable:
            why = f"{IMPOSSIBLE}: {r.reason}" if r.reason else IMPOSSIBLE
            causes: tuple[Cause, ...] = (Cause("impossible", why),)
        else:
            causes = bind.causes(steps, bus, pedf)
            why = _reason(problem, level, causes, bool(steps))
        out.append(GiveWayNote(r.constraint, r.asset, device, level, r.amount, r.avoidable,
                               causes, why))  # fmt: skip
    return out


def explain(
    problem: DispatchProblem,
    result: DispatchResult,
    dr_event_at: Sequence[str] | None = None,
) -> DispatchResult:
    """``result`` with a reason on every relaxation an asset gave way by (:func:`give_way`);
    ``result`` itself when there is none to explain. Reasons already given are kept."""
    notes = {
        (n.constraint, n.asset): n for n in give_way(problem, result, dr_event_at) if n.avoidable
    }
    if not notes:
        return result
    relaxed = []
    for r in result.relaxed:
        note = notes.get((r.constraint, r.asset))
        if note is not None and r.avoidable and not r.reason:
            r = dataclasses.replace(r, reason=note.reason)
        relaxed.append(r)
    return dataclasses.replace(result, relaxed=relaxed)


def curtailment_causes(
    problem: DispatchProblem,
    result: DispatchResult,
    k: int,
    dr_event_at: Sequence[str] | None = None,
) -> dict[str, tuple[Cause, ...]]:
    """For every curtailable load the plan curtails in step ``k``, the limits at their bound
    there (``()``: none, curtailed for its cost)."""
    bind = _Binding(problem, result, dr_event_at)
    out = {}
    for name, bus, pedf in _curtailables(problem):
        s = result.assets.get(name)
        cut = s.detail.get("curtail_kw") if s is not None else None
        if cut is not None and float(cut[k]) > BIND_TOL_KW:
            out[name] = tuple(c for c in bind.causes((k,), bus, pedf) if c.limit != "none")
    return out


# --------------------------------------------------------------------------------------------
# Where an asset was short
# --------------------------------------------------------------------------------------------
def _where(problem: DispatchProblem, result: DispatchResult, r: Relaxation):
    """``(device, priority, bus, pedf building or None, steps short)`` of relaxation ``r``."""
    n, tol = problem.n, BIND_TOL_KW
    if r.constraint in ("ev_energy", "ev_target"):
        for ch in problem.ev_chargers:
            for s in ch.sessions:
                if s.session_id != r.asset:
                    continue
                p = _power(result, ch.spec.name, n)
                a, d = max(s.arrival_k, 0), min(s.departure_k, n)
                if r.constraint == "ev_target" and s.target_k is not None:
                    d = min(max(s.target_k, a), d)
                short = tuple(k for k in range(a, d) if p[k] < s.p_max_kw - tol)
                return ch.spec.name, str(s.give_way), ch.spec.bus, None, short
    elif r.constraint == "shiftable_energy":
        for sh in problem.shiftables:
            if sh.spec.name != r.asset:
                continue
            p, short = _power(result, sh.spec.name, n), []
            for w in sh.windows:
                a, b = max(w.start_k, 0), min(w.end_k, n)
                if float(p[a:b].sum()) * problem.dt_h < w.e_kwh - 1e-3:
                    short += [k for k in range(a, b) if p[k] < sh.spec.p_max_kw - tol]
            return sh.spec.name, str(sh.spec.give_way), sh.spec.bus, None, tuple(short)
    else:  # comfort: the steps the load was curtailed in
        for name, bus, pedf in _curtailables(problem):
            if name == r.asset:
                level = next(c.give_way for c in _curtailable_specs(problem) if c.name == name)
                return name, str(level), bus, pedf, tuple(r.steps)
    return r.asset, "", "", None, ()


def _power(result: DispatchResult, name: str, n: int) -> np.ndarray:
    s = result.assets.get(name)
    return np.asarray(s.p_kw, dtype=float) if s is not None else np.zeros(n)


def _curtailable_specs(problem: DispatchProblem) -> list:
    specs = [c.spec for c in problem.curtailables]
    return specs + [pe.spec.flexible_load for pe in problem.pedfs if pe.spec.flexible_load]


def _curtailables(problem: DispatchProblem) -> list[tuple[str, str, str | None]]:
    """``(name, bus, PEDF building or None)`` of every curtailable load."""
    out = [(c.spec.name, c.spec.bus, None) for c in problem.curtailables]
    out += [
        (pe.spec.flexible_load.name, pe.spec.bus, pe.spec.name)
        for pe in problem.pedfs
        if pe.spec.flexible_load
    ]
    return out


# --------------------------------------------------------------------------------------------
# What binds
# --------------------------------------------------------------------------------------------
def _at_bound(x: np.ndarray, lim: np.ndarray) -> np.ndarray:
    """Where ``x`` is at (or beyond) its upper limit ``lim``; never where ``lim`` is infinite."""
    lim = np.asarray(lim, dtype=float)
    finite = np.isfinite(lim)
    safe = np.where(finite, lim, 0.0)
    return finite & (x >= safe - BIND_TOL_KW - 1e-6 * np.abs(safe))


def _dr_energy_held(p: DispatchProblem, net: np.ndarray, rows: list) -> list:
    """``(event id, owned steps)`` of every DR energy row at the bound more load pushes
    further: peak shaving (sign > 0) at its least delivery, valley filling at its most."""
    if p.dr_baseline_kw is None:
        return []
    base = np.nan_to_num(np.asarray(p.dr_baseline_kw, dtype=float))
    out = []
    for x in rows:
        owned = np.asarray(x.owned, dtype=bool)
        if not owned.any():
            continue
        got = x.sign * float((base - net)[owned].sum()) * p.dt_h
        tol = BIND_TOL_KW * p.dt_h * int(owned.sum())
        low, high = float(x.e_min_kwh), float(x.e_max_kwh)
        held = (x.sign > 0 and np.isfinite(low) and got <= low + tol) or (
            x.sign < 0 and np.isfinite(high) and got >= high - tol
        )
        if held:
            out.append((x.event_id, owned))
    return out


class _Binding:
    """The park's limits at their bound, step by step, in one plan."""

    def __init__(self, p: DispatchProblem, r: DispatchResult, dr_event_at: Sequence[str] | None):
        n = p.n
        self.p, self.dr_event_at = p, dr_event_at
        net = np.asarray(r.p_net_kw, dtype=float)
        self.dr = _at_bound(net, p.dr_max())
        # Per-event DR rows (``dr_rows``) where the problem has them; an event the plan chose
        # not to follow (``result.dr_decisions``) holds nothing, whatever its corridor says.
        decided = getattr(r, "dr_decisions", None) or {}
        dropped = {k for k, d in decided.items() if not getattr(d, "followed", True)}
        rows = [x for x in getattr(p, "dr_rows", ()) or () if getattr(x, "follow", True)]
        for x in rows:
            if x.event_id in dropped:
                self.dr &= ~np.asarray(x.owned, dtype=bool)
        self.dr_rows = [x for x in rows if x.event_id not in dropped]
        self.dr_energy = _dr_energy_held(p, net, self.dr_rows)
        self.conn = _at_bound(np.maximum(net, 0.0), p.import_max_kw)
        bus_p = np.array([np.asarray(r.bus_p_kw.get(b, np.zeros(n)), float) for b in p.buses])
        bus_p = bus_p.reshape(len(p.buses), n)
        bus_max = p.bus_max()
        self.bus = {b: _at_bound(bus_p[i], np.full(n, bus_max[i])) for i, b in enumerate(p.buses)}
        self.rows = []
        for c in p.network:
            coeff = np.asarray(c.coeff_per_kw, dtype=float)
            scale = max(float(np.abs(coeff).max(initial=0.0)), 1e-12)
            flow = coeff @ bus_p
            lim = np.asarray(c.limit, dtype=float)
            safe = np.where(np.isfinite(lim), lim, 0.0)
            held = np.isfinite(lim) & (flow >= safe - BIND_TOL_KW * scale - 1e-6 * np.abs(safe))
            self.rows.append((c, coeff, held))
        self.pedf = {}
        for pe in p.pedfs:
            limits = getattr(pe, "converter_limits_kw", None)
            lim = limits(n)[0] if limits else np.full(n, pe.spec.converter_kw)
            self.pedf[pe.spec.name] = _at_bound(_power(r, pe.spec.name, n), lim)
        imp = np.maximum(net, 0.0) + np.nan_to_num(p.peak_margin())
        peak = max(float(imp.max(initial=0.0)), p.month_peak_import_kw)
        charged = p.demand_charge_cny_per_kw > 0
        self.peak = charged & (imp >= peak - BIND_TOL_KW)

    def at(self, k: int, bus: str, pedf: str | None) -> list[tuple[str, str]]:
        """``(limit, label)`` of every limit at its bound in step ``k`` that more load at
        ``bus`` (behind PEDF building ``pedf``) would push further."""
        out = []
        capped: list[str] = []
        if self.dr[k]:
            label = self._dr_label(k)
            capped = label.removeprefix("the DR cap of event ").split("+")
            out.append(("dr_import_cap", label))
        for event_id, owned in self.dr_energy:  # the cap, where it holds too, says it all
            if owned[k] and event_id not in capped:
                out.append(("dr_energy", f"the DR energy of event {event_id}"))
        if self.conn[k]:
            out.append(("import_limit", "the connection import limit"))
        if bus in self.bus and self.bus[bus][k]:
            out.append(("bus_import_limit", f"the import limit of bus {bus}"))
        j = self.p.buses.index(bus) if bus in self.p.buses else None
        for c, coeff, held in self.rows:
            label = f"the network limit of {c.element}"
            if j is not None and held[k] and coeff[j] > 1e-9 and ("network", label) not in out:
                out.append(("network", label))
        if pedf is not None and self.pedf.get(pedf, np.zeros(k + 1, bool))[k]:
            out.append(("pedf_converter", f"the converter of PEDF building {pedf}"))
        if not out and self.peak[k]:
            out.append(("peak", "the month's import peak (demand charge)"))
        return out

    def _dr_label(self, k: int) -> str:
        """The DR cap in step ``k``, named by the event that owns the step: from the
        problem's per-event rows (``dr_rows``) where it has them, else from the events the
        plan layer says hold in ``k`` (``dr_event_at``); generic without either."""
        ids = "+".join(x.event_id for x in self.dr_rows if bool(np.asarray(x.owned)[k]))
        given = self.dr_event_at
        if not ids and given is not None and k < len(given):
            ids = given[k]
        return f"the DR cap of event {ids}" if ids else "the DR cap"

    def causes(self, steps: Sequence[int], bus: str, pedf: str | None) -> tuple[Cause, ...]:
        """The limits at their bound over ``steps``, each with its steps, most steps first."""
        found: dict[tuple[str, str], list[int]] = {}
        for k in steps:
            for key in self.at(k, bus, pedf) or [("none", NONE_LABEL)]:
                found.setdefault(key, []).append(k)
        ranked = sorted(found.items(), key=lambda kv: (kv[0][0] == "none", -len(kv[1])))
        return tuple(Cause(lim, label, tuple(ks)) for (lim, label), ks in ranked)


# --------------------------------------------------------------------------------------------
# The sentence
# --------------------------------------------------------------------------------------------
def _reason(problem: DispatchProblem, level: str, causes: tuple[Cause, ...], short: bool) -> str:
    head = f"give_way {level}" if level else "gave way"
    if not short:
        return f"{head}: short with its device at full power while it could run"
    parts = [f"{c.label} in {span(problem, c.steps)}" for c in causes]
    return f"{head}; gave way to " + "; ".join(parts)


def span(problem: DispatchProblem, steps: Sequence[int]) -> str:
    """Steps as clock-time ranges of the horizon: ``14:00-16:00, 17:15-17:30``."""
    h = problem.horizon
    times = h.times()

    def clock(k: int) -> str:
        return f"{(times[k] if k < h.n else h.end):%H:%M}"

    runs: list[list[int]] = []
    for k in sorted(set(steps)):
        if runs and k == runs[-1][1]:
            runs[-1][1] = k + 1
        else:
            runs.append([k, k + 1])
    return ", ".join(f"{clock(a)}-{clock(b)}" for a, b in runs)
