"""park-vpp as a library: build a park from plain dataclasses, dispatch it on plain arrays.

No park file, no tariff calendar, no time zone: a :class:`Park` of :class:`Battery` and
:class:`Pv` objects, one base load given as an array, prices as arrays in one currency.
:func:`dispatch` solves one horizon with the project's optimiser (the same
:class:`controllers.problem.DispatchProblem` and :class:`controllers.mpc.MpcController` the
service runs); :func:`run` steps a rolling horizon through a long series, with forecasts
supplied by the caller and the realised state of charge fed forward.

>>> import numpy as np
>>> from vpp import study
>>> park = study.Park(batteries=[study.Battery("bat", e_capacity_kwh=100, p_max_kw=50)],
...                   pv=[study.Pv("roof")], currency="EUR")
>>> price = np.array([0.10] * 12 + [0.30] * 12)           # EUR/kWh, one value per hour
>>> res = study.dispatch(park, load_kw=np.full(24, 40.0), pv_kw=np.zeros(24),
...                      price_per_kwh=price)
>>> res.status, res.currency
('optimal', 'EUR')

The rules, stated once (each is also in the docstring that applies it):

- **Arrays**: one value per step, the length of ``load_kw``; NaN, infinity, a wrong length
  or a negative load or PV value raise :class:`StudyInputError` naming the array and the
  first index. Nothing is clipped. A price or emission factor may be one number (constant).
- **Signs**: load convention (+ consumption or charging). ``battery_p_kw`` > 0 charges;
  ``pv_kw`` and ``pv_used_kw`` are generation (>= 0). Every step
  ``load + sum(battery) - sum(pv_used) == import - export``.
- **PV**: not curtailable unless ``Pv(curtailable=True)``; its rating (``p_rated_kw``)
  defaults to the largest value of its series, so the series is never capped (a series
  above a given rating is an error, not clipped).
- **Battery end value**: a kWh left in a battery at the horizon's end is worth
  ``terminal_value_per_kwh`` when the battery sets one, else the mean of the horizon's
  import prices times ``eta_discharge`` (the rule the park-file path uses), and never less
  than 0 (with negative prices a stored kWh can still be kept: it is no liability).
- **Export**: paid at ``export_price_per_kwh`` (default 0), never above the import price of
  the same step (one meter nets the two: :func:`controllers.problem.effective_export_price`).
- **Time**: ``start`` defaults to 1970-01-01 00:00 UTC; a naive datetime is read as UTC. The
  result's arrays are indexed by step; nothing depends on the date.
- **Money**: every money figure is in ``Park.currency``, a label only (no conversion). The
  objective's terms keep the optimiser's names (``energy_import``, ``energy_export``,
  ``carbon``, ``degradation``, ``terminal_value``, ...), currency-neutral here.
- **Defaults that differ from the park file**: no degradation cost, SOC bounds 0-1, no
  import or export limit, unless given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from controllers import invariants
from controllers.mpc import MpcController
from controllers.problem import (
    BaseLoadInput,
    BatteryInput,
    DispatchProblem,
    DispatchResult,
    PvInput,
)
from vpp.park import battery_detail
from vpp.park import model as m
from vpp.park.battery_detail import ChargeTaper, EfficiencySegment
from vpp.park.value_checks import in_range, nonneg, positive

__all__ = [
    "EPOCH",
    "Battery",
    "ChargeTaper",
    "DispatchOutcome",
    "EfficiencySegment",
    "Park",
    "Pv",
    "RunOutcome",
    "Series",
    "StudyInputError",
    "build_problem",
    "check",
    "dispatch",
    "run",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the start when none is given
BUS = "park"  # the one bus every asset of a study park sits on
LOAD = "load"  # the name of the park's base load in the optimiser's schedules


class StudyInputError(ValueError):
    """An input array or setting the study interface cannot use; the message names it."""


# --------------------------------------------------------------------------------------------
# The park
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Battery:
    """A battery, in the study's terms.

    Parameters
    ----------
    name : str
        Unique among the park's assets.
    e_capacity_kwh : float
        Energy capacity, kWh (SOC 1).
    p_max_kw : float
        Rated charge power, kW; also the discharge power unless ``p_discharge_max_kw``.
    p_discharge_max_kw : float, optional
        Rated discharge power, kW (default: ``p_max_kw``).
    eta_charge, eta_discharge : float
        One-way efficiencies (0-1]: stored = eta_charge x charged, drawn = given / eta_discharge.
    soc_min_frac, soc_max_frac : float
        SOC bounds (0-1).
    soc_init_frac : float
        SOC at the start when :func:`dispatch` is not told otherwise.
    degradation_per_kwh : float
        Cost per kWh charged or discharged, in the park's currency.
    terminal_value_per_kwh : float, optional
        Value of a kWh left at the horizon's end (>= 0; default: the mean import price of
        the horizon times ``eta_discharge``, or 0 if that is negative).
    taper : ChargeTaper, optional
        Charge power falling linearly near full (:class:`vpp.park.battery_detail.ChargeTaper`).
    efficiency_segments : tuple of EfficiencySegment
        Efficiency falling with power, by segment of the rated power (empty: the two
        efficiencies above at any power).
    """

    name: str
    e_capacity_kwh: float
    p_max_kw: float
    p_discharge_max_kw: float | None = None
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min_frac: float = 0.0
    soc_max_frac: float = 1.0
    soc_init_frac: float = 0.5
    degradation_per_kwh: float = 0.0
    terminal_value_per_kwh: float | None = None
    taper: ChargeTaper | None = None
    efficiency_segments: tuple[EfficiencySegment, ...] = ()

    def spec(self) -> m.Battery:
        """The core model's battery (:class:`vpp.park.model.Battery`) on the study's bus."""
        p_dis = self.p_max_kw if self.p_discharge_max_kw is None else self.p_discharge_max_kw
        return m.Battery(
            name=self.name,
            bus=BUS,
            e_kwh=self.e_capacity_kwh,
            p_charge_max_kw=self.p_max_kw,
            p_discharge_max_kw=p_dis,
            eta_charge=self.eta_charge,
            eta_discharge=self.eta_discharge,
            soc_min_frac=self.soc_min_frac,
            soc_max_frac=self.soc_max_frac,
            soc_init_frac=self.soc_init_frac,
            degradation_cny_per_kwh=self.degradation_per_kwh,
            terminal_value_cny_per_kwh=self.terminal_value_per_kwh,
            taper=self.taper,
            efficiency_segments=tuple(self.efficiency_segments),
        )


@dataclass(frozen=True)
class Pv:
    """A PV array whose available AC power the caller gives as a series.

    Parameters
    ----------
    name : str
        Unique among the park's assets.
    p_rated_kw : float, optional
        Inverter rating, kW (default: the largest value of the series it is given, so that
        the series is never capped).
    curtailable : bool
        Whether the optimiser may use less than is available (default False).
    """

    name: str
    p_rated_kw: float | None = None
    curtailable: bool = False

    def spec(self, p_available_kw: np.ndarray) -> m.PvArray:
        """The core model's PV array, rated at ``p_rated_kw`` or the series' maximum."""
        rated = self.p_rated_kw
        if rated is None:
            rated = max(float(np.max(p_available_kw, initial=0.0)), 1e-6)
        return m.PvArray(self.name, BUS, kwp=rated, inverter_kw=rated, curtailable=self.curtailable)


@dataclass(frozen=True)
class Park:
    """A park: batteries, PV arrays and one base load (its series is given when dispatched).

    Parameters
    ----------
    step_min : int
        Step length, minutes (default 60).
    batteries, pv : sequence
        :class:`Battery` and :class:`Pv` objects.
    import_max_kw, export_max_kw : float
        Connection limits, kW (default: none).
    currency : str
        The label of every money figure (prices, costs); no conversion is made.
    carbon_price_per_kg : float
        Price of a kg of CO2 emitted by imports (with ``ef_kg_per_kwh``), in ``currency``.
    demand_charge_per_kw : float
        Cost per kW of the horizon's peak import (default 0: none).
    import_ramp_per_kw, peak_spread_per_kw : float
        The grid-friendly preference (:mod:`controllers.grid_friendly`; the park file's
        ``dispatch.import_ramp_cny_per_kw`` and ``dispatch.peak_spread_cny_per_kw``, with the
        same defaults): a weight per kW of change in import between steps, and per kW of each
        day's peak (days counted in ``start``'s zone, UTC without one). They break the ties of
        a flat price so that equal-cost plans do not stack every battery in the same cheap
        hours; a preference, not money (the result's ``cost`` leaves it out). 0 turns off.
    """

    step_min: int = 60
    batteries: Sequence[Battery] = ()
    pv: Sequence[Pv] = ()
    import_max_kw: float = np.inf
    export_max_kw: float = np.inf
    currency: str = "CNY"
    carbon_price_per_kg: float = 0.0
    demand_charge_per_kw: float = 0.0
    import_ramp_per_kw: float = 0.001
    peak_spread_per_kw: float = 0.0

    def __post_init__(self) -> None:
        names = [x.name for x in (*self.batteries, *self.pv)] + [LOAD]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise StudyInputError(f"Park: asset names must be unique (and not {LOAD!r}): {dup}")
        if self.step_min <= 0:
            raise StudyInputError(f"Park.step_min: must be > 0 minutes, got {self.step_min}")
        for f in ("import_ramp_per_kw", "peak_spread_per_kw"):
            if not (np.isfinite(getattr(self, f)) and getattr(self, f) >= 0):
                raise StudyInputError(f"Park.{f}: must be >= 0, got {getattr(self, f)}")
        problems = [x for b in self.batteries for x in _battery_problems(b)]
        if problems:
            raise StudyInputError("; ".join(problems))

    @property
    def dt_h(self) -> float:
        """Step length in hours."""
        return self.step_min / 60.0


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _battery_problems(b: Battery) -> list[str]:
    """What is wrong with a study battery, each message led by ``Battery 'name'.field``."""
    at = f"Battery {b.name!r}"
    out = [
        *positive(f"{at}.e_capacity_kwh", b.e_capacity_kwh),
        *nonneg(f"{at}.p_max_kw", b.p_max_kw),
        *nonneg(f"{at}.p_discharge_max_kw", b.p_discharge_max_kw or 0.0),
        *in_range(f"{at}.eta_charge", b.eta_charge, 0, 1, True),
        *in_range(f"{at}.eta_discharge", b.eta_discharge, 0, 1, True),
        *in_range(f"{at}.soc_min_frac", b.soc_min_frac, 0, b.soc_max_frac),
        *in_range(f"{at}.soc_max_frac", b.soc_max_frac, 0, 1),
        *in_range(f"{at}.soc_init_frac", b.soc_init_frac, 0, 1),
        *nonneg(f"{at}.degradation_per_kwh", b.degradation_per_kwh),
        *nonneg(f"{at}.terminal_value_per_kwh", b.terminal_value_per_kwh or 0.0),
    ]
    if not out:  # the detail's checks need a valid battery
        out += list(battery_detail.detail_problems(b.spec(), at))
    return out


def _series(name: str, values: object, n: int, nonneg: bool, scalar_ok: bool) -> np.ndarray:
    """``values`` as ``n`` finite floats; a clear error naming ``name`` and the index."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StudyInputError(f"{name}: not an array of numbers ({exc})") from None
    if arr.ndim == 0 and scalar_ok:
        arr = np.full(n, float(arr))
    if arr.ndim != 1 or arr.shape[0] != n:
        raise StudyInputError(f"{name}: expected {n} values (one per step), got shape {arr.shape}")
    bad = np.nonzero(~np.isfinite(arr))[0]
    if bad.size:
        raise StudyInputError(f"{name}[{bad[0]}]: must be a finite number, got {arr[bad[0]]}")
    if nonneg:
        neg = np.nonzero(arr < 0)[0]
        if neg.size:
            raise StudyInputError(
                f"{name}[{neg[0]}]: must be >= 0 (load convention: a load consumes, PV "
                f"generates), got {arr[neg[0]]:g}; {neg.size} negative value(s) in all"
            )
    return arr


def _pv_series(park: Park, pv_kw: object, n: int) -> dict[str, np.ndarray]:
    names = [p.name for p in park.pv]
    if pv_kw is None:
        if names:
            raise StudyInputError(f"pv_kw: the park has PV arrays {names}; give their series")
        return {}
    if not isinstance(pv_kw, Mapping):
        if len(names) != 1:
            raise StudyInputError(
                f"pv_kw: one array given but the park has {len(names)} PV arrays {names}; "
                "give a dict by name"
            )
        pv_kw = {names[0]: pv_kw}
    unknown = sorted(set(pv_kw) - set(names))
    missing = sorted(set(names) - set(pv_kw))
    if unknown or missing:
        raise StudyInputError(f"pv_kw: unknown arrays {unknown}, missing arrays {missing}")
    out = {k: _series(f"pv_kw[{k!r}]", pv_kw[k], n, True, False) for k in names}
    for p in park.pv:
        over = np.nonzero(out[p.name] > (p.p_rated_kw if p.p_rated_kw is not None else np.inf))[0]
        if over.size:
            raise StudyInputError(
                f"pv_kw[{p.name!r}][{over[0]}]: {out[p.name][over[0]]:g} kW is above the "
                f"array's p_rated_kw {p.p_rated_kw:g} (give the AC power after the inverter, "
                "or no rating: the series' maximum is used)"
            )
    return out


def _soc_init(park: Park, soc_init_frac: float | Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for b in park.batteries:
        if soc_init_frac is None:
            x = b.soc_init_frac
        elif isinstance(soc_init_frac, Mapping):
            x = soc_init_frac.get(b.name, b.soc_init_frac)
        else:
            x = soc_init_frac
        if not (np.isfinite(x) and 0.0 <= x <= 1.0):
            raise StudyInputError(f"soc_init_frac[{b.name!r}]: must be in [0, 1], got {x}")
        out[b.name] = float(x)
    if isinstance(soc_init_frac, Mapping):
        unknown = sorted(set(soc_init_frac) - set(out))
        if unknown:
            raise StudyInputError(f"soc_init_frac: unknown batteries {unknown}")
    return out


def _start(start: datetime | None) -> datetime:
    if start is None:
        return EPOCH
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# One horizon
# --------------------------------------------------------------------------------------------
def build_problem(
    park: Park,
    load_kw: Sequence[float] | np.ndarray,
    pv_kw: Sequence[float] | np.ndarray | Mapping[str, Sequence[float]] | None = None,
    price_per_kwh: float | Sequence[float] | np.ndarray = 0.0,
    export_price_per_kwh: float | Sequence[float] | np.ndarray = 0.0,
    ef_kg_per_kwh: float | Sequence[float] | np.ndarray | None = None,
    soc_init_frac: float | Mapping[str, float] | None = None,
    start: datetime | None = None,
) -> DispatchProblem:
    """The optimiser's problem for one horizon (what :func:`dispatch` solves).

    Parameters are those of :func:`dispatch`. The problem's ``*_cny_*`` fields hold the
    study's currency (the core names its money CNY; the numbers are whatever was given).
    """
    load = _series("load_kw", load_kw, len(np.atleast_1d(load_kw)), True, False)
    n = load.size
    if n < 1:
        raise StudyInputError("load_kw: needs at least one step")
    pv = _pv_series(park, pv_kw, n)
    price = _series("price_per_kwh", price_per_kwh, n, False, True)
    export = _series("export_price_per_kwh", export_price_per_kwh, n, False, True)
    ef = None if ef_kg_per_kwh is None else _series("ef_kg_per_kwh", ef_kg_per_kwh, n, True, True)
    soc0 = _soc_init(park, soc_init_frac)
    mean_price = float(price.mean())
    batteries = []
    for b in park.batteries:
        spec = b.spec()
        # Never below 0: a stored kWh can be kept, it is no liability (negative prices).
        end = max(spec.terminal_value(mean_price), 0.0)
        batteries.append(BatteryInput(spec, soc0[b.name] * spec.e_kwh, end))
    horizon = m.Horizon(_start(start), timedelta(minutes=park.step_min), n)
    dates = [t.date() for t in horizon.times()]
    return DispatchProblem(
        horizon=horizon,
        buses=(BUS,),
        price_import_cny_per_kwh=price,
        price_export_cny_per_kwh=export,
        import_max_kw=np.full(n, float(park.import_max_kw)),
        export_max_kw=np.full(n, float(park.export_max_kw)),
        pv=tuple(PvInput(p.spec(pv[p.name]), pv[p.name]) for p in park.pv),
        batteries=tuple(batteries),
        base_loads=(BaseLoadInput(LOAD, BUS, load),),
        ef_kg_per_kwh=ef,
        carbon_price_cny_per_kg=float(park.carbon_price_per_kg),
        demand_charge_cny_per_kw=float(park.demand_charge_per_kw),
        peak_margin_kw=np.zeros(n),
        dr_baseline_kw=load - sum(pv.values(), np.zeros(n)),
        import_ramp_cny_per_kw=float(park.import_ramp_per_kw),
        peak_spread_cny_per_kw=float(park.peak_spread_per_kw),
        day_index=np.array([(d - dates[0]).days for d in dates], dtype=int),
    )


@dataclass
class DispatchOutcome:
    """What :func:`dispatch` returns: the plan for every step of the horizon.

    Attributes
    ----------
    status : str
        The solver's verdict (``optimal``, ``optimal_inaccurate``, ``infeasible``, ...).
    currency : str
        The label of every money figure below.
    import_kw, export_kw : ndarray
        Power bought and sold at the connection per step, kW (>= 0).
    battery_p_kw : dict of ndarray
        Each battery's power per step, kW (+ charging).
    battery_soc_frac, battery_e_kwh : dict of ndarray
        Each battery's SOC (0-1) and energy (kWh) on the ``n + 1`` step boundaries.
    pv_used_kw, pv_curtailed_kw : dict of ndarray
        Each PV array's generation used and curtailed per step, kW (>= 0).
    objective : float
        The objective's value, in ``currency`` (penalty weights of relaxed limits included).
    terms : dict of float
        The objective's terms, in ``currency``: ``energy_import``, ``energy_export`` (<= 0,
        income), ``demand_charge``, ``carbon``, ``degradation``, ``terminal_value`` (<= 0,
        the value left in the batteries), ``pv_curtailment``, ``penalties``, ...
    relaxed : list of str
        Soft limits that had to give way, described.
    problem, result
        The optimiser's own problem and result (:mod:`controllers.problem`), for more.
    """

    status: str
    currency: str
    import_kw: np.ndarray
    export_kw: np.ndarray
    battery_p_kw: dict[str, np.ndarray]
    battery_soc_frac: dict[str, np.ndarray]
    battery_e_kwh: dict[str, np.ndarray]
    pv_used_kw: dict[str, np.ndarray]
    pv_curtailed_kw: dict[str, np.ndarray]
    objective: float
    terms: dict[str, float]
    relaxed: list[str]
    problem: DispatchProblem
    result: DispatchResult

    @property
    def ok(self) -> bool:
        """Whether the solver returned a usable plan."""
        return self.result.ok

    @property
    def net_kw(self) -> np.ndarray:
        """Import - export per step, kW."""
        return self.import_kw - self.export_kw

    @property
    def cost(self) -> float:
        """The money part of the objective, in ``currency``: every term but the penalties and
        the grid-friendly preference (``grid_friendly``), which are weights, not money."""
        t = self.terms
        return float(self.objective - t.get("penalties", 0.0) - t.get("grid_friendly", 0.0))


def _outcome(park: Park, problem: DispatchProblem, r: DispatchResult) -> DispatchOutcome:
    a = r.assets
    bats = {b.spec.name: b.spec for b in problem.batteries}
    e = {k: np.asarray(a[k].e_kwh, dtype=float) for k in bats}
    return DispatchOutcome(
        status=r.status,
        currency=park.currency,
        import_kw=r.p_import_kw,
        export_kw=r.p_export_kw,
        battery_p_kw={k: np.asarray(a[k].p_kw, dtype=float) for k in bats},
        battery_soc_frac={k: e[k] / bats[k].e_kwh for k in bats},
        battery_e_kwh=e,
        pv_used_kw={p.spec.name: -np.asarray(a[p.spec.name].p_kw, float) for p in problem.pv},
        pv_curtailed_kw={p.spec.name: a[p.spec.name].detail["curtail_kw"] for p in problem.pv},
        objective=float(r.objective_cny),
        terms={k: float(v) for k, v in r.terms_cny.items()},
        relaxed=[x.describe() for x in r.relaxed],
        problem=problem,
        result=r,
    )


def dispatch(
    park: Park,
    load_kw: Sequence[float] | np.ndarray,
    pv_kw: Sequence[float] | np.ndarray | Mapping[str, Sequence[float]] | None = None,
    price_per_kwh: float | Sequence[float] | np.ndarray = 0.0,
    export_price_per_kwh: float | Sequence[float] | np.ndarray = 0.0,
    ef_kg_per_kwh: float | Sequence[float] | np.ndarray | None = None,
    soc_init_frac: float | Mapping[str, float] | None = None,
    start: datetime | None = None,
    controller: MpcController | None = None,
) -> DispatchOutcome:
    """Plan the park's batteries (and PV, when curtailable) over one horizon.

    Parameters
    ----------
    park : Park
        The park.
    load_kw : array_like
        The base load per step, kW (>= 0); its length is the horizon's.
    pv_kw : array_like or dict of array_like, optional
        Available PV power per step, kW (>= 0): one array when the park has one PV array,
        else a dict by array name.
    price_per_kwh : float or array_like
        Import price per step, in ``park.currency`` per kWh; reaches the optimiser as given.
    export_price_per_kwh : float or array_like
        Export price per step (default 0), capped at the import price of the step.
    ef_kg_per_kwh : float or array_like, optional
        Emission factor of imports per step, kg CO2/kWh (with ``park.carbon_price_per_kg``).
    soc_init_frac : float or dict, optional
        SOC at the start (0-1): one for every battery, or by name (default: each battery's
        ``soc_init_frac``).
    start : datetime, optional
        The first step's start (default :data:`EPOCH`; naive = UTC). Only labels the result.
    controller : MpcController, optional
        An optimiser to reuse (it keeps built models: a rolling run re-solves without
        rebuilding). Default: a new one.

    Returns
    -------
    DispatchOutcome
        The plan, its objective terms and the solver status.

    Raises
    ------
    StudyInputError
        An array with NaN, a wrong length or a negative load or PV value (the message names
        the array and the first bad index), an unknown PV array or battery.
    """
    problem = build_problem(
        park, load_kw, pv_kw, price_per_kwh, export_price_per_kwh, ef_kg_per_kwh,
        soc_init_frac, start,
    )  # fmt: skip
    result = (controller or MpcController()).dispatch(problem)
    return _outcome(park, problem, result)


# --------------------------------------------------------------------------------------------
# A rolling horizon
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """What happened, step by step, over a long run (the truth a rolling run applies).

    ``load_kw``, ``pv_kw`` (one array, or a dict by PV array name) are what the park really
    drew and could generate; prices and emission factors are known ahead (they are given to
    the optimiser as they are). Checked like :func:`dispatch`'s arguments.
    """

    load_kw: Sequence[float] | np.ndarray
    price_per_kwh: float | Sequence[float] | np.ndarray
    pv_kw: Sequence[float] | np.ndarray | Mapping[str, Sequence[float]] | None = None
    export_price_per_kwh: float | Sequence[float] | np.ndarray = 0.0
    ef_kg_per_kwh: float | Sequence[float] | np.ndarray | None = None


#: ``forecast(k, n)`` -> ``(load_kw, pv_kw)`` for steps ``k .. k + n - 1``: what the caller
#: predicts from what was observed before step ``k`` (``pv_kw`` as in :func:`dispatch`).
Forecaster = Callable[[int, int], tuple[np.ndarray, object]]


@dataclass
class RunOutcome:
    """What :func:`run` returns: what the park did at every step (realised, not planned).

    Attributes
    ----------
    currency : str
        The label of every money figure.
    load_kw, import_kw, export_kw : ndarray
        Per step, kW.
    battery_p_kw, plan_battery_p_kw : dict of ndarray
        Each battery's power per step as realised (within its limits) and as planned, kW.
    battery_soc_frac : dict of ndarray
        Each battery's realised SOC on the ``T + 1`` step boundaries.
    pv_kw, pv_used_kw : dict of ndarray
        Each PV array's available and used generation per step, kW.
    energy_cost : float
        Import bought minus export sold at the given prices, in ``currency``.
    status : list of str
        The solver's verdict at each step.
    solve_s : float
        Time spent in the optimiser, seconds.
    """

    currency: str
    load_kw: np.ndarray
    import_kw: np.ndarray
    export_kw: np.ndarray
    battery_p_kw: dict[str, np.ndarray]
    plan_battery_p_kw: dict[str, np.ndarray]
    battery_soc_frac: dict[str, np.ndarray]
    pv_kw: dict[str, np.ndarray]
    pv_used_kw: dict[str, np.ndarray]
    energy_cost: float
    status: list[str] = field(default_factory=list)
    solve_s: float = 0.0

    @property
    def net_kw(self) -> np.ndarray:
        """Import - export per step, kW."""
        return self.import_kw - self.export_kw


def _realised_battery_kw(spec: m.Battery, e_kwh: float, p_kw: float, dt_h: float) -> float:
    """The power a battery takes (+) or gives (-) at setpoint ``p_kw`` from energy ``e_kwh``:
    within its rating, its taper and its SOC bounds (the simulated park's physics)."""
    hi = min(
        float(battery_detail.charge_limit_kw(spec, e_kwh)),
        battery_detail.charge_for_room_kw(spec, spec.e_max_kwh - e_kwh, dt_h),
    )
    lo = -battery_detail.discharge_for_energy_kw(spec, e_kwh - spec.e_min_kwh, dt_h)
    return min(max(p_kw, lo), hi)


def run(
    park: Park,
    data: Series,
    horizon_steps: int,
    forecast: Forecaster | None = None,
    soc_init_frac: float | Mapping[str, float] | None = None,
    start: datetime | None = None,
) -> RunOutcome:
    """A rolling horizon over ``data``: plan, apply the first step, feed the SOC forward.

    At each step ``k`` the plan covers ``min(horizon_steps, T - k)`` steps (it shortens at
    the series' end) with the prices of ``data`` and the load and PV of ``forecast(k, n)``
    (default: the truth itself, perfect foresight). The first step's battery setpoints are
    applied to the truth: each battery takes what its rating, taper and SOC bounds allow
    from its realised energy (efficiency segments filled in order), PV gives what was
    available (less the plan's curtailment, when curtailable), and the connection takes the
    rest (``import - export = load + sum(battery) - sum(pv_used)`` exactly).

    Parameters
    ----------
    park : Park
        The park.
    data : Series
        The truth over ``T`` steps (``T`` = ``len(data.load_kw)``).
    horizon_steps : int
        Steps per plan (>= 1).
    forecast : callable, optional
        ``forecast(k, n) -> (load_kw, pv_kw)`` for steps ``k .. k+n-1``, from the past only.
    soc_init_frac : float or dict, optional
        SOC at the start, as in :func:`dispatch`.
    start : datetime, optional
        The first step's start (default :data:`EPOCH`).

    Returns
    -------
    RunOutcome
        The realised series.
    """
    if horizon_steps < 1:
        raise StudyInputError(f"horizon_steps: must be >= 1, got {horizon_steps}")
    truth = build_problem(
        park, data.load_kw, data.pv_kw, data.price_per_kwh, data.export_price_per_kwh,
        data.ef_kg_per_kwh, soc_init_frac, start,
    )  # fmt: skip
    T, dt = truth.n, park.dt_h
    load = truth.base_loads[0].p_kw
    pv = {p.spec.name: p.p_available_kw for p in truth.pv}
    ef = truth.ef_kg_per_kwh
    specs = {b.spec.name: b.spec for b in truth.batteries}
    e = {k: np.empty(T + 1) for k in specs}
    for b in truth.batteries:
        e[b.spec.name][0] = b.e_init_kwh
    bat = {k: np.zeros(T) for k in specs}
    plan_bat = {k: np.zeros(T) for k in specs}
    used = {k: np.zeros(T) for k in pv}
    status, ctrl, solve_s = [], MpcController(), 0.0
    for k in range(T):
        n = min(horizon_steps, T - k)
        f_load, f_pv = forecast(k, n) if forecast else (load[k : k + n], _slice(pv, k, n))
        t0 = time.perf_counter()
        try:
            out = dispatch(
                park, f_load, f_pv if park.pv else None,
                truth.price_import_cny_per_kwh[k : k + n],
                truth.price_export_cny_per_kwh[k : k + n], None if ef is None else ef[k : k + n],
                {x: e[x][k] / specs[x].e_kwh for x in specs}, truth.horizon.at(k), ctrl,
            )  # fmt: skip
        except StudyInputError as exc:  # indices are the horizon's: say which one
            raise StudyInputError(f"forecast(k={k}, n={n}): {exc} (index from step {k})") from None
        solve_s += time.perf_counter() - t0
        status.append(out.status)
        for x, spec in specs.items():
            plan_bat[x][k] = out.battery_p_kw[x][0] if out.ok else 0.0
            bat[x][k] = _realised_battery_kw(spec, e[x][k], plan_bat[x][k], dt)
            pc, pd = max(bat[x][k], 0.0), max(-bat[x][k], 0.0)
            e[x][k + 1] = e[x][k] + float(battery_detail.stored_kw(spec, pc, pd)) * dt
        for p in park.pv:
            cut = out.pv_curtailed_kw[p.name][0] if (p.curtailable and out.ok) else 0.0
            used[p.name][k] = max(pv[p.name][k] - cut, 0.0)
    soc = {x: e[x] / specs[x].e_kwh for x in specs}
    return _run_outcome(park, truth, bat, plan_bat, soc, used, status, solve_s)


def _run_outcome(park, truth, bat, plan_bat, soc, used, status, solve_s) -> RunOutcome:
    """The realised series: the connection takes what the devices leave (load + battery -
    PV used), and the bill is what it bought less what it sold at the given prices."""
    T, dt = truth.n, truth.dt_h
    load = truth.base_loads[0].p_kw
    net = load + sum(bat.values(), np.zeros(T)) - sum(used.values(), np.zeros(T))
    imp, exp = np.maximum(net, 0.0), np.maximum(-net, 0.0)
    price_exp = np.minimum(truth.price_export_cny_per_kwh, truth.price_import_cny_per_kwh)
    cost = float(dt * (truth.price_import_cny_per_kwh @ imp - price_exp @ exp))
    return RunOutcome(
        currency=park.currency,
        load_kw=load.copy(),
        import_kw=imp,
        export_kw=exp,
        battery_p_kw=bat,
        plan_battery_p_kw=plan_bat,
        battery_soc_frac=soc,
        pv_kw={p.spec.name: p.p_available_kw.copy() for p in truth.pv},
        pv_used_kw=used,
        energy_cost=cost,
        status=status,
        solve_s=solve_s,
    )


def _slice(pv: dict[str, np.ndarray], k: int, n: int) -> dict[str, np.ndarray]:
    return {x: a[k : k + n] for x, a in pv.items()}


def check(outcome: DispatchOutcome) -> list[str]:
    """The optimiser's physics invariants on a plan (:func:`controllers.invariants.check`):
    energy balance, SOC trajectories, bounds, limits; empty when all hold."""
    return invariants.check(outcome.problem, outcome.result)
