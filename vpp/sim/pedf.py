"""One interval of a PEDF building's DC bus behind its AC/DC interface converter (pure).

The building's PV, battery, base and flexible load share a DC bus; the interface converter
carries the difference to the grid, and no more than its rating ``converter_kw`` in either
direction. What the devices were told to do (PV limit, flexible-load cap, battery power) is
the starting point; when that would push the converter past its rating, the DC bus gives way
in a fixed order, the same for every controller (the device-level droop of DOMAIN.md: storage
and flexible loads move first):

* **short** (the building would draw more than ``converter_kw``): a PV limit is lifted up to
  the PV available, the battery discharges more (within its power and SOC), the flexible load
  sheds down to its floor (``baseline x (1 - curtail_max_frac)``); what is still missing is
  **unserved load**, taken from the base load first, then from the flexible load;
* **long** (it would export more than ``converter_kw``): the battery charges more, a curtailed
  flexible load returns towards its baseline; what is still left over is **spilled PV**.

Load convention throughout (+ consumption or charging, - generation or discharging). The
converter's losses are not modelled here, as the dispatch does not model them either
(``PedfBuilding.converter_eta`` is unused by both).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PedfOutcome:
    """What a PEDF building realised over one interval (kW, load convention).

    ``exchange_kw`` = ``base_kw + flex_kw + pv_kw + battery_kw`` (the DC bus balances), and
    ``|exchange_kw| <= converter_kw``. ``base_unserved_kw`` and ``flex_unserved_kw`` are the
    demand that could not be supplied (>= 0); ``pv_spilled_kw`` the PV that could be neither
    used nor exported (>= 0).
    """

    exchange_kw: float
    pv_kw: float
    battery_kw: float
    base_kw: float
    flex_kw: float
    base_unserved_kw: float = 0.0
    flex_unserved_kw: float = 0.0
    pv_spilled_kw: float = 0.0

    @property
    def unserved_kw(self) -> float:
        return self.base_unserved_kw + self.flex_unserved_kw


def pedf_balance(
    converter_kw: float,
    pv_available_kw: float,
    pv_kw: float,
    base_kw: float,
    flex_kw: float,
    flex_floor_kw: float,
    flex_baseline_kw: float,
    battery_kw: float,
    battery_min_kw: float,
    battery_max_kw: float,
) -> PedfOutcome:
    """The building's realised interval, its converter held at ``converter_kw``.

    Parameters
    ----------
    converter_kw : the interface converter's rating, kW (> 0), both directions.
    pv_available_kw : PV the panels could give this interval, kW (>= 0).
    pv_kw : PV under its command, kW (<= 0, at least ``-pv_available_kw``).
    base_kw : base-load demand, kW (>= 0).
    flex_kw : flexible load under its cap, kW, within ``[flex_floor_kw, flex_baseline_kw]``.
    flex_floor_kw : the least the flexible load may be shed to, kW.
    flex_baseline_kw : the flexible load's demand uncurtailed, kW.
    battery_kw : battery power asked for, already within its limits, kW.
    battery_min_kw, battery_max_kw : the battery's limits this interval (power and SOC), kW
        (``battery_min_kw <= 0 <= battery_max_kw``).

    Returns
    -------
    PedfOutcome
    """
    pv, bat, base, flex = pv_kw, battery_kw, base_kw, flex_kw
    short = base + flex + pv + bat - converter_kw
    if short > 0:
        new = max(pv - short, -pv_available_kw)
        short, pv = short - (pv - new), new
        new = max(bat - short, battery_min_kw)
        short, bat = short - (bat - new), new
        new = max(flex - short, min(flex_floor_kw, flex))
        short, flex = short - (flex - new), new
        lost_base = min(max(short, 0.0), base)
        lost_flex = min(max(short - lost_base, 0.0), flex)
        base, flex = base - lost_base, flex - lost_flex
        return PedfOutcome(_sum(base, flex, pv, bat), pv, bat, base, flex, lost_base, lost_flex)
    long = -converter_kw - (base + flex + pv + bat)
    if long > 0:
        new = min(bat + long, battery_max_kw)
        long, bat = long - (new - bat), new
        new = min(flex + long, max(flex_baseline_kw, flex))
        long, flex = long - (new - flex), new
        spilled = min(max(long, 0.0), -pv)
        pv += spilled
        return PedfOutcome(_sum(base, flex, pv, bat), pv, bat, base, flex, pv_spilled_kw=spilled)
    return PedfOutcome(_sum(base, flex, pv, bat), pv, bat, base, flex)


def _sum(base: float, flex: float, pv: float, bat: float) -> float:
    return base + flex + pv + bat
