"""Closed loop: dispatch, AC check, sensitivities fed back, re-solve (real MPC controller)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from controllers.mpc import MpcController
from vpp.grid import scenarios as grid_scenarios
from vpp.grid.loop import (
    SENSITIVITY_FLOOR,
    UNCONTROLLABLE,
    RowMemory,
    controllable_buses,
    correction_rows,
    describe,
    dispatch_ac_feasible,
    validate_result,
)
from vpp.grid.network import GridModel
from vpp.park.config import load_site

warnings.filterwarnings("ignore", message=".*numba.*")


@pytest.fixture(scope="module")
def demo_site():
    return load_site("configs/parks/demo.yaml")


def _run(problem, site, options, max_rounds=3):
    grid = GridModel.from_site(site, options)
    result, loop = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=max_rounds)
    return grid, result, loop


def test_ev_valley_charging_overload_is_corrected(demo_site) -> None:
    problem, site, options = grid_scenarios.ev_valley(demo_site)
    grid, result, loop = _run(problem, site, options)
    first = loop.reports[0]
    assert any(v.element == "T-B05" and v.kind == "trafo_loading" for v in first.violations)
    assert loop.feasible and loop.rounds >= 1
    # The corrected dispatch holds in an independent AC check (pandapower's own runpp).
    final = validate_result(grid, result)
    assert final.ok
    i = grid.element_names("trafo").index("T-B05")
    assert final.flow.trafo_loading_percent[:, i].max() <= 100.0 + 1e-6
    # The fleet still gets its energy, and the fix has a price that the report states.
    ev = sum(s.p_kw.sum() for s in result.assets.values() if s.kind == "ev_charger")
    need = sum(sess.e_needed_kwh for c in problem.ev_chargers for sess in c.sessions)
    assert ev * problem.dt_h * 0.95 == pytest.approx(need, rel=1e-3)
    assert loop.cost_of_fix_cny > 0
    assert [t.element for t in loop.tightened] == ["T-B05"] * len(loop.tightened)
    assert "cost of the fix" in describe(loop)[0]


def test_pv_noon_overvoltage_is_corrected(demo_site) -> None:
    problem, site, options = grid_scenarios.pv_noon(demo_site)
    grid, result, loop = _run(problem, site, options)
    assert loop.reports[0].vm_max_pu.max() > 1.05
    assert loop.feasible
    assert validate_result(grid, result).vm_max_pu.max() <= 1.05 + 1e-9
    available = next(p for p in problem.pv if p.spec.name == "B12-pv").p_available_kw.sum()
    produced = -result.assets["B12-pv"].p_kw.sum()
    assert produced < available - 1.0  # curtailed (or absorbed nearby) to hold the voltage
    assert loop.cost_of_fix_cny > 0
    assert {t.kind for t in loop.tightened} == {"overvoltage"}


def test_inflexible_overload_is_said_plainly_and_least_violating_kept(demo_site) -> None:
    problem, site, options = grid_scenarios.ev_valley(demo_site)
    # A cold store of 2.4 MW that may shed only 35 %: T-B05 (1.6 MVA) cannot carry it.
    curt = tuple(
        dataclasses.replace(c, baseline_kw=np.full(problem.n, 2400.0)) for c in problem.curtailables
    )
    problem = dataclasses.replace(problem, curtailables=curt)
    grid, result, loop = _run(problem, site, options, max_rounds=2)
    assert not loop.feasible
    assert loop.infeasible_elements == ["T-B05"]
    assert any("T-B05" in m for m in loop.messages)
    sev = [r.severity() for r in loop.reports]
    assert validate_result(grid, result).severity() == pytest.approx(min(sev), rel=1e-6)


def test_a_row_no_plan_can_meet_is_named_and_moves_only_the_buses_that_matter(demo_site) -> None:
    """The plan says which limit it could not keep (its slack named after the element, also
    when the model built for fewer rows is re-used), and the row holds the buses of weak
    sensitivity at the plan: the cars elsewhere are not shed to shave a hopeless row."""
    problem, site, options = grid_scenarios.ev_valley(demo_site)
    curt = tuple(
        dataclasses.replace(c, baseline_kw=np.full(problem.n, 2400.0)) for c in problem.curtailables
    )
    problem = dataclasses.replace(problem, curtailables=curt)
    grid, result, _loop = _run(problem, site, options, max_rounds=2)
    assert ("network", "T-B05") in {(r.constraint, r.asset) for r in result.relaxed}
    report = validate_result(grid, result)
    rows, _ = correction_rows(grid, report, problem, result, 1, {})
    assert rows
    for row in rows:
        c = np.abs(row.coeff_per_kw)
        assert np.all((c == 0) | (c >= SENSITIVITY_FLOOR * c.max() - 1e-12)), row.name
    # every car not under T-B05 gets its energy
    b05 = {b for b in problem.buses if "B05" in b}
    for ch in problem.ev_chargers:
        if ch.spec.bus in b05:
            continue
        need = sum(s.e_needed_kwh for s in ch.sessions)
        got = float(result.assets[ch.spec.name].p_kw.sum()) * problem.dt_h * ch.spec.eta
        assert got == pytest.approx(need, rel=1e-3, abs=1e-3), ch.spec.name


def test_an_element_no_decision_moves_gets_no_row_and_the_loop_says_so(demo_site) -> None:
    """T-B05 overloaded by base load alone, with nothing controllable under it: no row (it
    would only add a constant penalty to every plan), a line that says why."""
    problem, site, options = grid_scenarios.ev_valley(demo_site)
    b05 = {b for b in problem.buses if b.startswith("B05")}
    base = tuple(
        dataclasses.replace(b, p_kw=np.asarray(b.p_kw) + (2500.0 if b.bus in b05 else 0.0))
        for b in problem.base_loads
    )
    problem = dataclasses.replace(
        problem,
        base_loads=base,
        curtailables=tuple(c for c in problem.curtailables if c.spec.bus not in b05),
        ev_chargers=tuple(c for c in problem.ev_chargers if c.spec.bus not in b05),
    )
    assert not any(controllable_buses(problem)[problem.bus_index(b)] for b in b05)
    _grid, result, loop = _run(problem, site, options, max_rounds=2)
    assert "T-B05" in {v.element for v in loop.reports[0].violations}
    t_b05 = [t for t in loop.tightened if t.element == "T-B05"]
    assert t_b05 and all(t.reason == UNCONTROLLABLE for t in t_b05)
    assert not [r for r in loop.rows if r.element == "T-B05"]
    assert not [r for r in result.relaxed if r.constraint == "network" and r.asset == "T-B05"]
    assert any("T-B05" in line and "no controllable asset" in line for line in describe(loop))


def test_rows_carried_to_the_next_cycle_save_the_correction_round(demo_site) -> None:
    """A row learnt in one cycle, shifted one step, constrains the next cycle at once: no
    correction round, and the dispatch still holds in the AC check."""
    problem, site, options = grid_scenarios.ev_valley(demo_site)
    grid = GridModel.from_site(site, options)
    memory = RowMemory()
    ctl = MpcController()
    _, first = dispatch_ac_feasible(ctl, problem, grid, memory=memory)
    assert first.rounds >= 1 and memory.rows
    assert all(r.element == "T-B05" for r in memory.rows)
    h = problem.horizon
    nxt = dataclasses.replace(
        problem, horizon=dataclasses.replace(h, start=h.start + h.step)
    )  # same world, one interval later: the carried row's limits move one step
    carried = memory.apply(nxt)
    row, old = carried.network[-1], memory.rows[-1]
    np.testing.assert_array_equal(row.limit[:-1], np.asarray(old.limit)[1:])
    assert np.isinf(row.limit[-1])
    result, second = dispatch_ac_feasible(ctl, nxt, grid, memory=memory)
    assert second.rounds < first.rounds
    assert validate_result(grid, result).ok
    # A row that no longer binds is forgotten.
    slack = dataclasses.replace(memory.rows[0], limit=np.full(problem.n, 1e9))
    memory.learn(dataclasses.replace(nxt, network=(slack,)), result)
    assert memory.rows == ()
