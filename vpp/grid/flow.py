"""Batched AC power flow on pandapower's internal admittance matrices, and its sensitivities.

Edge module (reads pandapower's internal case once). Newton-Raphson in polar coordinates, the
same equations as pandapower's ``newtonpf``, vectorised over the steps of a schedule: every
step is an independent power flow with its own injections; the matrices, bus types and the
slack voltage do not change between steps, so they are taken once. Dense linear algebra is
used, which suits park networks (tens to a few hundred buses).

Results follow pandapower's result formulas: ``i_ka = |S| / (sqrt(3) |V| vn)``, line loading
``i_ka / (max_i_ka df parallel)``, transformer loading (``trafo_loading="current"``)
``max(i_hv vn_hv, i_lv vn_lv) sqrt(3) / (sn_mva parallel df)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, PD, QD, VA, VM
from threadpoolctl import ThreadpoolController

MAX_DENSE_BUSES = 600


@dataclass
class FlowResult:
    """AC power flow over ``T`` steps. Arrays are ``(T, n_elements)`` in the net's table order."""

    vm_pu: np.ndarray  # (T, n_bus) every pandapower bus
    line_loading_percent: np.ndarray
    trafo_loading_percent: np.ndarray
    p_ext_kw: np.ndarray  # (T,) import at the connection (+) / export (-)
    q_ext_kvar: np.ndarray
    losses_kw: np.ndarray  # (T,) all branch and shunt losses
    p_load_kw: np.ndarray  # (T,) total active load applied (all elements, net of generation)
    converged: np.ndarray  # (T,) bool
    iterations: int = 0
    V: np.ndarray | None = None  # internal complex voltages (T, n_internal), for sensitivities


@dataclass(frozen=True)
class Sensitivity:
    """First-order change per +1 kW of load at each controlled bus (columns), one step.

    ``vm_pu`` (n_bus, n_ctrl), ``line_percent`` (n_line, n_ctrl), ``trafo_percent``
    (n_trafo, n_ctrl). Reactive power is held constant (controllable assets run at pf 1).
    """

    vm_pu: np.ndarray
    line_percent: np.ndarray
    trafo_percent: np.ndarray


class FastFlow:
    """The batched solver for one network; build with :meth:`try_build`."""

    @classmethod
    def try_build(
        cls, net: pp.pandapowerNet, load_idx: np.ndarray, tol_pu: float = 1e-10, max_iter: int = 20
    ) -> FastFlow | None:
        """The solver, or None when the network needs pandapower's full model."""
        if _unsupported(net):
            return None
        saved = net.load.loc[load_idx, ["p_mw", "q_mvar"]].copy()
        net.load.loc[load_idx, ["p_mw", "q_mvar"]] = 0.0
        try:
            pp.runpp(net, numba=False)
        finally:
            net.load.loc[load_idx, ["p_mw", "q_mvar"]] = saved.to_numpy()
        ppci = net._ppc["internal"]
        if len(ppci["pv"]) or len(ppci["ref"]) != 1 or len(ppci["bus"]) > MAX_DENSE_BUSES:
            return None
        if ppci["branch"].shape[0] != net._ppc["branch"].shape[0]:
            return None
        return cls(net, ppci, load_idx, tol_pu, max_iter)

    def __init__(self, net, ppci, load_idx, tol_pu: float, max_iter: int) -> None:
        self.tol = tol_pu
        self.max_iter = max_iter
        self.base_mva = float(ppci["baseMVA"])
        bus = ppci["bus"]
        n = bus.shape[0]
        self.Y = ppci["Ybus"].toarray()
        self.Yf = ppci["Yf"].toarray()
        self.Yt = ppci["Yt"].toarray()
        self.ref = int(ppci["ref"][0])
        self.pq = np.asarray(ppci["pq"], dtype=np.int64)
        self.V0 = bus[:, VM] * np.exp(1j * np.deg2rad(bus[:, VA]))
        # Injections of the elements that are not ours (their loads at the set-up flow).
        self.S_base = -(bus[:, PD] + 1j * bus[:, QD]) / self.base_mva
        lookup = net._pd2ppc_lookups["bus"]
        self.bus_rows = lookup[net.bus.index.to_numpy()]
        self.bus_ok = net.bus.in_service.to_numpy() & (self.bus_rows >= 0) & (self.bus_rows < n)
        self.bus_rows = np.where(self.bus_ok, self.bus_rows, 0)
        ctrl = lookup[net.load.bus.loc[load_idx].to_numpy()]
        self.C = np.zeros((len(load_idx), n))  # controlled bus -> internal bus incidence
        self.C[np.arange(len(load_idx)), ctrl] = 1.0
        self._branch_factors(net, ppci)

    def _branch_factors(self, net, ppci) -> None:
        br = ppci["branch"]
        fb = br[:, F_BUS].real.astype(np.int64)
        tb = br[:, T_BUS].real.astype(np.int64)
        base_kv = ppci["bus"][:, BASE_KV]
        # |I_pu| -> kA at each end
        self.kf = self.base_mva / (np.sqrt(3) * base_kv[fb])
        self.kt = self.base_mva / (np.sqrt(3) * base_kv[tb])
        lk = net._pd2ppc_lookups["branch"]
        self.line_rows = np.arange(*lk["line"]) if "line" in lk else np.zeros(0, dtype=np.int64)
        self.trafo_rows = np.arange(*lk["trafo"]) if "trafo" in lk else np.zeros(0, dtype=np.int64)
        ln = net.line
        i_max = (ln.max_i_ka * ln.df * ln.parallel).to_numpy()
        self.line_scale = 100.0 / i_max  # % per kA
        tr = net.trafo
        denom = (tr.sn_mva * tr.parallel * tr.df).to_numpy()
        self.trafo_hv = np.sqrt(3) * tr.vn_hv_kv.to_numpy() / denom * 100.0
        self.trafo_lv = np.sqrt(3) * tr.vn_lv_kv.to_numpy() / denom * 100.0

    # -- solving ------------------------------------------------------------------------------
    def injections(self, P_kw: np.ndarray, Q_kvar: np.ndarray) -> np.ndarray:
        S_ctrl = -(P_kw + 1j * Q_kvar) / (1e3 * self.base_mva)
        return self.S_base[None, :] + S_ctrl @ self.C

    def solve(self, P_kw: np.ndarray, Q_kvar: np.ndarray) -> FlowResult:
        Sbus = self.injections(np.atleast_2d(P_kw), np.atleast_2d(Q_kvar))
        # Many small LAPACK solves: BLAS threads only contend (on 2 busy cores a 96-step
        # SimBench flow took 1-30 s with threads, 0.4 s without).
        with _blas().limit(limits=1, user_api="blas"):
            V, converged, it = self._newton(Sbus)
        return self._results(V, Sbus, converged, it)

    def _newton(self, Sbus: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Chord iterations on the flat start's Jacobian, then full Newton-Raphson from where
        they stopped for the steps they did not bring to ``tol`` (or all of them, when the
        chord is not contracting fast enough). Both stop on the same mismatch test, so the
        result is the same power flow solution to the same tolerance; the chord costs one
        product with a stored inverse per iteration instead of a Jacobian and a
        factorisation per step (on the demo park 2 ms instead of 25 ms for 96 steps)."""
        V, converged, it = self._chord(Sbus)
        if converged.all():
            return V, converged, it
        todo = ~converged
        V2, conv2, it2 = self._full_newton(Sbus[todo], V[todo])
        V[todo], converged[todo] = V2, conv2
        return V, converged, it + it2

    CHORD_MAX_ITER = 30
    CHORD_MIN_RATE = 0.5  # the error must at least halve each iteration

    def _chord(self, Sbus: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        T = Sbus.shape[0]
        pq = self.pq
        npq = len(pq)
        V = np.tile(self.V0, (T, 1))
        Vm, Va = np.abs(V), np.angle(V)
        converged = np.zeros(T, dtype=bool)
        j_inv_t = self._flat_jacobian_inv_t()
        last = np.full(T, np.inf)
        it = 0
        for it in range(self.CHORD_MAX_ITER + 1):
            mis = V * np.conj(V @ self.Y.T) - Sbus
            F = np.concatenate([mis.real[:, pq], mis.imag[:, pq]], axis=1)
            err = np.abs(F).max(axis=1) if F.size else np.zeros(T)
            converged = err < self.tol
            if converged.all() or it == self.CHORD_MAX_ITER:
                break
            if np.any(~converged & (err > self.CHORD_MIN_RATE * last)):
                break  # not contracting: Newton-Raphson takes over
            last = err
            dx = -(F @ j_inv_t)
            dx[converged] = 0.0
            Va[:, pq] += dx[:, :npq]
            Vm[:, pq] += dx[:, npq:]
            V = Vm * np.exp(1j * Va)
        return V, converged, it

    def _flat_jacobian_inv_t(self) -> np.ndarray:
        if getattr(self, "_j0_inv_t", None) is None:
            self._j0_inv_t = np.linalg.inv(self._jacobian(self.V0[None])[0]).T
        return self._j0_inv_t

    def _full_newton(self, Sbus: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        T = Sbus.shape[0]
        pq = self.pq
        npq = len(pq)
        V = V.copy()
        Vm, Va = np.abs(V), np.angle(V)
        converged = np.zeros(T, dtype=bool)
        it = 0
        for it in range(self.max_iter + 1):
            mis = V * np.conj(V @ self.Y.T) - Sbus
            F = np.concatenate([mis.real[:, pq], mis.imag[:, pq]], axis=1)
            err = np.abs(F).max(axis=1) if F.size else np.zeros(T)
            converged = err < self.tol
            if converged.all() or it == self.max_iter:
                break
            J = self._jacobian(V)
            dx = np.linalg.solve(J, -F[..., None])[..., 0]
            dx[converged] = 0.0
            Va[:, pq] += dx[:, :npq]
            Vm[:, pq] += dx[:, npq:]
            V = Vm * np.exp(1j * Va)
        return V, converged, it

    def _jacobian(self, V: np.ndarray) -> np.ndarray:
        """Batched Jacobian ``d[P_pq; Q_pq] / d[Va_pq; Vm_pq]`` (T, 2 npq, 2 npq)."""
        pq = self.pq
        Ypq = self.Y[np.ix_(pq, pq)]
        Vp = V[:, pq]
        Ibus = V @ self.Y.T
        Ip = Ibus[:, pq]
        Vn = Vp / np.abs(Vp)
        diag = np.eye(len(pq))[None]
        dS_dVa = 1j * Vp[:, :, None] * np.conj(Ip[:, :, None] * diag - Ypq[None] * Vp[:, None, :])
        dS_dVm = (
            Vp[:, :, None] * np.conj(Ypq[None] * Vn[:, None, :])
            + diag * (np.conj(Ip) * Vn)[:, :, None]
        )
        top = np.concatenate([dS_dVa.real, dS_dVm.real], axis=2)
        bottom = np.concatenate([dS_dVa.imag, dS_dVm.imag], axis=2)
        return np.concatenate([top, bottom], axis=1)

    def _results(self, V, Sbus, converged, it) -> FlowResult:
        Scalc = V * np.conj(V @ self.Y.T)
        k = self.base_mva * 1e3
        s_ext = (Scalc[:, self.ref] - Sbus[:, self.ref]) * k
        line, trafo = self._loadings(V)
        vm = np.abs(V)[:, self.bus_rows]
        vm[:, ~self.bus_ok] = np.nan
        nan = ~converged
        vm[nan] = np.nan
        line[nan] = np.nan
        trafo[nan] = np.nan
        return FlowResult(
            vm_pu=vm,
            line_loading_percent=line,
            trafo_loading_percent=trafo,
            p_ext_kw=np.where(nan, np.nan, s_ext.real),
            q_ext_kvar=np.where(nan, np.nan, s_ext.imag),
            losses_kw=np.where(nan, np.nan, Scalc.sum(axis=1).real * k),
            p_load_kw=-Sbus.sum(axis=1).real * k,
            converged=converged,
            iterations=it,
            V=V,
        )

    def _end_currents(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        If = V @ self.Yf.T
        It = V @ self.Yt.T
        return If, It, np.abs(If) * self.kf, np.abs(It) * self.kt

    def _loadings(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, _, i_f, i_t = self._end_currents(V)
        lr, tr = self.line_rows, self.trafo_rows
        line = np.maximum(i_f[:, lr], i_t[:, lr]) * self.line_scale
        trafo = np.maximum(i_f[:, tr] * self.trafo_hv, i_t[:, tr] * self.trafo_lv)
        return line, trafo

    # -- sensitivities ------------------------------------------------------------------------
    def sensitivity(self, V: np.ndarray) -> Sensitivity:
        """Sensitivities of one step's voltages and loadings to +1 kW of load at each bus.

        Linearised at the converged voltages ``V`` (n_internal,), from the power flow's own
        Jacobian: ``d[Va; Vm] = J^-1 dS`` with ``dP = -1 kW`` at the bus, ``dQ = 0``.
        """
        pq = self.pq
        npq = len(pq)
        J = self._jacobian(V[None])[0]
        ctrl = self.C.argmax(axis=1)
        pos = np.full(len(V), -1)
        pos[pq] = np.arange(npq)
        rhs = np.zeros((2 * npq, len(ctrl)))
        for j, b in enumerate(ctrl):
            if pos[b] >= 0:  # load at the slack bus changes nothing inside the network
                rhs[pos[b], j] = -1.0 / (1e3 * self.base_mva)
        dx = np.linalg.solve(J, rhs)
        dVa = np.zeros((len(V), len(ctrl)))
        dVm = np.zeros_like(dVa)
        dVa[pq] = dx[:npq]
        dVm[pq] = dx[npq:]
        Vm = np.abs(V)
        dV = V[:, None] * (1j * dVa + dVm / Vm[:, None])
        If, It, i_f, i_t = self._end_currents(V[None])
        If, It, i_f, i_t = If[0], It[0], i_f[0], i_t[0]
        d_if = (
            np.real(np.conj(If)[:, None] * (self.Yf @ dV))
            / np.maximum(np.abs(If), 1e-12)[:, None]
            * self.kf[:, None]
        )
        d_it = (
            np.real(np.conj(It)[:, None] * (self.Yt @ dV))
            / np.maximum(np.abs(It), 1e-12)[:, None]
            * self.kt[:, None]
        )
        lr, tr = self.line_rows, self.trafo_rows
        use_f = (i_f[lr] >= i_t[lr])[:, None]
        line = np.where(use_f, d_if[lr], d_it[lr]) * self.line_scale[:, None]
        hv = i_f[tr] * self.trafo_hv >= i_t[tr] * self.trafo_lv
        trafo = np.where(
            hv[:, None],
            d_if[tr] * self.trafo_hv[:, None],
            d_it[tr] * self.trafo_lv[:, None],
        )
        vm = dVm[self.bus_rows]
        vm[~self.bus_ok] = 0.0
        return Sensitivity(vm_pu=vm, line_percent=line, trafo_percent=trafo)


def blas_single_thread():
    """A context in which BLAS runs on one thread (many small dense products and solves)."""
    return _blas().limit(limits=1, user_api="blas")


@functools.cache
def _blas() -> ThreadpoolController:
    """Inspecting the loaded libraries costs about 0.1 s: do it once."""
    return ThreadpoolController()


def _unsupported(net: pp.pandapowerNet) -> bool:
    """Elements the batched solver does not model (it then falls back to runpp)."""
    for table in ("gen", "trafo3w", "impedance", "ward", "xward", "dcline", "shunt", "svc"):
        if table in net and len(net[table]) and net[table].in_service.any():
            return True
    if len(net.ext_grid) != 1:
        return True
    ld = net.load[net.load.in_service]
    for col in ("const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent"):
        if col in ld and (ld[col].fillna(0) != 0).any():
            return True
    return False
