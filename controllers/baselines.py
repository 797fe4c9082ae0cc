"""Baseline controllers behind the same interface as the optimiser.

- ``uncontrolled``: what the park does with no VPP: EVs charge at full power from arrival
  until full, shiftable loads start at the window's opening, batteries idle, no curtailment.
- ``rule``: the heuristic a good operator would program: batteries absorb PV surplus
  (self-consumption) and do time-of-use arbitrage (charge in the cheapest tier, discharge in
  the dearest, never exporting); EVs charge in the cheapest intervals of their stay;
  shiftable loads run in the cheapest contiguous block of their window.

Both return schedules that respect every device limit; their cost is measured with
:func:`controllers.costs.evaluate`, like the optimiser's.
"""

from __future__ import annotations

import time

import numpy as np

from controllers import costs, relaxations
from controllers.problem import (
    AssetSchedule,
    DispatchProblem,
    DispatchResult,
    EvChargerInput,
    ShiftableInput,
    add_pedf_schedules,
)


class _Heuristic:
    name = ""

    def dispatch(self, problem: DispatchProblem) -> DispatchResult:
        t0 = time.perf_counter()
        assets = self._static(problem)
        self._shiftables(problem, assets)
        self._evs(problem, assets)
        self._batteries(problem, assets)
        add_pedf_schedules(problem, assets)
        return _result(self.name, problem, assets, time.perf_counter() - t0)

    def _static(self, p: DispatchProblem) -> dict[str, AssetSchedule]:
        a: dict[str, AssetSchedule] = {}
        pv = [(x.spec, x.p_available_kw) for x in p.pv] + [
            (pe.spec.pv, pe.pv_available_kw) for pe in p.pedfs
        ]
        for spec, avail in pv:
            a[spec.name] = AssetSchedule(
                spec.name,
                "pv",
                spec.bus,
                -np.asarray(avail, float).copy(),
                detail={
                    "p_available_kw": np.asarray(avail, float).copy(),
                    "curtail_kw": np.zeros(p.n),
                },
            )
        cur = [(c.spec, c.baseline_kw) for c in p.curtailables]
        cur += [
            (pe.spec.flexible_load, pe.flex_baseline_kw) for pe in p.pedfs if pe.spec.flexible_load
        ]
        for spec, base in cur:
            a[spec.name] = AssetSchedule(
                spec.name,
                "curtailable",
                spec.bus,
                np.asarray(base, float).copy(),
                detail={"baseline_kw": np.asarray(base, float).copy(), "curtail_kw": np.zeros(p.n)},
            )
        for b in p.base_loads:
            a[b.name] = AssetSchedule(b.name, "base_load", b.bus, np.asarray(b.p_kw, float).copy())
        return a

    def _ev_order(self, p: DispatchProblem, a: int, d: int) -> np.ndarray:
        return np.arange(a, d)

    def _block_start(self, p: DispatchProblem, a: int, b: int, steps: int) -> int:
        return a

    def _evs(self, p: DispatchProblem, assets: dict[str, AssetSchedule]) -> None:
        for ch in p.ev_chargers:
            assets[ch.spec.name] = self._ev(p, ch)

    def _ev(self, p: DispatchProblem, ch: EvChargerInput) -> AssetSchedule:
        power = np.zeros(p.n)
        eta, dt = ch.spec.eta, p.dt_h
        for s in ch.sessions:
            a, d = max(s.arrival_k, 0), min(s.departure_k, p.n)
            left = s.e_needed_kwh
            if s.departs_after_horizon and self.name == "uncontrolled":
                left = max(left, s.p_max_kw * eta * dt * (d - a))  # keeps charging until full
            for k in self._ev_order(p, a, d):
                if left <= 1e-9:
                    break
                pk = min(s.p_max_kw, left / (eta * dt))
                power[k] = pk
                left -= pk * eta * dt
        return AssetSchedule(
            ch.spec.name, "ev_charger", ch.spec.bus, power, detail={"p_to_car_kw": power * eta}
        )

    def _shiftables(self, p: DispatchProblem, assets: dict[str, AssetSchedule]) -> None:
        for sh in p.shiftables:
            assets[sh.spec.name] = self._shiftable(p, sh)

    def _shiftable(self, p: DispatchProblem, sh: ShiftableInput) -> AssetSchedule:
        power = np.zeros(p.n)
        spec, dt = sh.spec, p.dt_h
        for w in sh.windows:
            a, b = max(w.start_k, 0), min(w.end_k, p.n)
            if b <= a or w.e_kwh <= 0:
                continue
            steps = int(np.ceil(w.e_kwh / (spec.p_max_kw * dt) - 1e-9))
            steps = min(max(steps, spec.min_run_steps), b - a)
            level = min(spec.p_max_kw, max(spec.p_min_kw, w.e_kwh / (steps * dt)))
            start = self._block_start(p, a, b, steps)
            left = w.e_kwh
            for k in range(start, start + steps):
                pk = min(
                    level, max(left / dt, spec.p_min_kw if left > 1e-9 else 0.0), spec.p_max_kw
                )
                power[k] = pk
                left -= pk * dt
        return AssetSchedule(spec.name, "shiftable", spec.bus, power)

    def _batteries(self, p: DispatchProblem, assets: dict[str, AssetSchedule]) -> None:
        for b in p.batteries:
            assets[b.spec.name] = _idle(b.spec, b.e_init_kwh, p.n)
        for pe in p.pedfs:
            assets[pe.spec.battery.name] = _idle(pe.spec.battery, pe.e_init_kwh, p.n)


def _idle(spec, e0: float, n: int) -> AssetSchedule:
    return AssetSchedule(
        spec.name,
        "battery",
        spec.bus,
        np.zeros(n),
        np.full(n + 1, float(e0)),
        {"p_charge_kw": np.zeros(n), "p_discharge_kw": np.zeros(n)},
    )


class UncontrolledController(_Heuristic):
    name = "uncontrolled"


class RuleController(_Heuristic):
    name = "rule"

    def _ev_order(self, p: DispatchProblem, a: int, d: int) -> np.ndarray:
        steps = np.arange(a, d)
        return steps[np.argsort(p.price_import_cny_per_kwh[a:d], kind="stable")]

    def _block_start(self, p: DispatchProblem, a: int, b: int, steps: int) -> int:
        price = p.price_import_cny_per_kwh
        costs_ = [price[s : s + steps].sum() for s in range(a, b - steps + 1)]
        return a + int(np.argmin(costs_))

    def _batteries(self, p: DispatchProblem, assets: dict[str, AssetSchedule]) -> None:
        price = p.price_import_cny_per_kwh
        cheap = price <= price.min() + 1e-9
        dear = price >= price.max() - 1e-9
        site_net = sum(s.p_kw for s in assets.values() if s.kind != "pedf")
        site_net = site_net if isinstance(site_net, np.ndarray) else np.zeros(p.n)
        for b in p.batteries:
            sched = _rule_battery(b.spec, b.e_init_kwh, site_net, cheap, dear, p.dt_h)
            site_net = site_net + sched.p_kw
            assets[b.spec.name] = sched
        for pe in p.pedfs:
            own = pe.base_kw + assets[pe.spec.pv.name].p_kw
            if pe.spec.flexible_load:
                own = own + assets[pe.spec.flexible_load.name].p_kw
            sched = _rule_battery(pe.spec.battery, pe.e_init_kwh, own, cheap, dear, p.dt_h)
            lim = pe.spec.converter_kw
            sched = _within_converter(sched, own, lim, pe.spec.battery, pe.e_init_kwh, p.dt_h)
            assets[pe.spec.battery.name] = sched


def _rule_battery(spec, e0, net, cheap, dear, dt) -> AssetSchedule:
    """Self-consumption first (absorb surplus, cover load), then TOU arbitrage."""
    n = len(net)
    pc, pd, e = np.zeros(n), np.zeros(n), np.zeros(n + 1)
    e[0] = e0
    for k in range(n):
        room = max(spec.e_max_kwh - e[k], 0.0) / (spec.eta_charge * dt)
        avail = max(e[k] - spec.e_min_kwh, 0.0) * spec.eta_discharge / dt
        if net[k] < 0 or cheap[k]:
            want = spec.p_charge_max_kw if cheap[k] else -net[k]
            pc[k] = min(want, spec.p_charge_max_kw, room)
        elif dear[k] and net[k] > 0:
            pd[k] = min(net[k], spec.p_discharge_max_kw, avail)
        e[k + 1] = e[k] + (spec.eta_charge * pc[k] - pd[k] / spec.eta_discharge) * dt
    return AssetSchedule(
        spec.name, "battery", spec.bus, pc - pd, e, {"p_charge_kw": pc, "p_discharge_kw": pd}
    )


def _within_converter(sched, own, lim, spec, e0, dt) -> AssetSchedule:
    """Trim a PEDF battery's power so the building's exchange stays within its converter."""
    p = np.clip(own + sched.p_kw, -lim, lim) - own
    p = np.clip(p, -spec.p_discharge_max_kw, spec.p_charge_max_kw)
    p = np.where(np.sign(p) == np.sign(sched.p_kw), p, 0.0)
    p = np.where(np.abs(p) <= np.abs(sched.p_kw), p, sched.p_kw)
    pc, pd = np.maximum(p, 0.0), np.maximum(-p, 0.0)
    e = e0 + np.concatenate(
        [[0.0], np.cumsum((spec.eta_charge * pc - pd / spec.eta_discharge) * dt)]
    )
    return AssetSchedule(
        spec.name, "battery", spec.bus, pc - pd, e, {"p_charge_kw": pc, "p_discharge_kw": pd}
    )


def _result(
    name: str, p: DispatchProblem, assets: dict[str, AssetSchedule], secs: float
) -> DispatchResult:
    bus = {b: np.zeros(p.n) for b in p.buses}
    for s in assets.values():
        if s.kind != "pedf":
            bus[s.bus] = bus[s.bus] + s.p_kw
    net = sum(bus.values()) if bus else np.zeros(p.n)
    r = DispatchResult(
        controller=name,
        status="heuristic",
        solver="none",
        horizon=p.horizon,
        p_net_kw=net,
        assets=assets,
        bus_p_kw=bus,
        objective_cny=0.0,
        terms_cny={},
        timings_s={"solve_s": secs},
    )
    r.terms_cny = costs.evaluate(p, r)
    r.relaxed = costs.violations(p, r) + relaxations.unavoidable(p)
    r.objective_cny = costs.total(r.terms_cny)
    return r


CONTROLLERS = {"uncontrolled": UncontrolledController, "rule": RuleController}
