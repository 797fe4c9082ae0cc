"""Seeded synthetic parks for the dispatch benchmark, built directly as DispatchProblems.

    from bench.parks import make_problem, perturb
    p = make_problem("M", seed=0)      # 10 batteries, 100 EV sessions, 20 flexible loads
    q = perturb(p, seed=1)             # same structure, new prices, forecasts, SOC, needs

Sizes are (batteries, EV sessions, flexible loads): S (2, 10, 5), M (10, 100, 20),
L (50, 500, 100), XL (200, 2000, 400), on a day of 96 steps of 15 minutes from 00:00. Shapes
follow a Zhejiang-style industrial park: a TOU price with valley, flat and peak periods, a PV
bell curve with cloud noise, commercial load shapes, workplace EV sessions arriving in the
morning and in the evening with energies they can receive within their stay, flexible loads
split between curtailable (HVAC, cold storage) and shiftable (batch processes, without a
minimum power or run so the problem stays an LP), batteries with efficiencies, a connection
import limit, a demand charge on the rise of the month's peak and a DR cap window.

No I/O: everything is drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

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

SIZES: dict[str, tuple[int, int, int]] = {
    "S": (2, 10, 5),
    "M": (10, 100, 20),
    "L": (50, 500, 100),
    "XL": (200, 2000, 400),
}
N_STEPS = 96
DT_H = 0.25
START = datetime(2026, 7, 15, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CHARGER_KW = np.array([7.0, 11.0, 22.0, 60.0, 120.0])
CHARGER_P = np.array([0.3, 0.15, 0.3, 0.15, 0.1])
ETA_BY_KW = {7.0: 0.93, 11.0: 0.93, 22.0: 0.94, 60.0: 0.95, 120.0: 0.95}


def hours() -> np.ndarray:
    """Start hour of each step (0.0, 0.25, ... 23.75)."""
    return np.arange(N_STEPS) * DT_H


def tou_price_cny_per_kwh(level: float = 1.0) -> np.ndarray:
    """Valley 0-8 h and 11-13 h, peak 9-11 h and 15-17 h (summer sharp peak 19-21 h), flat
    otherwise."""
    h = hours()
    price = np.full(N_STEPS, 0.68)
    price[(h < 8) | ((h >= 11) & (h < 13))] = 0.30
    price[((h >= 9) & (h < 11)) | ((h >= 15) & (h < 17))] = 1.08
    price[(h >= 19) & (h < 21)] = 1.30
    return price * level


def pv_shape(rng: np.random.Generator, cloudiness: float) -> np.ndarray:
    """Per-unit AC output: a bell between 5:30 and 19:00 times a random cloud factor."""
    h = hours() + DT_H / 2
    bell = np.clip(np.sin(np.pi * (h - 5.5) / 13.5), 0.0, None) ** 1.3
    clouds = 1.0 - cloudiness * rng.beta(2.0, 3.0, N_STEPS)
    clouds = np.convolve(clouds, np.ones(3) / 3, mode="same")
    return np.clip(bell * clouds, 0.0, 1.0)


def commercial_shape(rng: np.random.Generator, night: float = 0.35) -> np.ndarray:
    """Per-unit office/factory load: night level, morning ramp, lunch dip, evening decline."""
    h = hours()
    up = 1.0 / (1.0 + np.exp(-(h - 8.0) * 2.5))
    down = 1.0 / (1.0 + np.exp((h - 18.5) * 1.8))
    shape = night + (1.0 - night) * up * down
    shape -= 0.08 * np.exp(-(((h - 12.25) / 0.6) ** 2))
    return np.clip(shape * (1.0 + 0.04 * rng.standard_normal(N_STEPS)), 0.05, None)


def _step(hour: float) -> int:
    return round(hour / DT_H)


def _sessions(rng: np.random.Generator, charger: EvCharger, i: int, count: int):
    """Up to two sessions on one charger: a workplace car in the day, one in the evening."""
    out = []
    a = _step(np.clip(rng.normal(8.5, 0.75), 6.0, 11.0))
    d = a + _step(np.clip(rng.normal(8.0, 1.5), 3.0, 10.0))
    d = min(d, N_STEPS - 10)
    out.append((a, d))
    if count > 1:
        a2 = max(d + 2, _step(np.clip(rng.normal(18.5, 1.0), 16.5, 21.0)))
        d2 = min(N_STEPS, a2 + _step(np.clip(rng.normal(3.5, 1.0), 1.5, 6.0)))
        if d2 - a2 >= 4:
            out.append((a2, d2))
    sessions = []
    for k, (a, d) in enumerate(out):
        car_kw = float(rng.choice([7.0, 11.0, 22.0, 60.0, 120.0, 250.0]))
        p = min(charger.p_max_kw, car_kw)
        e_max = 0.8 * p * charger.eta * (d - a) * DT_H
        e = float(np.clip(rng.normal(22.0, 8.0), 3.0, 80.0))
        sessions.append(EvSessionInput(f"S{i:04d}-{k}", a, d, round(min(e, e_max), 3), p_max_kw=p))
    return tuple(sessions)


def make_problem(size: str, seed: int = 0) -> DispatchProblem:
    """A feasible synthetic park of ``size`` (a key of :data:`SIZES`), seeded."""
    n_bat, n_ev, n_flex = SIZES[size]
    rng = np.random.default_rng(seed)
    n_bus = max(2, n_bat // 6)
    buses = tuple(f"B{b:02d}" for b in range(n_bus))
    bus_of = lambda i: buses[i % n_bus]  # noqa: E731

    batteries = []
    for i in range(n_bat):
        e = float(rng.choice([200.0, 500.0, 1000.0, 2000.0]))
        eta = float(rng.uniform(0.93, 0.97))
        spec = Battery(
            f"bat{i:03d}", bus_of(i), e, e / 2, e / 2, eta, eta, 0.1, 0.95, 0.5,
            round(float(rng.uniform(0.02, 0.08)), 3),
        )  # fmt: skip
        batteries.append(BatteryInput(spec, e * float(rng.uniform(0.2, 0.8)), 0.5))
    pv = []
    for i in range(n_bat):
        kwp = float(rng.choice([200.0, 500.0, 1000.0]))
        spec = PvArray(f"pv{i:03d}", bus_of(i + 1), kwp, kwp * 0.9, curtailable=bool(i % 4))
        pv.append(PvInput(spec, kwp * 0.8 * pv_shape(rng, 0.6)))

    n_ch = (n_ev + 1) // 2
    chargers = []
    for i in range(n_ch):
        kw = float(rng.choice(CHARGER_KW, p=CHARGER_P))
        spec = EvCharger(f"ev{i:04d}", bus_of(i), kw, eta=ETA_BY_KW[kw])
        two = 2 if i < n_ev - n_ch else 1
        chargers.append(EvChargerInput(spec, _sessions(rng, spec, i, two)))

    n_cur = n_flex - n_flex // 2
    curtailables = []
    for i in range(n_cur):
        peak = float(rng.uniform(100.0, 400.0))
        spec = CurtailableLoad(
            f"hvac{i:03d}", bus_of(i), Profile("synthetic:hvac", peak),
            round(float(rng.uniform(0.15, 0.4)), 2), round(float(rng.uniform(0.8, 2.5)), 2),
        )  # fmt: skip
        curtailables.append(CurtailableInput(spec, peak * commercial_shape(rng, night=0.3)))
    shiftables = []
    for i in range(n_flex // 2):
        p_max = float(rng.choice([50.0, 100.0, 200.0]))
        night = ShiftableWindow(0, _step(7.0), round(float(rng.uniform(0.2, 0.6)) * p_max * 7, 1))
        windows = [night]
        if i % 2:
            a = _step(float(rng.uniform(10.0, 13.0)))
            windows.append(ShiftableWindow(a, a + 16, round(0.4 * p_max * 4, 1)))
        spec = ShiftableLoad(f"batch{i:03d}", bus_of(i + 2), night.e_kwh, time(0), time(7), p_max)
        shiftables.append(ShiftableInput(spec, tuple(windows)))

    base = []
    per_bus_kw = 450.0 * max(n_bat, 2) / n_bus
    for b in buses:
        base.append(BaseLoadInput(f"base-{b}", b, per_bus_kw * commercial_shape(rng)))

    problem = DispatchProblem(
        horizon=Horizon(START, timedelta(minutes=15), N_STEPS),
        buses=buses,
        price_import_cny_per_kwh=tou_price_cny_per_kwh(),
        price_export_cny_per_kwh=np.full(N_STEPS, 0.39),
        import_max_kw=np.full(N_STEPS, 1e9),
        export_max_kw=np.full(N_STEPS, 1e9),
        pv=tuple(pv),
        batteries=tuple(batteries),
        ev_chargers=tuple(chargers),
        shiftables=tuple(shiftables),
        curtailables=tuple(curtailables),
        base_loads=tuple(base),
        demand_charge_cny_per_kw=40.0,
        time_limit_s=600.0,  # the bench measures; a loaded machine must not time XL out
    )
    return _limits(problem)


def uncontrolled_net_kw(p: DispatchProblem) -> np.ndarray:
    """Park net load if nothing is controlled: loads at baseline, EVs at full power from
    arrival until done, shiftables evenly over their windows, all PV used, batteries idle."""
    net = sum(b.p_kw for b in p.base_loads) + sum(c.baseline_kw for c in p.curtailables)
    net = net - sum(x.p_available_kw for x in p.pv)
    for ch in p.ev_chargers:
        for s in ch.sessions:
            steps = int(np.ceil(s.e_needed_kwh / (s.p_max_kw * ch.spec.eta * p.dt_h) - 1e-9))
            net[s.arrival_k : s.arrival_k + steps] += s.p_max_kw
    for sh in p.shiftables:
        for w in sh.windows:
            net[w.start_k : w.end_k] += w.e_kwh / ((w.end_k - w.start_k) * p.dt_h)
    return np.asarray(net, dtype=float)


def _limits(p: DispatchProblem) -> DispatchProblem:
    """Connection limit, month peak and a DR cap that bind but leave the park feasible."""
    net = uncontrolled_net_kw(p)
    peak = float(net.max())
    bat_kw = sum(b.spec.p_discharge_max_kw for b in p.batteries)
    cut_kw = sum(c.baseline_kw * c.spec.curtail_max_frac for c in p.curtailables)
    # The batteries (half their power, they may run low) and curtailment cover the cuts.
    floor = float(np.max(net - 0.5 * bat_kw - cut_kw))
    imp_max = max(0.92 * peak, floor + 0.05 * peak)
    static = sum(b.p_kw for b in p.base_loads) - sum(x.p_available_kw for x in p.pv)
    h = hours()
    dr = np.full(p.n, np.inf)
    window = (h >= 14.0) & (h < 15.0)
    shaved = float((net - 0.5 * bat_kw - cut_kw)[window].max())
    dr[window] = max(0.85 * float(net[window].max()), shaved + 0.05 * peak)
    return dataclasses.replace(
        p,
        import_max_kw=np.full(p.n, round(imp_max, 1)),
        export_max_kw=np.full(p.n, round(0.3 * peak, 1)),
        month_peak_import_kw=round(0.9 * float(static.max()), 1),
        dr_import_max_kw=dr,
    )


def perturb(p: DispatchProblem, seed: int) -> DispatchProblem:
    """The same park structure with new values: prices, PV and load forecasts, initial SOC,
    session energies (within what each stay allows) and a few arrivals moved by a step."""
    rng = np.random.default_rng(10_000 + seed)
    n = p.n
    noise = lambda s: np.clip(1.0 + s * rng.standard_normal(n), 0.0, None)  # noqa: E731
    price = p.price_import_cny_per_kwh * float(rng.uniform(0.9, 1.1)) * noise(0.02)
    pv = tuple(dataclasses.replace(x, p_available_kw=x.p_available_kw * noise(0.15)) for x in p.pv)
    base = tuple(dataclasses.replace(b, p_kw=b.p_kw * noise(0.04)) for b in p.base_loads)
    cur = tuple(
        dataclasses.replace(c, baseline_kw=c.baseline_kw * noise(0.05)) for c in p.curtailables
    )
    bats = tuple(
        dataclasses.replace(b, e_init_kwh=b.spec.e_kwh * float(rng.uniform(0.2, 0.8)))
        for b in p.batteries
    )
    chargers = []
    for ch in p.ev_chargers:
        sessions = []
        for s in ch.sessions:
            a, d = s.arrival_k, s.departure_k
            if rng.random() < 0.2 and d - a > 4:
                a += int(rng.integers(0, 2))
            e_max = 0.8 * s.p_max_kw * ch.spec.eta * (d - a) * p.dt_h
            e = min(s.e_needed_kwh * float(rng.uniform(0.8, 1.15)), e_max)
            sessions.append(dataclasses.replace(s, arrival_k=a, e_needed_kwh=round(e, 3)))
        chargers.append(dataclasses.replace(ch, sessions=tuple(sessions)))
    q = dataclasses.replace(
        p,
        price_import_cny_per_kwh=price,
        pv=pv,
        base_loads=base,
        curtailables=cur,
        batteries=bats,
        ev_chargers=tuple(chargers),
    )
    return _limits(q)
