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

This module gives the flow and its figures; it is not yet wired into the planner's AC loop
(:mod:`vpp.grid.loop`), which stays balanced.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp

from vpp.grid.network import build_site_net
from vpp.park.model import Site


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


def phase_flow(
    site: Site, asset_p_kw: Mapping[str, float], zero: ZeroSequence = ZeroSequence()
) -> PhaseFlow:
    """``runpp_3ph`` of the park with each asset of ``asset_p_kw`` (kW, load convention) on
    its phases (see the module docstring); assets not on a known bus are ignored."""
    net = unbalanced_net(site, zero)
    bus_idx = dict(zip(net.bus.name, net.bus.index, strict=True))
    conn = {c.name: c.phase for c in site.assets.ev_chargers}
    bus_of = {c.name: c.bus for c in site.assets.ev_chargers}
    for items in (
        site.assets.pv_arrays,
        site.assets.batteries,
        site.assets.shiftable_loads,
        site.assets.curtailable_loads,
        site.assets.base_loads,
        site.assets.pedf_buildings,
    ):
        bus_of |= {x.name: x.bus for x in items}
    for name, p_kw in asset_p_kw.items():
        if name not in bus_of or bus_of[name] not in bus_idx or not p_kw:
            continue
        ph = conn.get(name, "three_phase")
        mw = float(p_kw) / 1000.0
        kw = dict.fromkeys(("p_a_mw", "p_b_mw", "p_c_mw"), 0.0)
        kind = "wye"
        if ph == "three_phase":
            kw = dict.fromkeys(kw, mw / 3.0)
        elif ph in _WYE:
            kw[_WYE[ph]] = mw
        else:
            kw[_DELTA[ph]] = mw
            kind = "delta"
        pp.create_asymmetric_load(net, bus_idx[bus_of[name]], name=name, type=kind, **kw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp_3ph(net)
    except (pp.LoadflowNotConverged, ValueError, KeyError):
        return PhaseFlow(converged=False)
    return _figures(net)


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
