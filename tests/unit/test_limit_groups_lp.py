"""Limit-group and phase rows in the dispatch LP (controllers.group_block, vpp.plan.group_rows).

A pod of 8 chargers on an 80 A sub-circuit at 400 V (55.4 kW) and six chargers on line pairs
under a 40 A per-phase limit: the plan keeps every row (the invariants), the true phasor
currents stay within the limit, the rows show as binding; without groups (or with groups that
cannot bind) the plan is the one of before, and a group over one bus equals a bus limit.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers import group_block, invariants
from controllers.mpc import MpcController
from controllers.phase_rows import phase_currents_a
from controllers.problem import DispatchProblem, GroupRow
from tests.unit import factory as f
from vpp.park.config import load_site
from vpp.park.model import Assets, BaseLoad, EvCharger, LimitGroup, Profile
from vpp.plan.group_rows import group_rows

ROOT = Path(__file__).resolve().parents[2]
N = 8
POD = [EvCharger(f"pod-{i}", "b1", 11.0, eta=1.0) for i in range(8)]
PAIRS = ["AB", "AB", "AB", "BC", "CA", "CA"]
LINE = [EvCharger(f"lp-{i}", "b1", 7.4, eta=1.0, phase=ph) for i, ph in enumerate(PAIRS)]
BASE = BaseLoad("base", "b1", Profile("simbench:G1-C"))
GROUPS = (
    LimitGroup("pod", assets=tuple(c.name for c in POD), current_max_a=80.0, voltage_v=400.0),
    LimitGroup(
        "pairs", assets=tuple(c.name for c in LINE), phase_current_max_a=40.0, voltage_v=400.0
    ),
)


@pytest.fixture(scope="module")
def site():
    demo = load_site(ROOT / "configs" / "parks" / "demo.yaml")
    return dataclasses.replace(
        demo, assets=Assets(ev_chargers=tuple(POD + LINE)), limit_groups=GROUPS
    )


def _problem(rows=(), bus_max=None) -> DispatchProblem:
    evs = [(c, [f.session(f"s-{c.name}", 0, N, 200.0, c.p_max_kw)]) for c in POD + LINE]
    p = f.problem(n=N, step_h=0.25, price=[0.3] * N, base_kw=[5.0] * N, evs=evs)
    return dataclasses.replace(p, group_rows=tuple(rows), bus_import_max_kw=bus_max)


def test_pod_and_phase_rows_hold_and_bind(site):
    rows = group_rows(site, N, lambda name: np.zeros(N))
    p = _problem(rows)
    r = MpcController().dispatch(p)
    assert invariants.check(p, r) == []
    assert not [x for x in r.relaxed if x.constraint == group_block.RELAXATION]
    pod = sum(r.assets[c.name].p_kw for c in POD)
    assert pod.max() == pytest.approx(math.sqrt(3) * 0.4 * 80, abs=1e-3)  # 55.43 kW, binding
    for k in range(N):
        members = [(c.phase, c.voltage_v, float(r.assets[c.name].p_kw[k])) for c in LINE]
        worst = max(abs(i) for i in phase_currents_a(members).values())
        assert worst <= 40.0 + 1e-4
        assert worst >= 0.96 * 40.0  # the chargers want more: the phase row binds
    bind = {(b["group"], b["kind"]) for b in group_block.binding(p, r)}
    assert ("pod", "import") in bind
    assert any(g == "pairs" and kind.startswith("phase_") for g, kind in bind)


def test_aggregated_evs_keep_the_group_rows(site):
    p = _problem(group_rows(site, N, lambda name: np.zeros(N)))
    r = MpcController(ev_aggregate=True).dispatch(p)
    assert invariants.check(p, r) == []
    assert sum(r.assets[c.name].p_kw for c in POD).max() <= math.sqrt(3) * 0.4 * 80 + 1e-3


def test_loose_groups_change_nothing(site):
    loose = dataclasses.replace(
        site,
        limit_groups=(LimitGroup("all", buses=("b1",), import_max_kw=1e4, export_max_kw=1e4),),
    )
    before = MpcController().dispatch(_problem())
    after = MpcController().dispatch(_problem(group_rows(loose, N, lambda name: np.zeros(N))))
    assert after.objective_cny == pytest.approx(before.objective_cny, rel=1e-9, abs=1e-6)
    for name, s in before.assets.items():
        np.testing.assert_allclose(after.assets[name].p_kw, s.p_kw, atol=1e-6)


def test_a_group_over_a_bus_equals_the_bus_limit(site):
    """Two paths to one limit: the group row and the bus row give the same plan cost."""
    one = dataclasses.replace(
        site,
        assets=dataclasses.replace(site.assets, base_loads=(BASE,)),
        limit_groups=(LimitGroup("b1", buses=("b1",), import_max_kw=60.0),),
    )
    base = lambda name: np.full(N, 5.0)  # noqa: E731 - the base load on b1, a fixed part
    rows = group_rows(one, N, base)
    g = MpcController().dispatch(_problem(rows))
    b = MpcController().dispatch(_problem(bus_max=np.array([60.0])))
    assert g.objective_cny == pytest.approx(b.objective_cny, rel=1e-7)
    np.testing.assert_allclose(g.bus_p_kw["b1"], b.bus_p_kw["b1"], atol=1e-5)
    assert g.bus_p_kw["b1"].max() == pytest.approx(60.0, abs=1e-4)


def test_an_impossible_row_is_relaxed_and_named():
    p = _problem()
    ev = p.ev_chargers[0]
    rows = (GroupRow("tight", "import", (ev.spec.name,), (1.0,), 1.0, np.full(N, 3.0)),)
    p = dataclasses.replace(p, group_rows=rows)
    r = MpcController().dispatch(p)
    relaxed = [x for x in r.relaxed if x.constraint == group_block.RELAXATION]
    assert [x.asset for x in relaxed] == ["tight/import"]
    assert relaxed[0].amount == pytest.approx(2.0, abs=1e-4)  # charger at 0, 3 - 1 kW over
    assert r.assets[ev.spec.name].p_kw.max() == pytest.approx(0.0, abs=1e-6)
    assert invariants.check(p, r) == []


def test_unknown_member_is_refused():
    p = dataclasses.replace(
        _problem(), group_rows=(GroupRow("g", "import", ("nope",), (1.0,), 5.0),)
    )
    with pytest.raises(ValueError, match="limit group g: asset 'nope' is not dispatched"):
        MpcController().dispatch(p)


def _with_base(site, *groups: LimitGroup):
    """The site with the base load BASE and only ``groups``."""
    assets = dataclasses.replace(site.assets, base_loads=(BASE,))
    return dataclasses.replace(site, assets=assets, limit_groups=groups)


POD_WITH_BASE = LimitGroup("pod", assets=("pod-0", "base"), import_max_kw=3.0, export_max_kw=1.0)


def test_base_loads_are_fixed_parts(site):
    with_base = _with_base(site, POD_WITH_BASE)
    rows = group_rows(with_base, N, lambda name: np.full(N, 2.0))
    assert [(r.kind, r.assets, r.coeff, r.limit_kw) for r in rows] == [
        ("import", ("pod-0",), (1.0,), 3.0),
        ("export", ("pod-0",), (-1.0,), 1.0),
    ]
    np.testing.assert_allclose(rows[0].fixed_kw, 2.0)
    np.testing.assert_allclose(rows[1].fixed_kw, -2.0)


def test_the_fixed_part_carries_the_forecast_margin_on_the_side_that_loads_the_row(site):
    with_base = _with_base(
        site,
        POD_WITH_BASE,
        LimitGroup("ph", assets=("lp-0", "base"), phase_current_max_a=40.0, voltage_v=400.0),
    )
    rows = group_rows(
        with_base,
        N,
        lambda n: np.full(N, 2.0),
        lambda n: np.full(N, 0.5),
        lambda n: np.full(N, 0.3),
    )
    imp, exp = rows[0], rows[1]
    np.testing.assert_allclose(imp.fixed_kw, 2.5)  # P50 + the spread above it
    np.testing.assert_allclose(exp.fixed_kw, -1.7)  # export: the load may come in lower
    plain = group_rows(with_base, N, lambda n: np.full(N, 2.0))
    for with_margin, without in zip(rows[2:], plain[2:], strict=True):
        # every facet is at least as tight as without a margin, and tighter where the base
        # load moves it
        assert np.all(with_margin.fixed_kw >= without.fixed_kw - 1e-12)
    assert any(np.all(a.fixed_kw > b.fixed_kw) for a, b in zip(rows[2:], plain[2:], strict=True))


@settings(max_examples=40, deadline=None)
@given(
    spread=st.floats(0.0, 20.0),
    error=st.floats(-1.0, 1.0),
)
def test_a_margin_that_covers_the_error_keeps_the_realised_group_within_its_limit(
    site, spread, error
):
    """The plan's decisions with the true base load (P50 + an error within the spread) keep
    the group's import row: the margin is what makes the plan hold when the forecast errs."""
    with_base = _with_base(
        site, LimitGroup("pod", assets=(*(c.name for c in POD), "base"), import_max_kw=60.0)
    )
    p50 = 10.0
    rows = group_rows(with_base, N, lambda n: np.full(N, p50), lambda n: np.full(N, spread))
    r = MpcController().dispatch(_problem(rows))
    assert r.ok
    true_base = p50 + error * spread
    ev = sum(np.asarray(r.assets[c.name].p_kw) for c in POD)
    assert np.all(ev + true_base <= 60.0 + 1e-5)


def test_binding_groups_reach_the_plans_binding_list(site):
    """The network page's binding limits (api.ui.network_view) name the groups that bind."""
    from types import SimpleNamespace

    from api.ui.network_view import _plan_limits

    p = _problem(group_rows(site, N, lambda name: np.zeros(N)))
    r = MpcController().dispatch(p)
    got = {(b["element"], b["kind"]): b for b in _plan_limits(SimpleNamespace(problem=p, plan=r))}
    pod = got[("pod", "group_import")]
    assert pod["value"] == pytest.approx(55.4, abs=0.05) and pod["limit"] == pod["value"]
    assert pod["intervals"] == N and not pod["broken"] and pod["unit"] == "kW"
    assert any(e == "pairs" and k.startswith("group_phase_") for e, k in got)
    assert all(
        b["utilisation"] == pytest.approx(1.0, abs=1e-3)
        for b in got.values()
        if "group" in b["kind"]
    )
