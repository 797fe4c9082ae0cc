"""An unbalanced AC power flow of the park: pandapower's three-phase flow (``runpp_3ph``) with
every asset on the phases it is connected to.

The balanced AC check (:mod:`vpp.grid.network`) sees one phase for three: it cannot see a pod
of single-phase chargers loading one phase of a sub-circuit. Here each asset becomes an
``asymmetric_load`` at its bus: a charger on ``A`` (``B``, ``C``) a wye load on that phase, on
``AB`` (``BC``, ``CA``) a delta load on that branch, every other asset (and a three-phase
charger) a third on each phase. Powers at unity power factor (kW in, MW only here).

The park file describes the positive sequence only; the zero-sequence data ``runpp_3ph``
needs are filled where the network has none, with :class:`ZeroSequence` (assumptions stated
there, typical of LV cable and Dyn distribution transformers). The flow's per-phase currents
and voltages are what it reports (:class:`PhaseFlow`).

:class:`PhaseCheck` runs that flow on chosen steps of a schedule, on a network built once, and
finds what the balanced check cannot see: a transformer or line whose most loaded phase is
over its limit, a bus whose worst phase voltage is outside the band. For each element it
checks it gives the *unbalance* of that step: the factor by which the worst phase's loading
exceeds the balanced loading, or the offset (pu) of the worst phase's voltage from the
balanced one. The planner's AC loop (:mod:`vpp.grid.loop`) turns them into rows on the
balanced model (loading <= limit / factor; voltage <= v_max - offset), and the simulated
park's realised check counts phase violations (:mod:`vpp.sim.realised`). It applies where
the park says its network is unbalanced (``network.unbalanced``: ``on``; ``auto``, the
default, when a single-phase or line-to-line charger sits on the park's own network).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp

from vpp.grid.network import (
    GridReport,
    Limits,
    Violation,
    build_site_net,
    by_step,
    tan_phi,
    worst_violations,
)
from vpp.park.model import Site

_INDUCTIVE = ("base_load", "curtailable", "shiftable")
_COLS = ("a", "b", "c")


@dataclass(frozen=True)
class ZeroSequence:
    """Zero-sequence data filled where the network has none (assumptions).

    ``s_sc_mva`` / ``rx``: the utility's short-circuit power and R/X at the connection;
    ``x0x`` / ``r0x0``: its zero- to positive-sequence ratios; ``line_r0_factor`` /
    ``line_x0_factor``: a cable's zero-sequence impedance as a multiple of its positive one
    (about 4 for LV cable with the neutral as return); transformers ``Dyn`` with their
    positive-sequence short-circuit voltages."""

    s_sc_mva: float = 1000.0
    rx: float = 0.1
    x0x: float = 1.0
    r0x0: float = 0.1
    line_r0_factor: float = 4.0
    line_x0_factor: float = 4.0
    vector_group: str = "Dyn"


@dataclass
class PhaseFlow:
    """Per-phase results: bus voltages (p.u.) and unbalance (%), transformer and line phase
    currents on their LV / from side (A) and loadings (%)."""

    converged: bool
    bus_vm_pu: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    bus_unbalance_percent: dict[str, float] = field(default_factory=dict)
    trafo_i_lv_a: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    trafo_loading_percent: dict[str, float] = field(default_factory=dict)
    line_i_a: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def unbalanced_net(site: Site, zero: ZeroSequence = ZeroSequence()) -> pp.pandapowerNet:
    """The park's network with zero-sequence data (``zero`` where missing) and no loads."""
    net = build_site_net(site)
    eg = net.ext_grid
    for col, v in (
        ("s_sc_max_mva", zero.s_sc_mva),
        ("rx_max", zero.rx),
        ("x0x_max", zero.x0x),
        ("r0x0_max", zero.r0x0),
    ):
        eg[col] = eg[col].fillna(v) if col in eg else v
    tr = net.trafo
    if len(tr):
        for col, src in (("vk0_percent", "vk_percent"), ("vkr0_percent", "vkr_percent")):
            tr[col] = tr[col].fillna(tr[src]) if col in tr else tr[src]
        for col, v in (
            ("vector_group", zero.vector_group),
            ("mag0_percent", 100.0),
            ("mag0_rx", 0.0),
            ("si0_hv_partial", 0.9),
        ):
            tr[col] = tr[col].fillna(v) if col in tr else v
    ln = net.line
    if len(ln):
        for col, src, k in (
            ("r0_ohm_per_km", "r_ohm_per_km", zero.line_r0_factor),
            ("x0_ohm_per_km", "x_ohm_per_km", zero.line_x0_factor),
            ("c0_nf_per_km", "c_nf_per_km", 1.0),
        ):
            tr_col = ln[src] * k
            ln[col] = ln[col].fillna(tr_col) if col in ln else tr_col
    net.load["p_mw"] = 0.0
    net.load["q_mvar"] = 0.0
    return net


_DELTA = {"AB": "p_a_mw", "BC": "p_b_mw", "CA": "p_c_mw"}
_WYE = {"A": "p_a_mw", "B": "p_b_mw", "C": "p_c_mw"}
_PHASE_COLS = ("p_a_mw", "p_b_mw", "p_c_mw")


def phase_flow(
    site: Site,
    asset_p_kw: Mapping[str, float],
    zero: ZeroSequence = ZeroSequence(),
    load_power_factor: float = 0.95,
) -> PhaseFlow:
    """``runpp_3ph`` of the park with each asset of ``asset_p_kw`` (kW, load convention) on
    its phases (see the module docstring), on a network built for this one call; assets not
    on a known bus are ignored. :class:`PhaseCheck` keeps the network for many steps."""
    return PhaseCheck(site, load_power_factor, zero).flow(asset_p_kw)


def _figures(net: pp.pandapowerNet) -> PhaseFlow:
    out = PhaseFlow(converged=True)
    rb = net.res_bus_3ph
    for i, name in net.bus.name.items():
        out.bus_vm_pu[name] = tuple(float(rb.at[i, f"vm_{x}_pu"]) for x in "abc")
        out.bus_unbalance_percent[name] = float(np.nan_to_num(rb.at[i, "unbalance_percent"]))
    rt = net.res_trafo_3ph
    for i, name in net.trafo.name.items():
        out.trafo_i_lv_a[name] = tuple(1000.0 * float(rt.at[i, f"i_{x}_lv_ka"]) for x in "abc")
        out.trafo_loading_percent[name] = float(rt.at[i, "loading_percent"])
    rl = net.res_line_3ph
    for i, name in net.line.name.items():
        out.line_i_a[name] = tuple(1000.0 * float(rl.at[i, f"i_{x}_from_ka"]) for x in "abc")
    return out


def applies(site: Site) -> bool:
    """Whether the park's AC checks run the unbalanced flow (``network.unbalanced``; ``auto``:
    when a charger on a single phase or a line pair sits on a bus of the park's own network)."""
    nw = site.network
    mode = nw.unbalanced
    if mode == "off" or nw.pandapower_json or nw.simbench_code:
        return False
    if not (nw.transformers or nw.lines):
        return False
    if mode == "on":
        return True
    buses = set(site.bus_names())
    return any(c.phase != "three_phase" and c.bus in buses for c in site.assets.ev_chargers)


@dataclass
class PhaseReport:
    """What the unbalanced flow found at the steps it checked.

    ``violations``: per-phase violations (kinds as the balanced check's); ``unbalance``: per
    ``(element, kind)`` the largest factor (loading: worst phase / balanced, >= 1) or offset
    (voltage: pu the worst phase lies beyond the balanced value, >= 0) over the checked steps;
    ``steps``: the steps checked."""

    steps: list[int] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    unbalance: dict[tuple[str, str], float] = field(default_factory=dict)
    converged: bool = True
    # Per checked step: the largest phase loading of any transformer / line (%), the lowest
    # and highest phase voltage of any bus (pu).
    trafo_loading_max_percent: dict[int, float] = field(default_factory=dict)
    line_loading_max_percent: dict[int, float] = field(default_factory=dict)
    vm_min_pu: dict[int, float] = field(default_factory=dict)
    vm_max_pu: dict[int, float] = field(default_factory=dict)

    def messages(self) -> list[str]:
        out = []
        for (el, kind), v in sorted(worst_violations(self.violations).items()):
            u = self.unbalance.get((el, kind), 0.0)
            what = f"x{u:.3f} the balanced loading" if "loading" in kind else f"{u:+.4f} pu"
            out.append(
                f"unbalanced flow: {el} {kind} {v.value:.4g} against {v.limit:.4g} at step "
                f"{v.step} on its worst phase ({what}); the balanced check cannot see it"
            )
        if not self.converged:
            out.append("unbalanced flow: did not converge at some checked step")
        return out


class PhaseCheck:
    """The park's unbalanced flow, built once and run on chosen steps of a schedule.

    Each asset of the park is an asymmetric load at its bus (see the module docstring), so a
    step is set by writing its powers and running ``runpp_3ph`` (about 60 ms on the demo's
    network). Reactive power follows the balanced model's rule: base, curtailable and
    shiftable loads at ``load_power_factor``, the rest at unity."""

    def __init__(
        self, site: Site, load_power_factor: float = 0.95, zero: ZeroSequence = ZeroSequence()
    ) -> None:
        self.net = unbalanced_net(site, zero)
        self.tan = tan_phi(load_power_factor)
        bus_idx = dict(zip(self.net.bus.name, self.net.bus.index, strict=True))
        conn = {c.name: c.phase for c in site.assets.ev_chargers}
        a = site.assets
        kinds = (
            (a.pv_arrays, "pv"),
            (a.batteries, "battery"),
            (a.ev_chargers, "ev_charger"),
            (a.shiftable_loads, "shiftable"),
            (a.curtailable_loads, "curtailable"),
            (a.base_loads, "base_load"),
            (a.pedf_buildings, "pedf"),
        )
        # name -> (row of the asymmetric-load table, share per phase (a, b, c), inductive)
        self.loads: dict[str, tuple[int, tuple[float, float, float], bool]] = {}
        for items, kind in kinds:
            for x in items:
                if x.bus not in bus_idx:
                    continue
                ph = conn.get(x.name, "three_phase")
                share, delta = (1 / 3, 1 / 3, 1 / 3), False
                if ph in _WYE:
                    share = tuple(1.0 if c == _WYE[ph] else 0.0 for c in _PHASE_COLS)
                elif ph in _DELTA:
                    share = tuple(1.0 if c == _DELTA[ph] else 0.0 for c in _PHASE_COLS)
                    delta = True
                pp.create_asymmetric_load(
                    self.net, bus_idx[x.bus], name=x.name, type="delta" if delta else "wye"
                )
                row = len(self.net.asymmetric_load) - 1
                self.loads[x.name] = (row, share, kind in _INDUCTIVE)

    def flow(self, asset_p_kw: Mapping[str, float]) -> PhaseFlow:
        """The unbalanced flow with each asset at ``asset_p_kw`` (kW, load convention; assets
        not given draw nothing)."""
        al = self.net.asymmetric_load
        p = np.zeros((len(al), 3))
        q = np.zeros((len(al), 3))
        for name, (row, share, inductive) in self.loads.items():
            kw = float(asset_p_kw.get(name, 0.0))
            if not kw:
                continue
            mw = kw / 1000.0 * np.asarray(share)
            p[row] = mw
            if inductive and kw > 0:
                q[row] = mw * self.tan
        for j, c in enumerate(_COLS):
            al[f"p_{c}_mw"] = p[:, j]
            al[f"q_{c}_mvar"] = q[:, j]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp_3ph(self.net, numba=False)
        except (pp.LoadflowNotConverged, ValueError, KeyError):
            return PhaseFlow(converged=False)
        return _figures(self.net)

    def check(
        self,
        schedules: Mapping[str, np.ndarray],
        balanced: GridReport,
        steps: list[int],
        limits: Limits,
    ) -> PhaseReport:
        """Run the flow at ``steps`` of the per-asset ``schedules`` (kW per step) and compare
        with the balanced report of the same schedule (its flow's loadings and voltages)."""
        out = PhaseReport(steps=list(steps))
        flow = balanced.flow
        names = balanced.element_names  # the balanced flow's columns, by name
        trafos, lines, buses = names["trafo"], names["line"], names["bus"]
        lim = limits.loading_max_percent
        for t in steps:
            ph = self.flow({n: float(np.asarray(v)[t]) for n, v in schedules.items()})
            if not ph.converged:
                out.converged = False
                continue
            if ph.trafo_loading_percent:
                out.trafo_loading_max_percent[t] = max(ph.trafo_loading_percent.values())
            lines_now = self._line_loading()
            if lines_now:
                out.line_loading_max_percent[t] = max(lines_now.values())
            vms = [x for v in ph.bus_vm_pu.values() for x in v if np.isfinite(x)]
            if vms:
                out.vm_min_pu[t], out.vm_max_pu[t] = min(vms), max(vms)
            for kind, elements, got, bal in (
                ("trafo_loading", trafos, ph.trafo_loading_percent, flow.trafo_loading_percent),
                ("line_loading", lines, lines_now, flow.line_loading_percent),
            ):
                for i, el in enumerate(elements):
                    if el not in got:
                        continue
                    x3, x1 = float(got[el]), float(bal[t, i])
                    if x1 > 1.0:
                        key = (el, kind)
                        out.unbalance[key] = max(out.unbalance.get(key, 1.0), x3 / x1)
                    if x3 > lim + 1e-9 and x1 <= lim + 1e-9:
                        out.violations.append(Violation(t, el, kind, x3, lim))
            for i, b in enumerate(buses):
                if b not in ph.bus_vm_pu:
                    continue
                v3, v1 = ph.bus_vm_pu[b], float(flow.vm_pu[t, i])
                hi, lo = max(v3), min(v3)
                for kind, off, bad, ok, bound in (
                    ("overvoltage", hi - v1, hi > limits.v_max_pu + 1e-9,
                     v1 <= limits.v_max_pu + 1e-9, limits.v_max_pu),
                    ("undervoltage", v1 - lo, lo < limits.v_min_pu - 1e-9,
                     v1 >= limits.v_min_pu - 1e-9, limits.v_min_pu),
                ):  # fmt: skip
                    key = (b, kind)
                    out.unbalance[key] = max(out.unbalance.get(key, 0.0), off)
                    if bad and ok:
                        out.violations.append(
                            Violation(t, b, kind, hi if kind == "overvoltage" else lo, bound)
                        )
        out.violations = by_step(out.violations)
        return out

    def _line_loading(self) -> dict[str, float]:
        rl = self.net.res_line_3ph
        return {
            str(name): float(rl.at[i, "loading_percent"]) for i, name in self.net.line.name.items()
        }


def steps_to_check(report: GridReport, first: int = 0, most: int = 4) -> list[int]:
    """The steps of a schedule the unbalanced flow checks: the one sent (``first``) and those
    where the balanced loading is nearest its limit, ``most`` in all, then the steps of the
    lowest and the highest voltage (so at most ``most + 2``)."""
    out = [first]
    lim = report.limits
    n = len(report.trafo_loading_max_percent)
    if n == 0:
        return []
    closeness = np.zeros(n)
    if report.trafo_loading_max_percent.size:
        closeness = np.maximum(
            closeness, report.trafo_loading_max_percent / lim.loading_max_percent
        )
    if report.line_loading_max_percent.size:
        closeness = np.maximum(closeness, report.line_loading_max_percent / lim.loading_max_percent)
    for t in np.argsort(-np.nan_to_num(closeness), kind="stable"):
        if len(out) >= most:
            break
        if int(t) not in out:
            out.append(int(t))
    for arr, pick in ((report.vm_min_pu, np.nanargmin), (report.vm_max_pu, np.nanargmax)):
        if arr.size and len(out) < most + 2 and np.isfinite(arr).any():
            t = int(pick(arr))
            if t not in out:
                out.append(t)
    return sorted(out)


def fold(report: GridReport, found: PhaseReport) -> None:
    """Add what the unbalanced flow found to the balanced ``report`` of the same schedule: its
    violations, the unbalance per element (the loop's rows read it) and its messages."""
    report.violations = by_step([*report.violations, *found.violations])
    for key, u in found.unbalance.items():
        report.unbalance[key] = max(report.unbalance.get(key, u), u)
    report.messages.extend(found.messages())


def apply_unbalance(report: GridReport, unbalance: Mapping[tuple[str, str], float]) -> None:
    """Violations of a balanced ``report`` at the unbalance found elsewhere (the plan's own
    check): a loading times its factor over the limit, a voltage beyond the band by its
    offset. For the checks of the plan under the forecast-error bounds, which run balanced."""
    if not unbalance or report.flow is None:
        return
    flow, lim = report.flow, report.limits
    seen = {(v.step, v.element, v.kind) for v in report.violations}
    extra = []
    for kind, arr, names in (
        ("trafo_loading", flow.trafo_loading_percent, _names(report, "trafo")),
        ("line_loading", flow.line_loading_percent, _names(report, "line")),
    ):
        for i, el in enumerate(names):
            u = unbalance.get((el, kind), 1.0)
            if u <= 1.0 + 1e-9:
                continue
            x = arr[:, i] * u
            for t in np.flatnonzero(x > lim.loading_max_percent + 1e-9):
                if (int(t), el, kind) not in seen:
                    extra.append(Violation(int(t), el, kind, float(x[t]), lim.loading_max_percent))
    for i, b in enumerate(_names(report, "bus")):
        hi = flow.vm_pu[:, i] + unbalance.get((b, "overvoltage"), 0.0)
        lo = flow.vm_pu[:, i] - unbalance.get((b, "undervoltage"), 0.0)
        for kind, x, bad, bound in (
            ("overvoltage", hi, hi > lim.v_max_pu + 1e-9, lim.v_max_pu),
            ("undervoltage", lo, lo < lim.v_min_pu - 1e-9, lim.v_min_pu),
        ):
            for t in np.flatnonzero(bad & flow.converged):
                if (int(t), b, kind) not in seen:
                    extra.append(Violation(int(t), b, kind, float(x[t]), bound))
    if extra:
        report.violations = by_step([*report.violations, *extra])


def _names(report: GridReport, kind: str) -> list[str]:
    return list(report.element_names.get(kind, ()))
