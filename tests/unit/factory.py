"""Small hand-made dispatch problems for tests (pure: no files, no profiles)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import numpy as np

from controllers.problem import (
    BaseLoadInput,
    BatteryInput,
    CurtailableInput,
    DispatchProblem,
    EvChargerInput,
    EvSessionInput,
    PvInput,
    ShiftableInput,
    ShiftableWindow,
)
from vpp.park.model import (
    Battery,
    CurtailableLoad,
    EvCharger,
    Horizon,
    Profile,
    PvArray,
    ShiftableLoad,
)

T0 = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)


def horizon(n: int, step_h: float = 1.0) -> Horizon:
    return Horizon(T0, timedelta(hours=step_h), n)


def battery(
    name: str = "bat",
    e_kwh: float = 100.0,
    p_kw: float = 50.0,
    eta: float = 0.9,
    soc_min: float = 0.0,
    soc_max: float = 1.0,
    deg: float = 0.0,
    bus: str = "b1",
) -> Battery:
    return Battery(name, bus, e_kwh, p_kw, p_kw, eta, eta, soc_min, soc_max, 0.5, deg, None)


def problem(
    n: int = 4,
    step_h: float = 1.0,
    price: list[float] | np.ndarray | None = None,
    base_kw: list[float] | np.ndarray | None = None,
    batteries: list[tuple[Battery, float]] = (),
    pv: list[tuple[PvArray, np.ndarray]] = (),
    evs: list[tuple[EvCharger, list[EvSessionInput]]] = (),
    curtailables: list[tuple[CurtailableLoad, np.ndarray]] = (),
    shiftables: list[tuple[ShiftableLoad, list[ShiftableWindow]]] = (),
    import_max_kw: float = 1e6,
    export_max_kw: float = 1e6,
    export_price: float = 0.0,
    demand_charge: float = 0.0,
    month_peak: float = 0.0,
    dr_max: np.ndarray | None = None,
    terminal: float = 0.0,
    buses: tuple[str, ...] = ("b1",),
) -> DispatchProblem:
    price_arr = np.asarray(price if price is not None else [0.2] * (n // 2) + [1.0] * (n - n // 2))
    base = np.asarray(base_kw if base_kw is not None else [100.0] * n, dtype=float)
    return DispatchProblem(
        horizon=horizon(n, step_h),
        buses=buses,
        price_import_cny_per_kwh=price_arr.astype(float),
        price_export_cny_per_kwh=np.full(n, export_price),
        import_max_kw=np.full(n, import_max_kw),
        export_max_kw=np.full(n, export_max_kw),
        pv=tuple(PvInput(s, np.asarray(a, float)) for s, a in pv),
        batteries=tuple(BatteryInput(b, e0, terminal) for b, e0 in batteries),
        ev_chargers=tuple(EvChargerInput(c, tuple(ss)) for c, ss in evs),
        shiftables=tuple(ShiftableInput(s, tuple(w)) for s, w in shiftables),
        curtailables=tuple(CurtailableInput(c, np.asarray(b, float)) for c, b in curtailables),
        base_loads=(BaseLoadInput("base", buses[0], base),),
        demand_charge_cny_per_kw=demand_charge,
        month_peak_import_kw=month_peak,
        dr_import_max_kw=dr_max,
    )


def pv_array(name: str = "pv", kw: float = 100.0, curtailable: bool = True) -> PvArray:
    return PvArray(name, "b1", kw, kw, curtailable=curtailable)


def charger(
    name: str = "ev1", p_max: float = 10.0, v2g: bool = False, p_min: float = 0.0
) -> EvCharger:
    return EvCharger(name, "b1", p_max, p_min, v2g, 1.0)


def session(sid: str, a: int, d: int, e: float, p_max: float = 10.0, **kw) -> EvSessionInput:
    return EvSessionInput(sid, a, d, e, p_max, **kw)


def curtailable(name: str = "hvac", frac: float = 0.5, cost: float = 0.5) -> CurtailableLoad:
    return CurtailableLoad(name, "b1", Profile("simbench:G1-C", 1.0), frac, cost)


def shiftable(
    name: str = "pump", e: float = 20.0, p_max: float = 10.0, p_min: float = 0.0, run: int = 1
) -> ShiftableLoad:
    return ShiftableLoad(name, "b1", e, time(0), time(0), p_max, p_min, run)
