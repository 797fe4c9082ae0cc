"""The typed problem a controller solves and the result it returns.

``vpp.plan.prepare`` turns the park, its state and its forecasts into a :class:`DispatchProblem`
(arrays on a horizon, indices instead of timestamps); a controller turns it into a
:class:`DispatchResult`. Everything here is plain data: tests and simulations drive the
controllers with hand-made arrays.

Sign convention: load convention (see :mod:`vpp.park.model`). ``p_kw > 0`` consumes or charges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vpp.park.model import (
    Battery,
    CurtailableLoad,
    DrTerms,
    EvCharger,
    GiveWay,
    Horizon,
    PedfBuilding,
    Penalties,
    PvArray,
    ShiftableLoad,
)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PvInput:
    spec: PvArray
    p_available_kw: np.ndarray  # >= 0, what the array can produce (AC, after the inverter)


@dataclass(frozen=True)
class BatteryInput:
    spec: Battery
    e_init_kwh: float  # measured; may lie outside the SOC bounds
    terminal_value_cny_per_kwh: float


@dataclass(frozen=True)
class EvSessionInput:
    """A session on the horizon, in step indices: plugged for steps ``arrival_k..departure_k-1``."""

    session_id: str
    arrival_k: int
    departure_k: int
    e_needed_kwh: float  # still to deliver by departure
    p_max_kw: float
    target_k: int | None = None  # intermediate target: energy delivered by boundary target_k
    target_e_kwh: float = 0.0
    e_dischargeable_kwh: float = 0.0  # V2G: energy that may be taken from the car
    departs_after_horizon: bool = False  # the need is prorated, not a hard target
    # What no decision can deliver any more (the charger at full power from the horizon's
    # start would still leave the car short): left out of ``e_needed_kwh`` / ``target_e_kwh``
    # and reported as an unavoidable shortfall, never penalised.
    e_unreachable_kwh: float = 0.0
    target_unreachable_kwh: float = 0.0
    # Who gives way first when not every car can be served (its shortfall's weight:
    # ``Penalties.give_way_cny_per_kwh("ev_energy", give_way)``).
    give_way: GiveWay = GiveWay.NORMAL


@dataclass(frozen=True)
class EvChargerInput:
    spec: EvCharger
    sessions: tuple[EvSessionInput, ...] = ()
    # The powers the charger can be set to (kW at its grid terminal, ascending, 0 first), from
    # its allowed pilot currents; empty: any power in ``[p_min_kw, p_max_kw]``, or 0.
    steps_kw: tuple[float, ...] = ()


@dataclass(frozen=True)
class ShiftableWindow:
    start_k: int
    end_k: int  # exclusive
    e_kwh: float  # energy still to consume in this window
    e_unreachable_kwh: float = 0.0  # beyond full power until the window closes: not in e_kwh


@dataclass(frozen=True)
class ShiftableInput:
    spec: ShiftableLoad
    windows: tuple[ShiftableWindow, ...]
    running_steps: int = 0  # consecutive steps already run before the horizon (min run)


@dataclass(frozen=True)
class CurtailableInput:
    spec: CurtailableLoad
    baseline_kw: np.ndarray  # >= 0


@dataclass(frozen=True)
class BaseLoadInput:
    name: str
    bus: str
    p_kw: np.ndarray


@dataclass(frozen=True)
class PedfInput:
    spec: PedfBuilding
    pv_available_kw: np.ndarray
    base_kw: np.ndarray
    flex_baseline_kw: np.ndarray  # zeros when the building has no flexible load
    e_init_kwh: float
    terminal_value_cny_per_kwh: float
    # Exchange the grid or aggregator asks for (NaN where none) and the cost of missing it.
    exchange_target_kw: np.ndarray | None = None
    target_weight_cny_per_kwh: float = 0.0
    # Converter rating kept in reserve against forecast error (kW per interval, >= 0): the
    # plan's import through the converter stays under ``converter_kw - margin_import_kw``, its
    # export under ``converter_kw - margin_export_kw``, so that the DC bus can take a load
    # above forecast (or PV below it) through the converter instead of leaving load unserved.
    converter_margin_import_kw: np.ndarray | None = None
    converter_margin_export_kw: np.ndarray | None = None
    # Energy kept in the battery above its minimum at the end of each interval (kWh, >= 0):
    # what the DC bus would need if the load ran above forecast (PV below) in the coming
    # intervals where the converter cannot carry the difference. Soft: going under it costs
    # ``DispatchProblem.reserve_cny_per_kwh_h`` per kWh and hour (term ``margin_shortfall``).
    e_reserve_kwh: np.ndarray | None = None

    def converter_limits_kw(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Import and export limits of the plan's exchange (kW, >= 0) after the margins; a
        margin never takes more than half the rating (the building must still exchange)."""
        conv = self.spec.converter_kw

        def lim(m):
            m = np.zeros(n) if m is None else np.maximum(np.asarray(m, dtype=float), 0.0)
            return conv - np.minimum(m, 0.5 * conv)

        return lim(self.converter_margin_import_kw), lim(self.converter_margin_export_kw)


@dataclass(frozen=True)
class NetworkConstraint:
    """A linear limit from the network model: ``sum_b coeff[b] * p_bus_kw[b, t] <= limit[t]``.

    ``coeff_per_kw`` has one entry per bus in ``DispatchProblem.buses`` (the sensitivity of,
    say, a cable's loading or a bus voltage to the net load at each bus, linearised around
    the last power flow); ``limit`` carries the constant part. ``element`` names the
    pandapower element for diagnostics.
    """

    name: str
    element: str
    coeff_per_kw: np.ndarray
    limit: np.ndarray
    # The part of the row's tightening that is a margin for forecast error (>= 0, in the
    # row's units, per step; None: none): the plan may use it, at the price of
    # ``Penalties.network_margin_cny_per_kwh`` (term ``margin_shortfall``), never beyond.
    margin: np.ndarray | None = None


@dataclass(frozen=True)
class GroupRow:
    """One linear limit of a configured limit group (a circuit, a panel, a pod of chargers, a
    phase of a sub-circuit), over asset powers in the load convention, every interval ``t``:
    ``sum_i coeff[i] * p_kw[assets[i], t] + fixed_kw[t] <= limit_kw``.

    ``kind``: ``import`` or ``export`` (an export limit has ``coeff`` -1 and ``fixed_kw`` the
    negated fixed part), or ``phase_A`` / ``phase_B`` / ``phase_C`` (a per-phase current limit
    as a linear inner approximation, in kW). ``fixed_kw``: what no decision moves among the
    group's members (base loads, PV that is not curtailable), per interval; None = 0.
    """

    group: str
    kind: str
    assets: tuple[str, ...]
    coeff: tuple[float, ...]
    limit_kw: float
    fixed_kw: np.ndarray | None = None


@dataclass(frozen=True)
class DrEventRow:
    """One called DR event as the dispatch sees it (:func:`vpp.plan.dr_targets.dr_targets`).

    ``owned`` marks the event's own intervals on the horizon (an interval several events
    cover belongs to the stricter one: :func:`vpp.park.dr_rules.attribute`); the import
    corridor there (``DispatchProblem.dr_import_max_kw`` / ``dr_import_min_kw``) is this
    event's. Delivery over ``owned`` (kWh, in the event's direction: ``sign`` x (baseline -
    import) x dt, ``sign`` +1 for peak shaving, -1 for valley filling) is held in
    ``[e_min_kwh, e_max_kwh]``, a soft row (infinite for a cap-only event, which is settled
    as compliance with ``cap_kw``).

    The rest values the plan (:mod:`controllers.dr_choice`), as the settlement will:
    ``delivered_kwh`` metered so far, ``requested_kwh`` over the whole event (metered past,
    the horizon and ``requested_beyond_kwh`` after it), ``hours`` settled in all, the band,
    the compensation terms and, for a cap-only event, the energy already over its cap.
    ``follow`` False: the plan does not follow the event (its corridor and row are off, its
    subsidy is not credited and its non-performance penalty is priced, term ``dr_penalty``).
    """

    event_id: str
    sign: float
    owned: np.ndarray
    e_min_kwh: float = -np.inf
    e_max_kwh: float = np.inf
    # The aim on the horizon and its tolerance (kWh): the row is ``aim +- tol`` but where a
    # reserve for a window not begun raises its top; delivery beyond ``aim + tol`` is that
    # reserve, not a plan to over-deliver (the plan is valued at ``aim + tol`` at most).
    e_aim_kwh: float = 0.0
    tol_kwh: float = np.inf
    # The reserve for a window not begun, per interval (kW, >= 0; None: none): the corridor
    # and the row are moved by it in the request's direction. A robustness margin, not a
    # choice: the plans that decide whether to follow are made without it.
    reserve_kw: np.ndarray | None = None
    delivered_kwh: float = 0.0
    requested_kwh: float = 0.0
    requested_beyond_kwh: float = 0.0
    hours: float = 0.0
    band: tuple[float, float] = (0.8, 1.2)
    terms: DrTerms = field(default_factory=DrTerms)
    cap_kw: float | None = None
    e_over_cap_kwh: float = 0.0
    follow: bool = True
    note: str = ""  # what the plan's messages say about the event's progress and aim
    binding: bool = False  # a command the park acknowledged: followed, never weighed

    @property
    def aim_frac(self) -> float:
        """The middle of the band, the share of the request the plan aims at."""
        return 0.5 * (self.band[0] + self.band[1])


@dataclass(frozen=True)
class MeterInput:
    """A sub-meter as the dispatch sees it (:mod:`vpp.park.meters`): the buses it measures,
    its prices on the horizon, its demand charge and its month's peak so far.

    Priced only when ``DispatchProblem.per_meter_billing`` (each meter billed on its own
    import and export); netted, the meters are carried for the accounts and the connection is
    priced. Export is valued at min(export, import price) per meter, as at the connection.
    """

    name: str
    buses: tuple[str, ...]
    price_import_cny_per_kwh: np.ndarray
    price_export_cny_per_kwh: np.ndarray
    demand_charge_cny_per_kw: float = 0.0  # for a rise of this meter's month peak import
    month_peak_import_kw: float = 0.0
    peak_margin_kw: np.ndarray | None = None  # as DispatchProblem.peak_margin_kw, this meter's


@dataclass(frozen=True)
class DispatchProblem:
    horizon: Horizon
    buses: tuple[str, ...]
    price_import_cny_per_kwh: np.ndarray
    price_export_cny_per_kwh: np.ndarray
    import_max_kw: np.ndarray  # connection and transformer limit, minus headroom
    export_max_kw: np.ndarray
    pv: tuple[PvInput, ...] = ()
    batteries: tuple[BatteryInput, ...] = ()
    ev_chargers: tuple[EvChargerInput, ...] = ()
    shiftables: tuple[ShiftableInput, ...] = ()
    curtailables: tuple[CurtailableInput, ...] = ()
    base_loads: tuple[BaseLoadInput, ...] = ()
    pedfs: tuple[PedfInput, ...] = ()
    ef_kg_per_kwh: np.ndarray | None = None
    carbon_price_cny_per_kg: float = 0.0
    demand_charge_cny_per_kw: float = 0.0  # for a rise of the month's peak import
    month_peak_import_kw: float = 0.0
    # Import the plan keeps in reserve below the month's peak, against forecast error: the
    # demand charge is assessed on planned import plus this margin. Without it the plan fills
    # every interval up to the month's peak (no charge there) and each under-forecast sets a
    # new peak, which the next plan fills again: a ratchet seen in closed-loop simulation.
    peak_margin_kw: np.ndarray | None = None
    dr_import_max_kw: np.ndarray | None = None  # +inf where no cap
    dr_import_min_kw: np.ndarray | None = None  # -inf where no floor
    # The called DR events on the horizon: their own intervals, energy rows and terms.
    dr_rows: tuple[DrEventRow, ...] = ()
    # DR revenue: CNY per kWh of import below ``dr_baseline_kw`` (+ peak shaving pays, -
    # valley filling pays; 0 outside paid DR intervals). The objective credits
    # ``sum(dr_credit * (dr_baseline - import)) * dt`` (term ``dr_revenue``, <= 0 = income),
    # but on the intervals of followed events settled on energy, paid all or nothing: their
    # subsidy is credited at their aim instead (controllers.dr_rows.dr_revenue_cny).
    dr_credit_cny_per_kwh: np.ndarray | None = None
    dr_baseline_kw: np.ndarray | None = None
    dr_baseline_method: str = ""  # how dr_baseline_kw was made (the plan's label)
    bus_import_max_kw: np.ndarray | None = None  # per bus (building transformer), +inf = none
    # Forecast error the plan keeps network margins for, per bus and interval (kW, >= 0, shape
    # (len(buses), n)): ``up`` = the bus may draw this much more than planned (load above
    # P50, PV below it), ``down`` = this much less (PV above, load below), at the park's risk
    # level. The AC loop (:mod:`vpp.grid.loop`) checks the plan under both and keeps each
    # network row's limit that far from the element's rating. None = no margin.
    bus_error_up_kw: np.ndarray | None = None
    bus_error_down_kw: np.ndarray | None = None
    network: tuple[NetworkConstraint, ...] = ()
    # Limit groups of the park's configuration, as rows on asset powers (GroupRow).
    group_rows: tuple[GroupRow, ...] = ()
    penalties: Penalties = field(default_factory=Penalties)
    # Price of a kWh under a PEDF battery's reserve for one hour (``PedfInput.e_reserve_kwh``):
    # above any energy price, so that arbitrage never spends the reserve, and below what a kW
    # of new month peak costs per interval, so that the reserve is never refilled at the price
    # of a peak.
    reserve_cny_per_kwh_h: float = 20.0
    time_limit_s: float = 30.0
    mip_rel_gap: float = 1e-4
    # The grid-friendly preference (term ``grid_friendly``, controllers.grid_friendly): CNY per
    # kW of each local day's highest import on the horizon, and per kW of change in import
    # from one interval to the next (0: off; an earlier import is always slightly preferred).
    peak_spread_cny_per_kw: float = 0.0
    import_ramp_cny_per_kw: float = 0.0
    # Local day of each interval counted from the horizon's first (0, 1, ...); None: one day.
    day_index: np.ndarray | None = None
    # Sub-meters (tenants and the park's common meter), a partition of ``buses``. With
    # ``per_meter_billing`` each meter's import and export is priced on its own (no netting
    # across meters; controllers.meter_block) and the connection's prices and demand charge
    # are not used; the connection's limits, DR rows and carbon stay on the total.
    meters: tuple[MeterInput, ...] = ()
    per_meter_billing: bool = False
    # Where the prices and factors came from (series cover, fallbacks), in words; the plan's
    # messages carry them (vpp.plan.cycle).
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return self.horizon.n

    @property
    def dt_h(self) -> float:
        return self.horizon.dt_h

    def bus_index(self, bus: str) -> int:
        return self.buses.index(bus)

    def dr_max(self) -> np.ndarray:
        return self.dr_import_max_kw if self.dr_import_max_kw is not None else _inf(self.n)

    def dr_min(self) -> np.ndarray:
        return self.dr_import_min_kw if self.dr_import_min_kw is not None else -_inf(self.n)

    def dr_revenue_cny(self, p_net_kw: np.ndarray) -> float:
        """DR subsidy a schedule earns (CNY, + income) under the linear credit as given (the
        objective's is :func:`controllers.dr_rows.dr_revenue_cny`)."""
        if self.dr_credit_cny_per_kwh is None or self.dr_baseline_kw is None:
            return 0.0
        credit = np.asarray(self.dr_credit_cny_per_kwh, dtype=float)
        resp = np.asarray(self.dr_baseline_kw, dtype=float) - np.asarray(p_net_kw, dtype=float)
        return float(self.dt_h * credit @ resp)

    def peak_margin(self) -> np.ndarray:
        return self.peak_margin_kw if self.peak_margin_kw is not None else np.zeros(self.n)

    def ef(self) -> np.ndarray:
        return self.ef_kg_per_kwh if self.ef_kg_per_kwh is not None else np.zeros(self.n)

    def bus_error_kw(self) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) forecast error per bus and interval (kW, >= 0); zeros when unset."""
        shape = (len(self.buses), self.n)

        def arr(a):
            return np.zeros(shape) if a is None else np.maximum(np.asarray(a, float), 0.0)

        return arr(self.bus_error_up_kw), arr(self.bus_error_down_kw)

    def bus_max(self) -> np.ndarray:
        if self.bus_import_max_kw is not None:
            return self.bus_import_max_kw
        return np.full(len(self.buses), np.inf)


def park_scale_kw(problem: DispatchProblem) -> float:
    """The most power the whole park could draw or give in one interval (kW): every load at
    its largest, every battery, charger and PV array at full power. A limit ten times this
    never binds, so it stands for "no limit" in a solver (which needs finite numbers of a
    sensible size: 1e7 next to kW values made Clarabel report the LP unbounded)."""
    p = problem
    total = sum(float(np.max(b.p_kw, initial=0.0)) for b in p.base_loads)
    total += sum(max(b.spec.p_charge_max_kw, b.spec.p_discharge_max_kw) for b in p.batteries)
    total += sum(float(np.max(x.p_available_kw, initial=0.0)) for x in p.pv)
    total += sum(c.spec.p_max_kw for c in p.ev_chargers)
    total += sum(float(np.max(c.baseline_kw, initial=0.0)) for c in p.curtailables)
    total += sum(s.spec.p_max_kw for s in p.shiftables)
    for pe in p.pedfs:
        total += pe.spec.converter_kw + float(np.max(pe.base_kw, initial=0.0))
        total += float(np.max(pe.pv_available_kw, initial=0.0)) + pe.spec.battery.p_charge_max_kw
    return max(total, 1.0)


def _inf(n: int) -> np.ndarray:
    return np.full(n, np.inf)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
# The objective's terms (CNY), in the order reports list them; every result carries all of them.
TERMS = (
    "energy_import",
    "energy_export",
    "demand_charge",
    "carbon",
    "degradation",
    "terminal_value",
    "pv_curtailment",
    "load_curtailment",
    "pedf_target",
    "margin_shortfall",
    "dr_revenue",
    "dr_penalty",
    "grid_friendly",
    "penalties",
)


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------
@dataclass
class AssetSchedule:
    """One asset's plan: ``p_kw`` at its grid terminal (load convention) per interval.

    ``e_kwh`` (n + 1 boundaries) for storage; ``detail`` holds kind-specific arrays
    (``p_charge_kw``, ``p_discharge_kw``, ``p_available_kw``, ``curtail_kw``, ...).
    ``held`` is why the asset is held at its safe setpoint (``""``: not held); ``p_kw`` is
    then what it is sent, not what the dispatch chose (:func:`controllers.safety.held_reasons`).
    """

    name: str
    kind: str  # pv | battery | ev_charger | shiftable | curtailable | base_load | pedf
    bus: str
    p_kw: np.ndarray
    e_kwh: np.ndarray | None = None
    detail: dict[str, np.ndarray] = field(default_factory=dict)
    held: str = ""


@dataclass(frozen=True)
class Relaxation:
    """A soft constraint that had to give way: which, on which asset, where, by how much.

    ``amount`` is physical (``unit``: kWh short for an energy, kW over for a limit), never
    the penalty it cost. ``avoidable`` is False for a shortfall no decision on the horizon
    could prevent (a car that departs before its energy can be delivered): such a shortfall
    is reported with its ``reason`` and carries no penalty in the objective.
    """

    constraint: str
    asset: str
    steps: tuple[int, ...]
    amount: float
    unit: str  # "kWh" or "kW"
    reason: str = ""
    avoidable: bool = True

    def describe(self) -> str:
        over = self.unit != "kWh" or self.constraint.endswith("_over")
        what = "over by" if over else "short by"
        where = f" (steps {self.steps[0]}-{self.steps[-1]})" if self.steps else ""
        why = f": {self.reason}" if self.reason else ""
        head = f"{self.constraint} on {self.asset}: {what} {self.amount:.3f} {self.unit}"
        return head + where + why

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "constraint": self.constraint,
            "asset": self.asset,
            "steps": list(self.steps),
            "amount": self.amount,
            "unit": self.unit,
            "reason": self.reason,
            "avoidable": self.avoidable,
        }


@dataclass(frozen=True)
class DrDecision:
    """Whether the plan follows a called DR event, and what that is worth (CNY).

    ``extra_cost_cny``: what following costs more than not following (energy, demand charge
    and everything else but DR compensation; negative = following saves); ``earns_cny``:
    what following earns more in DR compensation (subsidy if effective, less the
    non-performance penalty not following would pay). Followed when the second covers the
    first; an event with no compensation terms at all is followed without being weighed
    (``weighed`` False, figures 0).
    """

    event_id: str
    followed: bool
    extra_cost_cny: float = 0.0
    earns_cny: float = 0.0
    weighed: bool = True
    says: str = ""
    effective: bool = False  # the settlement's verdict on the chosen plan (predicted)


@dataclass
class DispatchResult:
    controller: str
    status: str  # optimal | optimal_inaccurate | infeasible | failed | heuristic
    solver: str
    horizon: Horizon
    p_net_kw: np.ndarray  # park import (+) / export (-)
    assets: dict[str, AssetSchedule]
    bus_p_kw: dict[str, np.ndarray]
    objective_cny: float
    terms_cny: dict[str, float]
    relaxed: list[Relaxation] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    dr_decisions: dict[str, DrDecision] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("optimal", "optimal_inaccurate", "heuristic")

    @property
    def objective_cost_cny(self) -> float:
        """The money part of the objective (CNY): every term but the penalties and the
        grid-friendly preference (controllers.grid_friendly), which are weights, not money."""
        return float(self.objective_cny - self.objective_penalty - self.objective_preference)

    @property
    def objective_preference(self) -> float:
        """The grid-friendly preference in the objective (controllers.grid_friendly): a
        weight that breaks ties in the grid's favour, in the objective's scale, not money."""
        return float(self.terms_cny.get("grid_friendly", 0.0))

    @property
    def objective_penalty(self) -> float:
        """The penalty part of the objective: the relaxations' amounts times their configured
        weights (:class:`vpp.park.model.Penalties`). A weight that ranks what gives way
        first, in the objective's scale, but not money: never shown as CNY."""
        return float(self.terms_cny.get("penalties", 0.0))

    @property
    def p_import_kw(self) -> np.ndarray:
        return np.maximum(self.p_net_kw, 0.0)

    @property
    def p_export_kw(self) -> np.ndarray:
        return np.maximum(-self.p_net_kw, 0.0)

    def setpoints_kw(self, k: int = 0) -> dict[str, float]:
        """Per-asset power for interval ``k`` (the one a receding-horizon loop applies)."""
        return {name: float(s.p_kw[k]) for name, s in self.assets.items()}

    def to_json_dict(self) -> dict[str, Any]:
        def arr(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [round(float(x), 6) for x in a]

        return {
            "controller": self.controller,
            "status": self.status,
            "solver": self.solver,
            "horizon": {
                "start": self.horizon.start.isoformat(),
                "step_minutes": self.horizon.step.total_seconds() / 60,
                "n": self.horizon.n,
            },
            "objective_cny": self.objective_cny,
            "objective_cost_cny": self.objective_cost_cny,
            "objective_penalty": self.objective_penalty,
            "terms_cny": dict(self.terms_cny),
            "timings_s": dict(self.timings_s),
            "relaxed": [r.to_json_dict() for r in self.relaxed],
            "messages": list(self.messages),
            "dr_decisions": {
                k: {
                    "followed": d.followed,
                    "extra_cost_cny": d.extra_cost_cny,
                    "earns_cny": d.earns_cny,
                    "weighed": d.weighed,
                    "effective": d.effective,
                    "says": d.says,
                }
                for k, d in self.dr_decisions.items()
            },
            "p_net_kw": arr(self.p_net_kw),
            "bus_p_kw": {b: arr(v) for b, v in self.bus_p_kw.items()},
            "assets": {
                name: {
                    "kind": s.kind,
                    "bus": s.bus,
                    "p_kw": arr(s.p_kw),
                    "e_kwh": arr(s.e_kwh),
                    "detail": {k: arr(v) for k, v in s.detail.items()},
                    **({"held": s.held} if s.held else {}),
                }
                for name, s in self.assets.items()
            },
        }


def effective_export_price(problem: DispatchProblem) -> np.ndarray:
    """Export is valued at min(export price, import price), interval by interval.

    One meter nets import and export, so a plan may not buy and sell in the same interval;
    capping the export price at the import price keeps the LP from pretending to (it could
    otherwise import at a 0.26 CNY valley price and export at a 0.4153 benchmark price at
    once). Where the export price exceeds the import price this undervalues exported energy:
    a conservative choice, used alike by the optimiser and the yardstick in controllers.costs.
    """
    return np.minimum(
        np.asarray(problem.price_export_cny_per_kwh, dtype=float),
        np.asarray(problem.price_import_cny_per_kwh, dtype=float),
    )


def add_pedf_schedules(problem: DispatchProblem, assets: dict[str, AssetSchedule]) -> None:
    """Add each PEDF building's base load (an asset of its own) and its grid exchange
    (kind ``pedf``: an aggregate of its members, left out of any sum over assets)."""
    for pe in problem.pedfs:
        base = pe.spec.base_load
        assets[base.name] = AssetSchedule(
            base.name, "base_load", base.bus, np.asarray(pe.base_kw, dtype=float).copy()
        )
        members = [pe.spec.battery.name, pe.spec.pv.name, base.name]
        if pe.spec.flexible_load:
            members.append(pe.spec.flexible_load.name)
        exchange = sum(assets[m].p_kw for m in members)
        assets[pe.spec.name] = AssetSchedule(pe.spec.name, "pedf", pe.spec.bus, exchange)


class Controller(Protocol):
    """What every controller (optimiser or baseline) offers the runtime."""

    name: str

    def dispatch(self, problem: DispatchProblem) -> DispatchResult: ...
