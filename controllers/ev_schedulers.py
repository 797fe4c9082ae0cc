"""EV scheduling baselines of the literature: earliest deadline first and least laxity first.

Both schedule the chargers interval by interval over the horizon with
:func:`controllers.ev_allocate.Allocator.allocate`: in each interval the plugged sessions that
still need energy are ordered (``edf``: by departure; ``llf``: by laxity, the time left less
the time full power needs for the energy left), and each in turn gets the largest allowed
power (the charger's steps, or ``[p_min_kw, p_max_kw]``) not above what it needs that keeps
every limit group row, bus import limit and the connection limit. They schedule EVs only:
every other asset does what it does in the uncontrolled park (batteries idle, shiftable loads
at their window's opening, no curtailment), so that the comparison measures EV scheduling.

Each charger's plan carries its sessions' powers in ``detail`` (``session_kw:<session_id>``,
kW at the terminal, summing to the charger's ``p_kw``).

Pure computation.
"""

from __future__ import annotations

import numpy as np

from controllers.baselines import _Heuristic
from controllers.ev_allocate import Allocator
from controllers.problem import AssetSchedule, DispatchProblem, EvChargerInput, EvSessionInput
from controllers.session_power import session_key

E_DONE_KWH = 1e-6  # a session with less than this left is served


def _need_kw(ch: EvChargerInput, s: EvSessionInput, left_kwh: float, dt_h: float) -> float:
    """The least allowed power that delivers ``left_kwh`` in one interval, at most full."""
    p_max = min(ch.spec.p_max_kw, s.p_max_kw)
    need = min(left_kwh / (ch.spec.eta * dt_h), p_max)
    if ch.steps_kw:
        up = [x for x in ch.steps_kw if need - 1e-9 <= x <= p_max + 1e-9 and x > 0]
        return min(up) if up else max((x for x in ch.steps_kw if x <= p_max), default=0.0)
    return max(need, ch.spec.p_min_kw) if need > 0 else 0.0


class _EvScheduler(_Heuristic):
    def priority(self, s: EvSessionInput, left_kwh: float, k: int, p_max_kw: float, dt_h: float):
        raise NotImplementedError

    def _evs(self, p: DispatchProblem, assets: dict[str, AssetSchedule]) -> None:
        assets.update(schedule_evs(p, assets, self.priority))


class EdfController(_EvScheduler):
    """Earliest deadline first: the session departing soonest is served first."""

    name = "edf"

    def priority(self, s, left_kwh, k, p_max_kw, dt_h):
        return (s.departure_k, s.session_id)


class LlfController(_EvScheduler):
    """Least laxity first: the session with the least slack (hours left less the hours
    full power needs for its energy left) is served first."""

    name = "llf"

    def priority(self, s, left_kwh, k, p_max_kw, dt_h):
        laxity_h = (s.departure_k - k) * dt_h - left_kwh / max(p_max_kw, 1e-9)
        return (laxity_h, s.departure_k, s.session_id)


def schedule_evs(
    p: DispatchProblem, others: dict[str, AssetSchedule], priority
) -> dict[str, AssetSchedule]:
    """Every charger's schedule, interval by interval, in the order ``priority(session,
    left_kwh, k, p_max_kw, dt_h)`` gives (smallest first), the other assets at their powers in
    ``others`` (kW, load convention). Returns one :class:`AssetSchedule` per charger with the
    sessions' powers in ``detail``."""
    dt = p.dt_h
    al = Allocator(p)
    chargers = {c.spec.name: c for c in p.ev_chargers}
    power = {name: np.zeros(p.n) for name in chargers}
    per_session = {s.session_id: np.zeros(p.n) for c in p.ev_chargers for s in c.sessions}
    left = {s.session_id: max(s.e_needed_kwh, 0.0) for c in p.ev_chargers for s in c.sessions}
    sessions = [(c, s) for c in p.ev_chargers for s in c.sessions]
    for k in range(p.n):
        live = [
            (c, s)
            for c, s in sessions
            if max(s.arrival_k, 0) <= k < s.departure_k and left[s.session_id] > E_DONE_KWH
        ]
        if not live:
            continue
        keyed = {}
        for c, s in live:
            p_max = min(c.spec.p_max_kw, s.p_max_kw) * c.spec.eta
            keyed.setdefault(c.spec.name, (priority(s, left[s.session_id], k, p_max, dt), c, s))
        ranked = sorted(keyed.values(), key=lambda x: x[0])
        want = {c.spec.name: _need_kw(c, s, left[s.session_id], dt) for _, c, s in ranked}
        base = {name: float(a.p_kw[k]) for name, a in others.items() if name not in chargers}
        got = al.allocate([c.spec.name for _, c, _ in ranked], want, k, base_kw=base)
        for _, c, s in ranked:
            pk = got[c.spec.name]
            power[c.spec.name][k] = pk
            per_session[s.session_id][k] = pk
            left[s.session_id] -= min(pk * c.spec.eta * dt, left[s.session_id])
    out = {}
    for name, c in chargers.items():
        detail = {"p_to_car_kw": power[name] * c.spec.eta}
        detail.update({session_key(s.session_id): per_session[s.session_id] for s in c.sessions})
        out[name] = AssetSchedule(name, "ev_charger", c.spec.bus, power[name], detail=detail)
    return out


CONTROLLERS = {"edf": EdfController, "llf": LlfController}
