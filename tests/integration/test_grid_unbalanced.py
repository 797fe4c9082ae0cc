"""The unbalanced AC check (vpp.grid.unbalanced, pandapower's runpp_3ph) in the planner's loop
and in the realised check: a park whose chargers hang on one phase, where the balanced flow
sees a transformer at about 72 % and its phase A runs at about 115 %."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from controllers.mpc import MpcController
from vpp.grid import scenarios as grid_scenarios
from vpp.grid import unbalanced
from vpp.grid.loop import describe, dispatch_ac_feasible, stressed_reports, validate_result
from vpp.grid.network import GridModel
from vpp.park.config import load_site
from vpp.sim import realised

warnings.filterwarnings("ignore", message=".*numba.*")
ROOT_DEMO = "configs/parks/demo.yaml"


@pytest.fixture(scope="module")
def demo():
    return load_site(ROOT_DEMO)


@pytest.fixture(scope="module")
def night(demo):
    problem, site, options = grid_scenarios.single_phase_night(demo)
    return problem, site, GridModel.from_site(site, options)


def _trafo_phase_loading(site, result, steps) -> list[float]:
    """T-B01's worst-phase loading per step, from the module's one-off flow (a network built
    afresh each call, not the loop's reused one)."""
    sched = {n: np.asarray(a.p_kw, dtype=float) for n, a in result.assets.items()}
    out = []
    for t in steps:
        f = unbalanced.phase_flow(site, {n: v[t] for n, v in sched.items()})
        assert f.converged
        out.append(f.trafo_loading_percent["T-B01"])
    return out


def test_when_the_check_applies(demo):
    assert not unbalanced.applies(demo)  # every charger three-phase
    one_phase = grid_scenarios.single_phase_site(demo)
    assert unbalanced.applies(one_phase)
    off = dataclasses.replace(
        one_phase, network=dataclasses.replace(one_phase.network, unbalanced="off")
    )
    assert not unbalanced.applies(off)
    on = dataclasses.replace(demo, network=dataclasses.replace(demo.network, unbalanced="on"))
    assert unbalanced.applies(on)


def test_the_balanced_loop_cannot_see_a_phase_overload(night):
    problem, site, grid = night
    result, loop = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=3)
    assert loop.feasible and loop.rounds == 0  # balanced: nothing to fix
    i = grid.element_names("trafo").index("T-B01")
    assert loop.final.flow.trafo_loading_percent[:, i].max() < 80.0
    assert max(_trafo_phase_loading(site, result, range(4))) > 105.0  # phase A over


def test_the_unbalanced_loop_holds_every_phase_and_still_serves_the_cars(night):
    problem, site, grid = night
    phase = unbalanced.PhaseCheck(site)
    result, loop = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=3, phase=phase)
    first = loop.reports[0]
    assert any(
        v.element == "T-B01" and v.kind == "trafo_loading" and v.value > 105.0
        for v in first.violations
    )
    assert first.unbalance[("T-B01", "trafo_loading")] > 1.4
    assert any("unbalanced flow: T-B01" in m for m in first.messages)
    assert loop.feasible and loop.rounds >= 1
    assert [t.element for t in loop.tightened] == ["T-B01"] * len(loop.tightened)
    assert loop.cost_of_fix_cny > 0
    # Every step the cars charge holds on every phase, by an independent flow.
    assert max(_trafo_phase_loading(site, result, range(16))) <= 100.0 + 0.5
    # And the cars still get their energy: the fix spreads the charging over the night.
    ev_kwh = sum(a.p_kw.sum() for a in result.assets.values() if a.kind == "ev_charger")
    need = sum(s.e_needed_kwh for c in problem.ev_chargers for s in c.sessions)
    assert ev_kwh * problem.dt_h * 0.95 == pytest.approx(need, rel=1e-3)
    assert "cost of the fix" in describe(loop)[0]


def test_the_reused_network_gives_the_flow_of_a_fresh_one(night):
    """Differential: PhaseCheck writes each step into one network; the result equals a flow on
    a network built afresh for that step, so a step after a different one is not polluted."""
    _, site, _ = night
    phase = unbalanced.PhaseCheck(site)
    rng = np.random.default_rng(3)
    names = [c.name for c in site.assets.ev_chargers if c.bus == "B01-LV"] + ["B01-base"]
    for _ in range(3):
        p = {n: float(rng.uniform(0, 7)) for n in names[:-1]} | {"B01-base": 400.0}
        phase.flow({n: 0.0 for n in names} | {"B01-base": 900.0})  # a different step first
        got, want = phase.flow(p), unbalanced.phase_flow(site, p)
        assert got.trafo_loading_percent["T-B01"] == pytest.approx(
            want.trafo_loading_percent["T-B01"], rel=1e-6
        )
        assert got.bus_vm_pu["B01-LV"] == pytest.approx(want.bus_vm_pu["B01-LV"], abs=1e-6)


def test_the_checks_under_the_error_bounds_take_the_plans_unbalance(night):
    """A stressed (balanced) check of the plan with every bus drawing more flags T-B01 where
    its loading times the unbalance found in the plan exceeds the limit."""
    problem, _, grid = night
    result, _ = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=0)
    up = np.zeros((len(problem.buses), problem.n))
    up[problem.buses.index("B01-LV"), :] = 50.0
    p = dataclasses.replace(problem, bus_error_up_kw=up, bus_error_down_kw=np.zeros_like(up))
    (stress,) = stressed_reports(grid, result, p)
    assert not any(v.element == "T-B01" for v in stress.violations)
    unbalanced.apply_unbalance(stress, {("T-B01", "trafo_loading"): 1.6})
    i = grid.element_names("trafo").index("T-B01")
    over = np.flatnonzero(stress.flow.trafo_loading_percent[:, i] * 1.6 > 100.0 + 1e-9)
    got = sorted(v.step for v in stress.violations if v.element == "T-B01")
    assert got == over.tolist() and got


def test_the_realised_check_counts_phase_violations_and_says_why(night):
    """What the park drew, checked per phase: the unconstrained plan's charging, drawn as
    planned, is over on phase A only; the realised figures say so and name the cause."""
    problem, site, grid = night
    result, _ = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=0)
    assert validate_result(grid, result).ok  # balanced: within every limit
    n = 8
    bus = {b: np.asarray(v, dtype=float)[:n] for b, v in result.bus_p_kw.items()}
    sched = {a: np.asarray(s.p_kw, dtype=float)[:n] for a, s in result.assets.items()}
    times = problem.horizon.times()[:n]
    zeros = {b: np.zeros(n) for b in bus}
    plans = realised.AppliedPlans(bus, zeros, zeros)
    done = realised.check(site, bus, lambda name: sched.get(name, np.zeros(n)), times, plans)
    assert done.checked and done.violation_steps and "runpp_3ph" in done.note
    row = next(r for r in done.by_element if r["element"] == "T-B01")
    assert row["kind"] == "trafo_loading" and row["worst"] > 105.0
    assert row["intervals_phase_unbalance"] == row["intervals"]
    assert "one phase" in row["why_worst"]
    assert done.trafo_loading_max_percent.max() == pytest.approx(row["worst"])


def test_a_closed_loop_on_a_single_phase_park_runs_with_the_unbalanced_check(demo):
    """`vpp simulate --grid` on the single-phase variant: two hours, the realised check per
    phase; every realised phase loading is in the KPIs' figures."""
    from vpp.sim.closed_loop import simulate

    site = grid_scenarios.single_phase_site(demo)
    start = datetime(2026, 7, 15, 8, 0, tzinfo=ZoneInfo(site.location.tz))
    r = simulate(site, start, 2 / 24, "mpc", grid=True)
    assert r.realised_grid.checked and "runpp_3ph" in r.realised_grid.note
    assert len(r.realised_grid.trafo_loading_max_percent) == 8
    assert r.kpis["grid_violation_steps"] is not None


def test_vpp_grid_check_runs_the_unbalanced_flow_on_a_single_phase_park(night, tmp_path, capsys):
    """`vpp grid check` on a park file whose B01 chargers are on phase A (`phase: A` in their
    group): the schedule the balanced loop accepts is reported over on a phase, exit 1."""
    import json
    from pathlib import Path

    from vpp.cli import main

    demo_yaml = Path(ROOT_DEMO).resolve()
    text = demo_yaml.read_text(encoding="utf-8")
    text = text.replace("  - prefix: B01-EV\n", "  - prefix: B01-EV\n    phase: A\n", 1)
    # The park file in its own folder, its tariff and carbon files where it looks for them.
    (tmp_path / "parks").mkdir()
    for sub in ("tariffs", "carbon"):
        (tmp_path / sub).symlink_to(demo_yaml.parents[1] / sub)
    park = tmp_path / "parks" / "single_phase.yaml"
    park.write_text(text, encoding="utf-8")
    problem, _, grid = night
    result, _ = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=0)
    sched = {
        "bus_p_kw": {b: np.asarray(v).tolist() for b, v in result.bus_p_kw.items()},
        "assets": {
            n: {"kind": a.kind, "bus": a.bus, "p_kw": np.asarray(a.p_kw)[:8].tolist()}
            for n, a in result.assets.items()
        },
    }
    sched["bus_p_kw"] = {b: v[:8] for b, v in sched["bus_p_kw"].items()}
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(sched), encoding="utf-8")
    rc = main(["grid", "check", "--config", str(park), "--schedule", str(path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "unbalanced flow" in out
    assert "VIOLATION T-B01: trafo_loading" in out
