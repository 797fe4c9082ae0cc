"""Relaxations as an alarm: the shortfalls no decision could avoid, and a list a person reads.

Pure computation on the problem and the result. Two functions:

- :func:`unavoidable`: the shortfalls that :func:`vpp.plan.prepare.build_problem` left out of
  the problem because no decision on the horizon can deliver them (a car that departs before
  its energy can be delivered, a shiftable window that closes before its work can be done).
  Every controller adds them to its result's ``relaxed`` with their reason; they carry no
  penalty.
- :func:`alarm_lines`: the relaxations grouped for a person (the CLI, the API): each one at
  or above a stated tolerance on its own line, in its physical unit; those below it one line
  per constraint kind, with a count and a total.

Who gave way and why (the limit at its bound where an EV session, a shiftable load or a ranked
curtailable load was short) is :mod:`controllers.give_way`; the plan layer writes its reasons
into every plan's relaxations.

Tolerances (:data:`SMALL_KWH`, :data:`SMALL_KW`): 0.1 kWh is about one minute of a 7 kW
charger, or one 15-minute interval at 0.4 kW (less than the 1.4 kW minimum of a 6 A AC
charger); 0.1 kW is far below any metering class at a park's connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controllers.problem import DispatchProblem, Relaxation

SMALL_KWH = 0.1  # an energy shortfall below this is aggregated, not listed
SMALL_KW = 0.1  # a limit exceeded by less than this is aggregated, not listed
UNREACHABLE_TOL = 1e-3  # kWh: below this an unreachable remainder is rounding


def unavoidable(problem: DispatchProblem) -> list[Relaxation]:
    """Shortfalls no decision on ``problem``'s horizon can prevent, one per session or window,
    each with its reason (kWh, ``avoidable=False``)."""
    h = problem.horizon
    times = h.times()

    def at(k: int) -> str:
        return f"{(times[k] if k < h.n else h.end):%H:%M}"

    out: list[Relaxation] = []
    for ch in problem.ev_chargers:
        for s in ch.sessions:
            a, d = max(s.arrival_k, 0), min(s.departure_k, h.n)
            reach = s.p_max_kw * ch.spec.eta * problem.dt_h * (d - a)
            if s.e_unreachable_kwh > UNREACHABLE_TOL:
                why = (
                    f"departs at {at(d)} before the energy can be delivered "
                    f"(at most {reach:.1f} kWh at full power from {at(a)})"
                )
                out.append(_fate("ev_energy", s.session_id, s.e_unreachable_kwh, why))
            if s.target_unreachable_kwh > UNREACHABLE_TOL and s.target_k is not None:
                why = f"target at {at(s.target_k)} is beyond full power from {at(a)}"
                out.append(_fate("ev_target", s.session_id, s.target_unreachable_kwh, why))
    for sh in problem.shiftables:
        for w in sh.windows:
            if w.e_unreachable_kwh > UNREACHABLE_TOL:
                why = (
                    f"window closes at {at(min(w.end_k, h.n))} before its energy can be "
                    f"consumed at full power from {at(max(w.start_k, 0))}"
                )
                out.append(_fate("shiftable_energy", sh.spec.name, w.e_unreachable_kwh, why))
    return out


def _fate(constraint: str, asset: str, e_kwh: float, reason: str) -> Relaxation:
    return Relaxation(constraint, asset, (), float(e_kwh), "kWh", reason, avoidable=False)


@dataclass(frozen=True)
class RelaxationLine:
    """One line of the alarm list: a relaxation on its own, or the small ones of a kind.

    ``count`` relaxations, ``amount`` their total (``unit``) for a group or the one amount,
    ``assets`` the assets concerned (sessions, devices), ``text`` what a person reads.
    """

    constraint: str
    unit: str
    count: int
    amount: float
    avoidable: bool
    assets: tuple[str, ...]
    text: str

    def to_json_dict(self) -> dict:
        return {
            "constraint": self.constraint,
            "unit": self.unit,
            "count": self.count,
            "amount": self.amount,
            "avoidable": self.avoidable,
            "assets": list(self.assets),
            "text": self.text,
        }


def is_small(r: Relaxation, small_kwh: float = SMALL_KWH, small_kw: float = SMALL_KW) -> bool:
    """Whether ``r`` is below the tolerance of its unit (kWh short or kW over)."""
    return r.amount < (small_kwh if r.unit == "kWh" else small_kw)


def alarm_lines(
    relaxed: Iterable[Relaxation], small_kwh: float = SMALL_KWH, small_kw: float = SMALL_KW
) -> list[RelaxationLine]:
    """The relaxations as a list that works as an alarm.

    Parameters
    ----------
    relaxed : iterable of Relaxation
        A result's relaxations (avoidable and not).
    small_kwh : float
        Tolerance for energy shortfalls (kWh): each one below it is counted in one line per
        constraint kind instead of listed.
    small_kw : float
        Tolerance for limits exceeded (kW), likewise.

    Returns
    -------
    list of RelaxationLine
        First each avoidable relaxation at or above its tolerance, largest first; then the
        unavoidable ones with their reasons, largest first; then one line per constraint kind
        and unit for the small ones.
    """
    big, fate, small = [], [], {}
    for r in relaxed:
        if is_small(r, small_kwh, small_kw):
            small.setdefault((r.constraint, r.unit), []).append(r)
        else:
            (big if r.avoidable else fate).append(r)
    out = [_single(r) for r in sorted(big, key=lambda r: -r.amount)]
    out += [_single(r) for r in sorted(fate, key=lambda r: -r.amount)]
    for (name, unit), group in small.items():
        tol = small_kwh if unit == "kWh" else small_kw
        total = sum(r.amount for r in group)
        what = "shortfalls" if unit == "kWh" else "excesses"
        text = (
            f"{name}: {len(group)} {what} under {tol:g} {unit} each, "
            f"{total:.3f} {unit} in all ({_assets(group)})"
        )
        out.append(
            RelaxationLine(
                name,
                unit,
                len(group),
                total,
                all(r.avoidable for r in group),
                tuple(r.asset for r in group),
                text,
            )
        )
    return out


def _single(r: Relaxation) -> RelaxationLine:
    return RelaxationLine(r.constraint, r.unit, 1, r.amount, r.avoidable, (r.asset,), r.describe())


def _assets(group: list[Relaxation], shown: int = 3) -> str:
    names = sorted({r.asset for r in group})
    more = f", +{len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
