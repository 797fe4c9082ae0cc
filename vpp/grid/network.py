"""The park network in pandapower: build it, run AC power flow over a schedule, report limits.

Edge module: pandapower is imported here and in :mod:`vpp.grid.loop`, never in ``controllers/``.

How a dispatch meets the network
--------------------------------
Each park bus carries **one** pandapower ``load`` named ``vpp:<bus>`` whose active power is the
bus's net load from ``DispatchResult.bus_p_kw`` (load convention: + consumes, - injects). Its
reactive power is that of the *consumption* part at ``GridOptions.load_power_factor``
(inductive, default 0.95); PV inverters, batteries, EV chargers and PEDF interface converters run
at unity power factor. When only the bus total is known, the consumption part is taken as
``max(p, 0)``. The site network may also carry per-asset elements (``sgen`` for PV, ``storage``
for batteries, ``load`` for chargers and loads) at zero power, for inspection and the JSON
export; they add nothing to the flow.

Speed
-----
:meth:`GridModel.power_flow` solves all steps of a schedule at once: Newton-Raphson in polar
coordinates on pandapower's own admittance matrices (``Ybus``, ``Yf``, ``Yt`` of the internal
case, taken once from one ``runpp``), vectorised over the steps. Loadings use pandapower's
formulas (current-based, ``df`` and ``parallel`` included). :meth:`GridModel.power_flow_runpp`
is the reference path (``runpp`` per step, optionally with ``recycle``); a differential test
keeps the two within 1e-6 pu. Networks the fast path does not cover (voltage-controlled
generators, voltage-dependent loads) fall back to the reference path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp

from vpp.grid.flow import FastFlow, FlowResult, Sensitivity
from vpp.park.model import Site

SQRT3 = math.sqrt(3.0)
_INDUCTIVE_KINDS = ("base_load", "curtailable", "shiftable")


# --------------------------------------------------------------------------------------------
# Settings and limits
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridOptions:
    """How the park network is modelled (defaults are typical of a Chinese 10 kV park).

    Parameters
    ----------
    load_power_factor : inductive power factor of consumption (0-1]; 1 = no reactive power.
    ext_grid_vm_pu : voltage the utility holds at the connection bus, pu.
    line_std_type : pandapower cable type for lines that name none.
    trafo_pfe_frac, trafo_i0_percent : iron losses (fraction of rating) and no-load current.
    detailed : also add per-asset elements (at zero power) for inspection and export.
    tol_pu, max_iter : Newton-Raphson tolerance on the power mismatch (pu of ``sn_mva``).
    """

    load_power_factor: float = 0.95
    ext_grid_vm_pu: float = 1.0
    line_std_type: str = "NA2XS2Y 1x240 RM/25 6/10 kV"
    trafo_pfe_frac: float = 0.001
    trafo_i0_percent: float = 0.3
    detailed: bool = True
    tol_pu: float = 1e-10
    max_iter: int = 20


@dataclass(frozen=True)
class Limits:
    """Voltage band (pu) and maximum loading (%) that validation enforces."""

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    loading_max_percent: float = 100.0


# --------------------------------------------------------------------------------------------
# Building the pandapower network
# --------------------------------------------------------------------------------------------
def build_site_net(site: Site, options: GridOptions = GridOptions()) -> pp.pandapowerNet:
    """A pandapower network of the park: buses, cables, building transformers, external grid.

    The external grid sits at ``site.connection.bus``; every park bus gets a ``vpp:<bus>`` load.
    """
    net = pp.create_empty_network(name=site.name, sn_mva=1.0)
    idx: dict[str, int] = {}
    for b in site.buses:
        idx[b.name] = pp.create_bus(net, vn_kv=b.vn_kv, name=b.name, zone=b.kind)
    pp.create_ext_grid(net, idx[site.connection.bus], vm_pu=options.ext_grid_vm_pu, name="utility")
    for ln in site.network.lines:
        pp.create_line(
            net,
            idx[ln.from_bus],
            idx[ln.to_bus],
            length_km=ln.length_km,
            std_type=ln.std_type or options.line_std_type,
            name=ln.name,
            parallel=ln.parallel,
        )
    vn = {b.name: b.vn_kv for b in site.buses}
    for t in site.network.transformers:
        if t.std_type:
            pp.create_transformer(net, idx[t.hv_bus], idx[t.lv_bus], t.std_type, name=t.name)
            continue
        pp.create_transformer_from_parameters(
            net,
            idx[t.hv_bus],
            idx[t.lv_bus],
            sn_mva=t.sn_kva / 1000.0,
            vn_hv_kv=vn[t.hv_bus],
            vn_lv_kv=vn[t.lv_bus],
            vkr_percent=t.vkr_percent,
            vk_percent=t.vk_percent,
            pfe_kw=t.sn_kva * options.trafo_pfe_frac,
            i0_percent=options.trafo_i0_percent,
            name=t.name,
        )
    if options.detailed:
        _add_assets(net, site, idx)
    return net


def _add_assets(net: pp.pandapowerNet, site: Site, idx: Mapping[str, int]) -> None:
    a = site.assets
    for pv in a.pv_arrays:
        pp.create_sgen(net, idx[pv.bus], p_mw=0.0, sn_mva=pv.inverter_kw / 1e3, name=pv.name)
    for bat in a.batteries:
        pp.create_storage(
            net, idx[bat.bus], p_mw=0.0, max_e_mwh=bat.e_kwh / 1e3, name=bat.name, soc_percent=0
        )
    for c in a.ev_chargers:
        pp.create_load(net, idx[c.bus], p_mw=0.0, sn_mva=c.p_max_kw / 1e3, name=c.name, type="ev")
    for group in (a.base_loads, a.curtailable_loads, a.shiftable_loads):
        for ld in group:
            pp.create_load(net, idx[ld.bus], p_mw=0.0, name=ld.name, type="load")
    for pedf in a.pedf_buildings:
        pp.create_load(
            net, idx[pedf.bus], p_mw=0.0, sn_mva=pedf.converter_kw / 1e3, name=pedf.name,
            type="pedf",
        )  # fmt: skip


def load_net(json_path: str | None = None, simbench_code: str | None = None) -> pp.pandapowerNet:
    """A study network from a pandapower JSON file or a SimBench code."""
    if json_path:
        return pp.from_json(json_path)
    if simbench_code:
        import simbench

        return simbench.get_simbench_net(simbench_code)
    raise ValueError("load_net: give json_path or simbench_code")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    step: int
    element: str
    kind: str  # overvoltage | undervoltage | line_loading | trafo_loading | not_converged
    value: float  # pu or %
    limit: float

    def excess(self) -> float:
        scale = 100.0 if self.kind in ("overvoltage", "undervoltage") else 1.0
        return abs(self.value - self.limit) * scale


def worst_violations(violations: Sequence[Violation]) -> dict[tuple[str, str], Violation]:
    """The worst of ``violations`` for each (element, kind)."""
    out: dict[tuple[str, str], Violation] = {}
    for v in violations:
        key = (v.element, v.kind)
        if key not in out or v.excess() > out[key].excess():
            out[key] = v
    return out


def by_step(violations: Sequence[Violation]) -> list[Violation]:
    """``violations`` sorted by step, then kind, then element."""
    return sorted(violations, key=lambda v: (v.step, v.kind, v.element))


@dataclass
class GridReport:
    """Per-step figures of one validated schedule and every violation, with element names."""

    vm_min_pu: np.ndarray
    vm_max_pu: np.ndarray
    line_loading_max_percent: np.ndarray
    trafo_loading_max_percent: np.ndarray
    losses_kw: np.ndarray
    p_ext_kw: np.ndarray
    reverse_flow_kw: np.ndarray  # export at the connection, >= 0
    violations: list[Violation]
    limits: Limits
    flow: FlowResult = field(repr=False, default=None)  # type: ignore[assignment]
    messages: list[str] = field(default_factory=list)
    # The flow's element names by kind ("bus", "line", "trafo"), in its columns' order.
    element_names: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    # Where the unbalanced flow checked this schedule (vpp.grid.unbalanced): per (element,
    # kind) the unbalance it found (loading: worst phase / balanced; voltage: pu the worst
    # phase lies beyond the balanced value).
    unbalance: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def severity(self) -> float:
        """Sum of excesses over limits (loading %-points, voltage 0.01 pu) over all steps."""
        return float(sum(v.excess() for v in self.violations))

    def worst(self) -> dict[tuple[str, str], Violation]:
        """The worst violation of each (element, kind)."""
        return worst_violations(self.violations)

    def summary(self) -> list[str]:
        lines = []
        for (el, kind), v in sorted(self.worst().items()):
            steps = sorted({w.step for w in self.violations if (w.element, w.kind) == (el, kind)})
            lines.append(
                f"{el}: {kind} {v.value:.4g} against {v.limit:.4g} at step {v.step} "
                f"({len(steps)} steps: {steps[0]}-{steps[-1]})"
            )
        return lines


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
class GridModel:
    """A pandapower network, the park buses mapped onto it, and a batched AC power flow.

    Parameters
    ----------
    net : the network; a ``vpp:<bus>`` load is added for every mapped bus that has none.
    bus_map : park bus name -> pandapower bus name (identity for names not given).
    buses : park bus names the schedules may use (default: every pandapower bus name).
    limits, options : see :class:`Limits`, :class:`GridOptions`.
    """

    def __init__(
        self,
        net: pp.pandapowerNet,
        buses: Sequence[str] | None = None,
        bus_map: Mapping[str, str] | None = None,
        limits: Limits = Limits(),
        options: GridOptions = GridOptions(),
    ) -> None:
        self.net = net
        self.limits = limits
        self.options = options
        names = list(net.bus.name) if buses is None else list(buses)
        by_name = {str(n): int(i) for n, i in zip(net.bus.name, net.bus.index, strict=True)}
        bus_map = dict(bus_map or {})
        self.buses: tuple[str, ...] = tuple(names)
        self.load_idx = np.empty(len(names), dtype=np.int64)
        self.pp_bus = np.empty(len(names), dtype=np.int64)
        existing = {str(n): int(i) for n, i in zip(net.load.name, net.load.index, strict=True)}
        for k, name in enumerate(names):
            target = bus_map.get(name, name)
            if target not in by_name:
                raise ValueError(f"bus {name!r}: no pandapower bus named {target!r} in the network")
            self.pp_bus[k] = by_name[target]
            lname = f"vpp:{name}"
            self.load_idx[k] = existing.get(lname, -1)
            if self.load_idx[k] < 0:
                self.load_idx[k] = pp.create_load(net, by_name[target], p_mw=0.0, name=lname)
        self._fast: FastFlow | None = FastFlow.try_build(
            self.net, self.load_idx, options.tol_pu, options.max_iter
        )

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_site(cls, site: Site, options: GridOptions = GridOptions()) -> GridModel:
        """The park's own network, or its JSON / SimBench study network when configured."""
        nw = site.network
        limits = Limits(nw.v_min_pu, nw.v_max_pu, nw.loading_max_percent)
        if nw.pandapower_json or nw.simbench_code:
            net = load_net(nw.pandapower_json, nw.simbench_code)
            return cls(net, buses=site.bus_names(), limits=limits, options=options)
        net = build_site_net(site, options)
        return cls(net, buses=site.bus_names(), limits=limits, options=options)

    @property
    def fast(self) -> bool:
        """True when the batched Newton-Raphson covers this network."""
        return self._fast is not None

    # -- schedules ----------------------------------------------------------------------------
    def schedule_arrays(
        self,
        bus_p_kw: Mapping[str, np.ndarray],
        bus_q_kvar: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(P, Q)`` arrays of shape ``(T, n_buses)`` in :attr:`buses` order.

        Buses missing from ``bus_p_kw`` carry nothing; unknown names raise ``ValueError``.
        """
        unknown = sorted(set(bus_p_kw) - set(self.buses))
        if unknown:
            raise ValueError(f"schedule names buses the network does not have: {unknown}")
        n = len(next(iter(bus_p_kw.values()))) if bus_p_kw else 1
        P = np.zeros((n, len(self.buses)))
        for k, b in enumerate(self.buses):
            if b in bus_p_kw:
                P[:, k] = np.asarray(bus_p_kw[b], dtype=float)
        if bus_q_kvar is None:
            Q = np.maximum(P, 0.0) * tan_phi(self.options.load_power_factor)
        else:
            Q = np.zeros_like(P)
            for k, b in enumerate(self.buses):
                if b in bus_q_kvar:
                    Q[:, k] = np.asarray(bus_q_kvar[b], dtype=float)
        return P, Q

    # -- power flow ---------------------------------------------------------------------------
    def power_flow(self, P_kw: np.ndarray, Q_kvar: np.ndarray) -> FlowResult:
        """AC power flow of every step (rows of ``P_kw``/``Q_kvar``, kW and kvar per bus)."""
        if self._fast is None:
            return self.power_flow_runpp(P_kw, Q_kvar, recycle=True)
        return self._fast.solve(P_kw, Q_kvar)

    def power_flow_runpp(
        self, P_kw: np.ndarray, Q_kvar: np.ndarray, recycle: bool = False
    ) -> FlowResult:
        """Reference path: one pandapower ``runpp`` per step (``recycle`` reuses the set-up)."""
        net = self.net
        T = P_kw.shape[0]
        nb, nl, nt = len(net.bus), len(net.line), len(net.trafo)
        out = FlowResult(
            np.full((T, nb), np.nan), np.full((T, nl), np.nan), np.full((T, nt), np.nan),
            np.full(T, np.nan), np.full(T, np.nan), np.full(T, np.nan), np.zeros(T),
            np.zeros(T, dtype=bool),
        )  # fmt: skip
        kw = {"recycle": {"trafo": False, "gen": False, "bus_pq": True}} if recycle else {}
        saved = net.load.loc[self.load_idx, ["p_mw", "q_mvar"]].copy()
        try:
            for t in range(T):
                net.load.loc[self.load_idx, "p_mw"] = P_kw[t] / 1e3
                net.load.loc[self.load_idx, "q_mvar"] = Q_kvar[t] / 1e3
                try:
                    pp.runpp(net, tolerance_mva=1e-9, numba=False, **kw)
                except pp.LoadflowNotConverged:
                    continue
                out.converged[t] = True
                out.vm_pu[t] = net.res_bus.vm_pu.to_numpy()
                out.line_loading_percent[t] = net.res_line.loading_percent.to_numpy()
                out.trafo_loading_percent[t] = net.res_trafo.loading_percent.to_numpy()
                out.p_ext_kw[t] = net.res_ext_grid.p_mw.sum() * 1e3
                out.q_ext_kvar[t] = net.res_ext_grid.q_mvar.sum() * 1e3
                out.p_load_kw[t] = _applied_load_kw(net)
                out.losses_kw[t] = (net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()) * 1e3
        finally:
            net.load.loc[self.load_idx, ["p_mw", "q_mvar"]] = saved.to_numpy()
        return out

    # -- validation ---------------------------------------------------------------------------
    def validate(
        self,
        bus_p_kw: Mapping[str, np.ndarray],
        bus_q_kvar: Mapping[str, np.ndarray] | None = None,
        limits: Limits | None = None,
    ) -> GridReport:
        """Run the power flow of every step of a schedule and check voltages and loadings."""
        P, Q = self.schedule_arrays(bus_p_kw, bus_q_kvar)
        return self.report(self.power_flow(P, Q), limits or self.limits)

    def report(self, flow: FlowResult, limits: Limits) -> GridReport:
        net = self.net
        vm = flow.vm_pu
        lim = limits.loading_max_percent
        # Every violation, step by step (within a step: over-, undervoltage, line, trafo),
        # found with whole-array comparisons: the plan is checked several times a cycle.
        checks = (
            ("overvoltage", vm, vm > limits.v_max_pu + 1e-9, limits.v_max_pu, net.bus.name),
            ("undervoltage", vm, vm < limits.v_min_pu - 1e-9, limits.v_min_pu, net.bus.name),
            ("line_loading", flow.line_loading_percent,
             flow.line_loading_percent > lim + 1e-9, lim, net.line.name),
            ("trafo_loading", flow.trafo_loading_percent,
             flow.trafo_loading_percent > lim + 1e-9, lim, net.trafo.name),
        )  # fmt: skip
        found: list[tuple[int, int, int]] = [
            (int(t), -1, 0) for t in np.flatnonzero(~flow.converged)
        ]
        for c, (_, _, mask, _, _) in enumerate(checks):
            mask = mask & flow.converged[:, None]
            found.extend((int(t), c, int(i)) for t, i in zip(*np.nonzero(mask), strict=True))
        found.sort()
        viol: list[Violation] = []
        for t, c, i in found:
            if c < 0:
                viol.append(Violation(t, "network", "not_converged", math.nan, math.nan))
                continue
            kind, arr, _, bound, names = checks[c]
            viol.append(Violation(t, str(names.iloc[i]), kind, arr[t, i], bound))
        return GridReport(
            vm_min_pu=np.nanmin(vm, axis=1) if vm.size else np.zeros(0),
            vm_max_pu=np.nanmax(vm, axis=1) if vm.size else np.zeros(0),
            line_loading_max_percent=_rowmax(flow.line_loading_percent),
            trafo_loading_max_percent=_rowmax(flow.trafo_loading_percent),
            losses_kw=flow.losses_kw,
            p_ext_kw=flow.p_ext_kw,
            reverse_flow_kw=np.maximum(-flow.p_ext_kw, 0.0),
            violations=viol,
            limits=limits,
            flow=flow,
            element_names={
                "bus": tuple(map(str, net.bus.name)),
                "line": tuple(map(str, net.line.name)),
                "trafo": tuple(map(str, net.trafo.name)),
            },
        )

    def sensitivity(self, V: np.ndarray) -> Sensitivity:
        """Jacobian sensitivities of one solved step (``FlowResult.V[t]``), columns = buses."""
        if self._fast is None:
            raise NotImplementedError("sensitivities need the batched solver (see GridModel.fast)")
        return self._fast.sensitivity(V)

    def element_names(self, kind: str) -> list[str]:
        table = {"bus": self.net.bus, "line": self.net.line, "trafo": self.net.trafo}[kind]
        return [str(n) for n in table.name]


def _rowmax(a: np.ndarray) -> np.ndarray:
    return np.nanmax(a, axis=1) if a.shape[1] else np.zeros(a.shape[0])


def tan_phi(pf: float) -> float:
    if not 0 < pf <= 1:
        raise ValueError(f"power factor must be in (0, 1], got {pf}")
    return math.tan(math.acos(pf))


def _applied_load_kw(net: pp.pandapowerNet) -> float:
    p = net.res_load.p_mw.sum() + net.res_storage.p_mw.sum() - net.res_sgen.p_mw.sum()
    return float(p) * 1e3


def bus_q_kvar(assets: Mapping[str, object], buses: Sequence[str], pf: float) -> dict:
    """Reactive power per bus (kvar) of a dispatch: consumption at ``pf``, the rest at 1.

    ``assets`` is ``DispatchResult.assets`` (name -> AssetSchedule with ``kind``, ``bus``,
    ``p_kw``). Loads of kind base_load, curtailable and shiftable are inductive, except on a
    PEDF building's bus: its members sit behind the building's DC converter, which meets the
    network at unity power factor (as :mod:`vpp.sim.realised` counts the realised park).
    """
    tan = tan_phi(pf)
    out: dict[str, np.ndarray] = {}
    dc = {s.bus for s in assets.values() if s.kind == "pedf"}  # type: ignore[attr-defined]
    for s in assets.values():
        if s.kind in _INDUCTIVE_KINDS and s.bus in buses and s.bus not in dc:  # type: ignore[attr-defined]
            q = np.maximum(np.asarray(s.p_kw, dtype=float), 0.0) * tan  # type: ignore[attr-defined]
            out[s.bus] = out.get(s.bus, 0.0) + q  # type: ignore[attr-defined]
    return out
