"""Per-phase currents of a group of assets and their linear inner approximation.

An asset's connection (:data:`vpp.park.model.PHASES`) says which phases its current flows in,
at unity power factor, in each phase's own frame (the angle of the current against that
phase's voltage to neutral):

- ``three_phase``: ``p / (sqrt 3 V)`` in every phase, at 0 deg;
- single-phase ``A`` (``B``, ``C``): ``sqrt 3 p / V`` in that phase, at 0 deg;
- line-to-line ``AB``: ``p / V`` in A at +30 deg and in B at -30 deg (the line voltage
  ``V_AB`` leads ``V_A`` by 30 deg; the current returns through B, which ``V_AB`` lags by
  30 deg in B's frame); ``BC``: B +30, C -30; ``CA``: C +30, A -30.

``V`` is the line-to-line voltage (V), ``p`` the asset's power (kW, load convention). A phase's
current is the phasor sum of its contributions; its limit ``|I| <= I_max`` is a disk. The
linear rows keep the phasor inside the regular 12-gon inscribed in that disk, with vertices
at every multiple of 30 deg (facets :func:`facets_deg`): any point that keeps the rows has
``|I| <= I_max`` (the polygon lies inside the circle), so an LP-feasible plan is truly
feasible.

Capacity given up: **none at balance** (a balanced load, three-phase or equal on the line
pairs, puts every phase's current at 0 deg, a vertex: the rows allow exactly ``I_max``); none
either for a load of one kind only (0 or +-30 deg, vertices); at most ``1 - cos 15 deg`` =
**3.41 %** of ``I_max``, at a current 15 deg off its phase voltage (single-phase and line-pair
loads mixed half and half). When every member only consumes, the current stays within
+-30 deg and the two facets at +-15 deg are the whole polygon there (:func:`facets_deg`
with ``consuming_only``); otherwise all twelve are kept.
"""

from __future__ import annotations

import math

PHASE_NAMES = ("A", "B", "C")
SIDES = 12  # the inscribed polygon: vertices at multiples of 360 / SIDES = 30 deg
GIVEN_UP_AT_BALANCE_FRAC = 0.0
GIVEN_UP_WORST_FRAC = 1.0 - math.cos(math.pi / SIDES)  # 0.0341

# Connection -> ((phase, angle in that phase's frame, deg, amperes per kW x V / 1000), ...)
_SQ3 = math.sqrt(3.0)
_CONTRIB: dict[str, tuple[tuple[str, float, float], ...]] = {
    "three_phase": (("A", 0.0, 1 / _SQ3), ("B", 0.0, 1 / _SQ3), ("C", 0.0, 1 / _SQ3)),
    "A": (("A", 0.0, _SQ3),),
    "B": (("B", 0.0, _SQ3),),
    "C": (("C", 0.0, _SQ3),),
    "AB": (("A", 30.0, 1.0), ("B", -30.0, 1.0)),
    "BC": (("B", 30.0, 1.0), ("C", -30.0, 1.0)),
    "CA": (("C", 30.0, 1.0), ("A", -30.0, 1.0)),
}


def contributions(connection: str, voltage_v: float) -> tuple[tuple[str, float, float], ...]:
    """``(phase, angle_deg, a_per_kw)`` of an asset on ``connection`` at line-to-line
    ``voltage_v`` (V): each phase it draws on, the angle of its current there, and the amperes
    per kW of its power."""
    return tuple((ph, ang, k * 1000.0 / voltage_v) for ph, ang, k in _CONTRIB[connection])


def phase_currents_a(members: list[tuple[str, float, float]]) -> dict[str, complex]:
    """The true phasor current of each phase (A, complex, in the phase's own frame) of
    ``members`` = ``[(connection, voltage_v, p_kw), ...]``."""
    out = dict.fromkeys(PHASE_NAMES, 0j)
    for conn, v, p in members:
        for ph, ang, a_per_kw in contributions(conn, v):
            out[ph] += (
                p * a_per_kw * complex(math.cos(math.radians(ang)), math.sin(math.radians(ang)))
            )
    return out


def facets_deg(consuming_only: bool) -> tuple[float, ...]:
    """The outward normals (deg) of the 12-gon's facets the rows keep: all twelve (15, 45,
    ... 345), or +-15 when every member only consumes (its current then lies within +-30)."""
    if consuming_only:
        return (15.0, -15.0)
    step = 360.0 / SIDES
    return tuple(step / 2 + step * i for i in range(SIDES))


def facet_coeff(connection: str, voltage_v: float, phase: str, theta_deg: float) -> float:
    """Amperes, along the facet normal ``theta_deg`` of ``phase``, per kW of an asset."""
    return sum(
        a * math.cos(math.radians(ang - theta_deg))
        for ph, ang, a in contributions(connection, voltage_v)
        if ph == phase
    )


def facet_limit_a(current_max_a: float) -> float:
    """A facet row's limit (A): the apothem of the 12-gon inscribed in ``|I| <= I_max``."""
    return current_max_a * math.cos(math.pi / SIDES)
