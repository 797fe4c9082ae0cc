"""Device blocks for EV charging and shiftable loads (see :mod:`controllers.blocks`).

Sessions and windows are Parameters, not structure. Every charger has ``slots`` session
slots; each slot has its own power variable whose *bounds* are Parameters (the charger's
power while that session is plugged in, zero elsewhere). Energy constraints then have constant
coefficients, and no Parameter multiplies a Variable: the problem stays DPP and cvxpy compiles
it quickly (a mask Parameter times a Variable made the demo park's first compile 13 s instead
of under 1 s). A slot with an intermediate SOC target is split in two parts, before and after
the target time. Variables fixed at zero cost nothing: HiGHS's presolve removes them.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from controllers.blocks import Block
from controllers.problem import AssetSchedule, DispatchProblem


def ev_slots(problem: DispatchProblem) -> int:
    """Session slots per charger the structure needs (at least 1)."""
    return max([1] + [len(c.sessions) for c in problem.ev_chargers])


def ev_has_targets(problem: DispatchProblem) -> bool:
    return any(s.target_k is not None for c in problem.ev_chargers for s in c.sessions)


class EvBlock(Block):
    kind = "ev_charger"

    def __init__(self, problem: DispatchProblem, soft: bool, slots: int, targets: bool):
        super().__init__(soft)
        specs = [c.spec for c in problem.ev_chargers]
        self.rows = [(s.name, s.bus) for s in specs]
        self.slots, self.parts = slots, (2 if targets else 1)
        c_n, n, dt = len(specs), problem.n, problem.dt_h
        self.v2g_rows = [i for i, s in enumerate(specs) if s.v2g]
        v_n = len(self.v2g_rows)
        eta = np.array([s.eta for s in specs]).reshape(-1, 1)
        self.eta = eta
        # ub[k][part]: charger power while session k (part) is plugged in; 0 elsewhere.
        self.ub = [
            [cp.Parameter((c_n, n), nonneg=True) for _ in range(self.parts)] for _ in range(slots)
        ]
        self.ch = [[cp.Variable((c_n, n), bounds=[0, u]) for u in row] for row in self.ub]
        self.need_min = [cp.Parameter(c_n, nonneg=True) for _ in range(slots)]
        self.need_max = [cp.Parameter(c_n, nonneg=True) for _ in range(slots)]
        self.target = [cp.Parameter(c_n, nonneg=True) for _ in range(slots)] if targets else []
        self.slot_assets: list[list[str]] = [["-"] * c_n for _ in range(slots)]
        sel = np.zeros((c_n, v_n))
        sel[self.v2g_rows, range(v_n)] = 1.0
        eta_v = eta[self.v2g_rows]
        if v_n:
            self.ub_dis = [
                [cp.Parameter((v_n, n), nonneg=True) for _ in range(self.parts)]
                for _ in range(slots)
            ]
            self.dis = [[cp.Variable((v_n, n), bounds=[0, u]) for u in row] for row in self.ub_dis]
            self.dis_max = [cp.Parameter(v_n, nonneg=True) for _ in range(slots)]
        # Weight of each slot's shortfall: its session's priority (a Parameter: sessions
        # change every interval, the structure does not).
        self.weight = [cp.Parameter(c_n, nonneg=True) for _ in range(slots)]
        p_kw = 0
        for k in range(slots):
            pen = self.weight[k]
            into = [cp.multiply(eta * dt, self.ch[k][j]) for j in range(self.parts)]
            p_kw = p_kw + sum(self.ch[k])
            if v_n:
                into = [
                    x - sel @ cp.multiply(dt / eta_v, self.dis[k][j]) for j, x in enumerate(into)
                ]
                p_kw = p_kw - sel @ sum(self.dis[k])
            total = cp.sum(sum(into), axis=1)
            s = self.slack((c_n,), "ev_energy", self.slot_assets[k], "kWh", pen, per_step=False)
            self.constraints += [total + s >= self.need_min[k], total <= self.need_max[k]]
            if targets:
                st = self.slack(
                    (c_n,), "ev_target", self.slot_assets[k], "kWh", pen, per_step=False
                )
                self.constraints.append(cp.sum(into[0], axis=1) + st >= self.target[k])
            if v_n:
                self._v2g_state(k, sum(into)[self.v2g_rows, :], n)
        self.p_kw = p_kw
        self.p_var = p_kw

    def _v2g_state(self, k: int, flow: cp.Expression, n: int) -> None:
        """Energy put into a V2G car since arrival never falls below minus its dischargeable
        energy, nor rises above its need (the car is not used as a free battery)."""
        v_n = len(self.v2g_rows)
        e = cp.Variable((v_n, n + 1), name=f"v2g_e_kwh_{k}")
        need = self.need_max[k][self.v2g_rows]
        self.constraints += [
            e[:, 0] == 0,
            e[:, 1:] == e[:, :-1] + flow,
            e[:, 1:] >= -cp.reshape(self.dis_max[k], (v_n, 1), order="F") @ np.ones((1, n)),
            e[:, 1:] <= cp.reshape(need, (v_n, 1), order="F") @ np.ones((1, n)),
        ]

    def update(self, problem: DispatchProblem) -> None:
        c_n, n, k_n = len(problem.ev_chargers), problem.n, self.slots
        ub = np.zeros((k_n, self.parts, c_n, n))
        need_min, need_max = np.zeros((k_n, c_n)), np.zeros((k_n, c_n))
        target, dis = np.zeros((k_n, c_n)), np.zeros((k_n, c_n))
        weight = np.full((k_n, c_n), problem.penalties.ev_energy_cny_per_kwh)
        for k in range(k_n):
            self.slot_assets[k][:] = ["-"] * c_n
        for i, ch in enumerate(problem.ev_chargers):
            if len(ch.sessions) > k_n:
                raise ValueError(
                    f"charger {ch.spec.name}: {len(ch.sessions)} sessions > {k_n} slots"
                )
            for k, s in enumerate(ch.sessions):
                a, d = max(s.arrival_k, 0), min(s.departure_k, n)
                cut = d
                if self.parts == 2 and s.target_k is not None:
                    cut = min(max(s.target_k, a), d)
                    target[k, i] = s.target_e_kwh
                ub[k, 0, i, a:cut] = s.p_max_kw
                if self.parts == 2:
                    ub[k, 1, i, cut:d] = s.p_max_kw
                need_min[k, i] = s.e_needed_kwh
                # A session that goes on after the horizon may take at most what the charger
                # can deliver while it is here (a finite bound on the park's scale).
                most = s.p_max_kw * ch.spec.eta * problem.dt_h * (d - a)
                need_max[k, i] = (
                    max(most, s.e_needed_kwh) if s.departs_after_horizon else s.e_needed_kwh
                )
                dis[k, i] = s.e_dischargeable_kwh
                weight[k, i] = problem.penalties.give_way_cny_per_kwh("ev_energy", s.give_way)
                self.slot_assets[k][i] = s.session_id
        rows = self.v2g_rows
        for k in range(k_n):
            for j in range(self.parts):
                self.ub[k][j].value = ub[k, j]
                if rows:
                    self.ub_dis[k][j].value = ub[k, j][rows, :]
            self.need_min[k].value = need_min[k]
            self.need_max[k].value = need_max[k]
            self.weight[k].value = weight[k]
            if self.target:
                self.target[k].value = target[k]
            if rows:
                self.dis_max[k].value = dis[k, rows]

    def extract(self, out: dict[str, AssetSchedule]) -> None:
        p = np.asarray(self.p_kw.value)
        ch = sum(np.asarray(v.value) for row in self.ch for v in row)
        delivered = self.eta * ch
        if self.v2g_rows:
            dis = sum(np.asarray(v.value) for row in self.dis for v in row)
            delivered[self.v2g_rows] -= dis / self.eta[self.v2g_rows]
        for i, (name, bus) in enumerate(self.rows):
            out[name] = AssetSchedule(
                name, "ev_charger", bus, p[i].copy(), detail={"p_to_car_kw": delivered[i].copy()}
            )


class ShiftableBlock(Block):
    """Energy within each window occurrence; one variable per window slot, bounded by the
    window (a Parameter), so the energy rows have constant coefficients."""

    kind = "shiftable"

    def __init__(self, problem: DispatchProblem, soft: bool, windows: int, integer: bool):
        super().__init__(soft)
        specs = [s.spec for s in problem.shiftables]
        self.rows = [(s.name, s.bus) for s in specs]
        m, n, dt = len(specs), problem.n, problem.dt_h
        self.windows = windows
        self.ub = [cp.Parameter((m, n), nonneg=True) for _ in range(windows)]
        self.pw = [cp.Variable((m, n), bounds=[0, u]) for u in self.ub]
        self.energy = [cp.Parameter(m, nonneg=True) for _ in range(windows)]
        names = [r[0] for r in self.rows]
        pen = problem.penalties.shiftable_energy_cny_per_kwh
        # Each load's shortfall weighs by its priority (a spec's: part of the structure).
        weight = np.array(
            [problem.penalties.give_way_cny_per_kwh("shiftable_energy", s.give_way) for s in specs]
        )
        for w in range(windows):
            total = dt * cp.sum(self.pw[w], axis=1)
            s = self.slack((m,), "shiftable_energy", names, "kWh", weight, per_step=False)
            # More than the energy left only when a run already under way must go on (its
            # minimum run at minimum power) although the work is done: reported, never fatal.
            over = self.slack((m,), "shiftable_energy_excess", names, "kWh", pen, per_step=False)
            self.constraints += [total + s >= self.energy[w], total <= self.energy[w] + over]
        self.p = sum(self.pw)
        self.on_rows = [i for i, s in enumerate(specs) if s.p_min_kw > 0 or s.min_run_steps > 1]
        if self.on_rows:
            self._on_off(specs, n, integer)
        self.p_kw = self.p
        self.p_var = self.p

    def _on_off(self, specs: list, n: int, integer: bool) -> None:
        """On/off state for loads with a minimum power or a minimum run (MILP; the fallback
        solver gets the continuous relaxation)."""
        rows = self.on_rows
        r = len(rows)
        self.running0 = cp.Parameter(r, nonneg=True)
        self.carry = cp.Parameter((r, n), nonneg=True)
        # The relaxation's on/off states have Parameter bounds, [carry, 1] normally, so that a
        # 0/1 pattern can be fixed (``fixed_on``) and the rest re-solved as an LP.
        self.fixed_on: np.ndarray | None = None
        if integer:
            self.u = cp.Variable((r, n), boolean=True, name="shiftable_on")
        else:
            self.u_lo = cp.Parameter((r, n), nonneg=True)
            self.u_hi = cp.Parameter((r, n), nonneg=True)
            self.u = cp.Variable((r, n), bounds=[self.u_lo, self.u_hi], name="shiftable_on")
        self.start = cp.Variable((r, n), bounds=[0, 1], name="shiftable_start")
        p_min = np.array([specs[i].p_min_kw for i in rows]).reshape(-1, 1)
        p_max = np.array([specs[i].p_max_kw for i in rows]).reshape(-1, 1)
        p_on = self.p[rows, :]
        self.constraints += [
            p_on >= cp.multiply(p_min, self.u),
            p_on <= cp.multiply(p_max, self.u),
            self.u >= self.carry,
            self.start[:, 0] >= self.u[:, 0] - self.running0,
            self.start[:, 1:] >= self.u[:, 1:] - self.u[:, :-1],
        ]
        for j, i in enumerate(rows):
            mrun = specs[i].min_run_steps
            if mrun <= 1:
                continue
            # The strong minimum-up form (Rajan and Takriti): on at t if started within the
            # last ``mrun`` steps. Its LP relaxation is far tighter than one aggregated row
            # per start, so the relaxation is often already integral (MpcController).
            recent = np.zeros((n, n))
            for t in range(n):
                recent[t, max(0, t - mrun + 1) : t + 1] = 1.0
            self.constraints.append(self.u[j, :] >= recent @ self.start[j, :])

    def update(self, problem: DispatchProblem) -> None:
        m, n = len(problem.shiftables), problem.n
        ub = np.zeros((self.windows, m, n))
        energy = np.zeros((self.windows, m))
        for i, s in enumerate(problem.shiftables):
            if len(s.windows) > self.windows:
                raise ValueError(f"shiftable {s.spec.name}: too many windows for the structure")
            for w, win in enumerate(s.windows):
                a, b = max(win.start_k, 0), min(win.end_k, n)
                ub[w, i, a:b] = s.spec.p_max_kw
                energy[w, i] = win.e_kwh
        for w in range(self.windows):
            self.ub[w].value = ub[w]
            self.energy[w].value = energy[w]
        if self.on_rows:
            r = len(self.on_rows)
            running0 = np.zeros(r)
            carry = np.zeros((r, n))
            in_window = ub.sum(axis=0) > 0
            for j, i in enumerate(self.on_rows):
                s = problem.shiftables[i]
                if s.running_steps > 0:
                    running0[j] = 1.0
                    left = max(0, s.spec.min_run_steps - s.running_steps)
                    carry[j, :left] = in_window[i, :left].astype(float)
            self.running0.value = running0
            self.carry.value = carry
            if hasattr(self, "u_lo"):
                fixed = self.fixed_on
                self.u_lo.value = carry if fixed is None else fixed.astype(float)
                self.u_hi.value = np.ones((r, n)) if fixed is None else fixed.astype(float)

    def extract(self, out: dict[str, AssetSchedule]) -> None:
        p = np.asarray(self.p.value)
        for i, (name, bus) in enumerate(self.rows):
            out[name] = AssetSchedule(name, "shiftable", bus, p[i].copy())
