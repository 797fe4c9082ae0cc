"""Who gives way, what relaxing a limit costs, and how the dispatch is run: the park file's
``penalties`` and ``dispatch`` sections (re-exported by :mod:`vpp.park.model`).

Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GiveWay(StrEnum):
    """Who gives way first when a DR call or a limit leaves too little for everyone: an EV
    session's energy, a shiftable load's window energy, a curtailable load's comfort.

    ``first`` gives way before ``normal``, ``normal`` before ``last``; every level gives way
    before a DR call, SOC bounds and the converter, connection and network limits unless the
    penalties say otherwise (the weights: :meth:`Penalties.give_way_cny_per_kwh`).
    """

    FIRST = "first"
    NORMAL = "normal"
    LAST = "last"


@dataclass(frozen=True)
class Penalties:
    """Cost of relaxing a constraint, per kWh of violation (per kW over one interval). An
    asset's ``give_way`` priority scales its weight: ``first`` by ``give_way_first_factor``,
    ``normal`` by 1, ``last`` by ``give_way_last_factor``; with the defaults an EV or
    shiftable kWh weighs 1,000, 2,000 or 4,000, all below DR's 5,000
    (:meth:`give_way_cny_per_kwh`).

    The weights must exceed any benefit a violation could buy (energy price, demand charge /
    dt), so that a constraint is relaxed only when it cannot be met. Their order sets what
    gives way first when the world leaves no feasible choice: comfort (curtailable loads at
    ``give_way: first``, for their own cost), then EV and shiftable energy and ranked comfort
    (first, normal, last), then DR, DR before SOC bounds, SOC bounds before the converter,
    network and connection limits. With the default factors every level gives way to a DR
    call; a factor or base that puts ``last`` above ``dr_cny_per_kwh`` is the operator saying
    otherwise: those assets then keep their energy and the DR call gives way.
    """

    ev_energy_cny_per_kwh: float = 2_000.0
    shiftable_energy_cny_per_kwh: float = 2_000.0
    dr_cny_per_kwh: float = 5_000.0
    soc_bounds_cny_per_kwh: float = 10_000.0
    pedf_converter_cny_per_kwh: float = 20_000.0
    connection_cny_per_kwh: float = 20_000.0
    network_cny_per_kwh: float = 20_000.0
    # A kWh of the forecast-error margin a network row keeps inside its limit, used: above
    # what any energy price or demand charge could buy (a kW over 15 minutes at 32 CNY per
    # kW-month is 128 per kWh), below every give-way level, so that a car, a shiftable load
    # or a DR call is served out of the margin before it is shed, never out of the limit.
    network_margin_cny_per_kwh: float = 500.0
    # A kWh curtailed from a curtailable load whose give_way is normal (x the last factor for
    # last), on top of its cost; give_way first adds nothing (curtailed whenever it pays).
    comfort_cny_per_kwh: float = 2_000.0
    # Weight of give_way first against normal (0-1]: an asset that gives way first.
    give_way_first_factor: float = 0.5
    # Weight of give_way last against normal (>= 1): an asset that gives way last.
    give_way_last_factor: float = 2.0

    def give_way_cny_per_kwh(self, kind: str, level: GiveWay | str) -> float:
        """Weight of a kWh an asset gives way by, at its priority ``level``.

        Parameters
        ----------
        kind : str
            ``"ev_energy"`` (an EV session short, also its intermediate target),
            ``"shiftable_energy"`` (a shiftable window short) or ``"comfort"`` (a
            curtailable load curtailed, on top of its own cost).
        level : GiveWay or str
            ``first``, ``normal`` or ``last``.

        Returns
        -------
        float
            The penalty weight (objective units per kWh): the kind's base times 1 for
            ``normal``, ``give_way_first_factor`` for ``first``, ``give_way_last_factor`` for
            ``last``; for ``comfort`` at ``first``, 0 (only the load's cost).
        """
        level = GiveWay(level)
        factor = {
            GiveWay.FIRST: self.give_way_first_factor,
            GiveWay.NORMAL: 1.0,
            GiveWay.LAST: self.give_way_last_factor,
        }[level]
        if kind == "comfort":
            return 0.0 if level is GiveWay.FIRST else self.comfort_cny_per_kwh * factor
        base = {
            "ev_energy": self.ev_energy_cny_per_kwh,
            "shiftable_energy": self.shiftable_energy_cny_per_kwh,
        }[kind]
        return base * factor


class MarginBands(StrEnum):
    """Where the forecast spread behind every margin comes from (``dispatch.margin_bands``)."""

    MEASURED = "measured"  # the forecaster's own recent error, measured
    FORECASTER = "forecaster"  # the forecaster's stated P10/P90 only


@dataclass(frozen=True)
class DispatchSettings:
    horizon_steps: int = 96
    step_minutes: int = 15
    solver: str = "HIGHS"
    fallback_solver: str = "CLARABEL"
    time_limit_s: float = 30.0
    mip_rel_gap: float = 1e-4
    # Margins against forecast error, in multiples of the forecasters' P90-P50 (and P50-P10)
    # spread: 0 plans on P50, 1 keeps the spread itself, 2 twice it (about P99 for a normal
    # error). They apply to the connection, the month's peak, DR, every network row the AC
    # check adds and the PEDF converters (vpp.plan.prepare, vpp.grid.loop). The default, 1,
    # is chosen from bench/scenarios.py --risk 0,0.5,1: on the fleet depot it took the
    # realised transformer violations from 10 intervals to 0 for 1.8 % more cost, on the
    # DR-heavy manufacturing week from 11 to 6 for 1.6 % more.
    risk_frac: float = 1.0
    # Where the spread comes from: ``measured``, the forecaster's own error over the last
    # ``margin_window_days`` (per asset and lead time, bias included: forecasts.error_bands),
    # wherever a lead time has enough samples, its stated P10/P90 elsewhere; ``forecaster``,
    # only the stated P10/P90 (the configured profiles state none: no margin at all).
    margin_bands: MarginBands = MarginBands.MEASURED
    margin_window_days: float = 7.0
    # Grid-point tracking between cycles (controllers.tracking): the batteries move on the
    # park meter's readings to hold it inside the plan's corridor (the connection, a DR cap or
    # floor, the month's peak so far) and, inside a followed DR event's interval, at the
    # plan's import, within each battery's room. Off: the batteries hold their planned
    # setpoints whatever the meter reads. The baseline "uncontrolled" never tracks.
    grid_point_tracking: bool = True
    # The grid-friendly preference (controllers.grid_friendly, issue #21): CNY per kW of each
    # local day's highest planned import (with the month peak's forecast-error margin), and
    # per kW of change in planned import from one interval to the next. Weights, not money
    # (the plan's term ``grid_friendly``, left out of its cost): they break the ties of a flat
    # price in the grid's favour, so that equal-cost plans spread charging instead of
    # stacking every battery in the same cheap hours. 0 turns either off. Chosen by
    # bench/peak_spread.py on configs/parks/flat_offpeak.yaml (2.9 days to 22:00, realised):
    # the ramp weight alone took the peak from 2,068 kW to 1,200 (the park's own, without
    # batteries) for the same cost to the fen with perfect forecasts and with naive ones; the
    # day-peak weight lowered it to 1,155 with perfect forecasts for 0.1 % of the saving but
    # left ties of its own (a cold solve's setpoints up to 23 kW from a warm one's): off by
    # default.
    peak_spread_cny_per_kw: float = 0.0
    import_ramp_cny_per_kw: float = 0.001


RISK_FRAC_MAX = 3.0
