"""AC power flow of the park network: batched solver against pandapower, invariants, golden."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandapower as pp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp.grid.network import GridModel, GridOptions, Limits
from vpp.park.config import load_site

warnings.filterwarnings("ignore", message=".*numba.*")

DEMO = "configs/parks/demo.yaml"


@pytest.fixture(scope="module")
def demo_grid() -> GridModel:
    return GridModel.from_site(load_site(DEMO))


def _random_schedule(grid: GridModel, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    P = np.zeros((T, len(grid.buses)))
    lv = [k for k, b in enumerate(grid.buses) if b.endswith("-LV")]
    P[:, lv] = rng.uniform(-400.0, 1500.0, (T, len(lv)))
    return P, np.maximum(P, 0.0) * 0.33


def check_invariants(flow, v_lo: float = 0.8, v_hi: float = 1.2) -> None:
    """Physics of every converged step: power balance and voltages in physical sense."""
    ok = flow.converged
    assert ok.all()
    # Everything the external grid supplies is consumed by the loads or lost in the network.
    np.testing.assert_allclose(flow.p_ext_kw, flow.p_load_kw + flow.losses_kw, atol=1e-3)
    assert (flow.losses_kw > -1e-6).all()
    vm = flow.vm_pu[ok]
    assert np.isfinite(vm).all() and (vm > v_lo).all() and (vm < v_hi).all()
    assert (flow.line_loading_percent >= 0).all() and (flow.trafo_loading_percent >= 0).all()


def test_demo_network_is_built_from_the_configuration(demo_grid: GridModel) -> None:
    net = demo_grid.net
    assert demo_grid.fast
    assert len(net.bus) == 27 and len(net.line) == 14 and len(net.trafo) == 12
    t05 = net.trafo[net.trafo.name == "T-B05"].iloc[0]
    assert t05.sn_mva == pytest.approx(1.6) and t05.vn_lv_kv == pytest.approx(0.4)
    assert set(net.sgen.name) >= {"B12-pv", "B01-pv"} and "B02-bess" in set(net.storage.name)
    assert (net.load.name == "vpp:B05-LV").sum() == 1


def test_batched_flow_equals_plain_runpp(demo_grid: GridModel) -> None:
    P, Q = _random_schedule(demo_grid, 12, seed=1)
    fast = demo_grid.power_flow(P, Q)
    ref = demo_grid.power_flow_runpp(P, Q)
    np.testing.assert_allclose(fast.vm_pu, ref.vm_pu, atol=1e-6)
    np.testing.assert_allclose(fast.line_loading_percent, ref.line_loading_percent, atol=1e-4)
    np.testing.assert_allclose(fast.trafo_loading_percent, ref.trafo_loading_percent, atol=1e-4)
    np.testing.assert_allclose(fast.p_ext_kw, ref.p_ext_kw, atol=1e-3)
    np.testing.assert_allclose(fast.losses_kw, ref.losses_kw, atol=1e-3)
    check_invariants(ref)


def test_recycle_gives_the_same_as_plain_runpp(demo_grid: GridModel) -> None:
    P, Q = _random_schedule(demo_grid, 4, seed=2)
    a = demo_grid.power_flow_runpp(P, Q)
    b = demo_grid.power_flow_runpp(P, Q, recycle=True)
    np.testing.assert_allclose(a.vm_pu, b.vm_pu, atol=1e-9)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.0, 1.5))
def test_invariants_hold_for_any_schedule(demo_grid: GridModel, seed: int, scale: float) -> None:
    P, Q = _random_schedule(demo_grid, 8, seed)
    check_invariants(demo_grid.power_flow(P * scale, Q * scale))


def test_validation_names_the_element_and_the_limits_are_configurable(
    demo_grid: GridModel,
) -> None:
    P = np.zeros((3, len(demo_grid.buses)))
    P[1, demo_grid.buses.index("B05-LV")] = 2000.0  # 2 MW behind a 1.6 MVA transformer
    rep = demo_grid.validate({b: P[:, k] for k, b in enumerate(demo_grid.buses)})
    assert {(v.step, v.element, v.kind) for v in rep.violations} == {(1, "T-B05", "trafo_loading")}
    assert rep.trafo_loading_max_percent[1] > 120
    assert rep.losses_kw[1] > rep.losses_kw[0] > 0
    strict = demo_grid.validate({"B05-LV": P[:, demo_grid.buses.index("B05-LV")]},
                                limits=Limits(0.99, 1.01, 100.0))  # fmt: skip
    assert any(v.kind == "undervoltage" and v.element == "B05-LV" for v in strict.violations)


def test_reverse_flow_is_reported(demo_grid: GridModel) -> None:
    rep = demo_grid.validate({"B12-LV": np.array([-800.0, 100.0])})
    assert rep.reverse_flow_kw[0] > 700 and rep.reverse_flow_kw[1] == 0
    assert rep.p_ext_kw[0] == pytest.approx(-800 + rep.losses_kw[0], abs=1e-6)


def test_sensitivities_match_finite_differences(demo_grid: GridModel) -> None:
    P, Q = _random_schedule(demo_grid, 1, seed=3)
    base = demo_grid.power_flow(P, Q)
    sens = demo_grid.sensitivity(base.V[0])
    for bus in ("B05-LV", "B12-LV", "B02-LV"):
        k = demo_grid.buses.index(bus)
        dP = P.copy()
        dP[0, k] += 1.0  # kW, Q unchanged
        d = demo_grid.power_flow(dP, Q)
        np.testing.assert_allclose(
            sens.vm_pu[:, k], d.vm_pu[0] - base.vm_pu[0], rtol=1e-3, atol=1e-9
        )
        np.testing.assert_allclose(
            sens.trafo_percent[:, k],
            d.trafo_loading_percent[0] - base.trafo_loading_percent[0],
            rtol=1e-2,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            sens.line_percent[:, k],
            d.line_loading_percent[0] - base.line_loading_percent[0],
            rtol=1e-2,
            atol=1e-6,
        )


def test_golden_two_bus_line_matches_the_closed_form() -> None:
    """One 10 kV cable feeding one load: |V2| solves a quadratic, losses are I^2 R."""
    r_ohm, x_ohm, p_mw, q_mvar, vn = 0.8, 0.6, 3.0, 1.0, 10.0
    net = pp.create_empty_network(sn_mva=1.0)
    b1 = pp.create_bus(net, vn, name="S")
    b2 = pp.create_bus(net, vn, name="L")
    pp.create_ext_grid(net, b1, vm_pu=1.0)
    pp.create_line_from_parameters(net, b1, b2, 1.0, r_ohm, x_ohm, 0.0, max_i_ka=0.2, name="cable")
    grid = GridModel(net, buses=["L"], options=GridOptions(detailed=False))
    flow = grid.power_flow(np.array([[p_mw * 1e3]]), np.array([[q_mvar * 1e3]]))
    # Closed form (per unit on 10 kV, 1 MVA): V2^4 + (2(PR + QX) - V1^2) V2^2 + S^2 Z^2 = 0.
    zb = vn**2 / 1.0
    r, x, p, q = r_ohm / zb, x_ohm / zb, p_mw, q_mvar
    b = 2 * (p * r + q * x) - 1.0
    c = (p * p + q * q) * (r * r + x * x)
    v2 = math.sqrt((-b + math.sqrt(b * b - 4 * c)) / 2)
    losses_mw = (p * p + q * q) / v2**2 * r
    i_ka = math.hypot(p_mw, q_mvar) / (math.sqrt(3) * v2 * vn)
    assert flow.vm_pu[0, 1] == pytest.approx(v2, abs=1e-9)
    assert flow.losses_kw[0] == pytest.approx(losses_mw * 1e3, rel=1e-7)
    assert flow.line_loading_percent[0, 0] == pytest.approx(i_ka / 0.2 * 100, rel=1e-7)
    ref = grid.power_flow_runpp(np.array([[p_mw * 1e3]]), np.array([[q_mvar * 1e3]]))
    assert ref.vm_pu[0, 1] == pytest.approx(v2, abs=1e-8)


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0, 6.0])
def test_chord_then_newton_equals_full_newton(demo_grid: GridModel, scale: float) -> None:
    """The chord iterations on the flat start's Jacobian (with Newton-Raphson taking over
    where they do not contract) reach the same solution as Newton-Raphson alone, from light
    load to loads where the chord gives up and hands over."""
    fast = demo_grid._fast
    P, Q = _random_schedule(demo_grid, 48, seed=7)
    S = fast.injections(scale * P, scale * Q)
    V_ref, ok_ref, _ = fast._full_newton(S, np.tile(fast.V0, (len(S), 1)))
    V, ok, _ = fast._newton(S)
    np.testing.assert_array_equal(ok, ok_ref)
    np.testing.assert_allclose(V[ok], V_ref[ok], atol=1e-9)


def test_report_lists_violations_step_by_step_in_kind_order(demo_grid: GridModel) -> None:
    """The whole-array violation search gives the step-by-step list: steps in order, within a
    step over-, undervoltage, line, then trafo, elements in table order (a step that did not
    converge: one entry)."""
    P, Q = _random_schedule(demo_grid, 24, seed=3)
    flow = demo_grid.power_flow(4.0 * P, 4.0 * Q)
    assert 0 < (~flow.converged).sum() < 24  # steps that did not converge are listed too
    lim = Limits(v_min_pu=0.97, v_max_pu=1.0, loading_max_percent=60.0)
    got = [(v.step, v.element, v.kind) for v in demo_grid.report(flow, lim).violations]
    want = []
    net = demo_grid.net
    for t in range(24):
        if not flow.converged[t]:
            want.append((t, "network", "not_converged"))
            continue
        buses = list(zip(net.bus.name, flow.vm_pu[t], strict=True))
        want += [(t, str(n), "overvoltage") for n, x in buses if x > 1.0 + 1e-9]
        want += [(t, str(n), "undervoltage") for n, x in buses if x < 0.97 - 1e-9]
        for kind, arr, names in (
            ("line_loading", flow.line_loading_percent[t], net.line.name),
            ("trafo_loading", flow.trafo_loading_percent[t], net.trafo.name),
        ):
            want += [(t, str(n), kind) for n, x in zip(names, arr, strict=True) if x > 60.0 + 1e-9]
    assert len(want) > 24  # the case has violations of several kinds
    assert {k for _, _, k in want} >= {"undervoltage", "line_loading", "trafo_loading"}
    assert got == want
