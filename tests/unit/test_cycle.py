"""The cycle: fallbacks when the optimiser fails, the safety layer on what is published."""

from datetime import timedelta

import numpy as np

from controllers.mpc import MpcController
from tests.unit import factory as f
from vpp.park.model import Horizon
from vpp.park.state import PlantState
from vpp.plan.cycle import run_cycle, shift_plan


class _Failing:
    name = "mpc"

    def dispatch(self, problem):
        raise RuntimeError("solver crashed")


class _Driver:
    def __init__(self):
        self.sent = []

    def read_state(self, at):
        return PlantState(at=at, stale_assets=frozenset({"bat"}))

    def apply(self, at, setpoints):
        self.sent.append(setpoints)


def _patched(monkeypatch, problem):
    import vpp.plan.cycle as cyc

    monkeypatch.setattr(cyc.prepare, "horizon_for", lambda site, at: problem.horizon)
    monkeypatch.setattr(cyc.prepare, "build_problem", lambda *a, **k: problem)


class _Forecaster:
    def forecast(self, site, horizon, state):
        return None


def test_failure_falls_back_to_last_plan_then_rule(monkeypatch):
    bat = f.battery()
    p = f.problem(n=8, batteries=[(bat, 50.0)])
    _patched(monkeypatch, p)
    driver = _Driver()
    rep = run_cycle(None, p.horizon.start, driver, _Forecaster(), _Failing())
    assert rep.fallback == "rule" and rep.controller == "rule"
    assert "solver crashed" in rep.errors[0]
    good = MpcController().dispatch(p)
    rep = run_cycle(None, p.horizon.start, driver, _Forecaster(), _Failing(), last_plan=good)
    assert rep.fallback == "last_plan"
    # the stale battery is held at its safe setpoint whatever the plan says
    assert driver.sent[-1]["bat"] == 0.0
    assert (
        any(c.asset == "bat" and "stale" in c.reason for c in rep.clamps)
        or good.setpoints_kw()["bat"] == 0
    )


def test_shift_plan_moves_and_holds_the_tail():
    p = f.problem(n=8, batteries=[(f.battery(), 50.0)])
    plan = MpcController().dispatch(p)
    later = Horizon(p.horizon.start + 3 * p.horizon.step, p.horizon.step, p.horizon.n)
    moved = shift_plan(plan, later)
    np.testing.assert_allclose(moved.p_net_kw[:5], plan.p_net_kw[3:])
    np.testing.assert_allclose(moved.p_net_kw[5:], plan.p_net_kw[-1])
    too_late = Horizon(p.horizon.start + timedelta(days=3), p.horizon.step, p.horizon.n)
    assert shift_plan(plan, too_late) is None


def test_a_stale_battery_is_planned_idle_not_steered_then_held(monkeypatch):
    """A battery whose telemetry is stale is sent 0 kW; the plan must not count on it. Before,
    the LP discharged it under an import limit and the plan's import (under the limit) was not
    what the park drew with the battery held (over it). Now the plan's import is what the park
    draws, and the limit's shortfall shows in the plan instead of being hidden."""
    bat = f.battery()
    # base load 100 kW under a 90 kW import limit: only the battery could keep it
    p = f.problem(n=4, batteries=[(bat, 80.0)], import_max_kw=90.0)
    _patched(monkeypatch, p)
    free = MpcController().dispatch(p)
    assert free.setpoints_kw()["bat"] < -1.0  # steered, it would discharge for the limit
    driver = _Driver()  # reports "bat" stale
    rep = run_cycle(None, p.horizon.start, driver, _Forecaster(), MpcController())
    assert driver.sent[-1]["bat"] == 0.0
    np.testing.assert_allclose(rep.result.assets["bat"].p_kw, 0.0, atol=1e-6)
    # the plan's first-interval import is the base load: what the park draws, battery held
    assert abs(rep.result.p_net_kw[0] - 100.0) < 1e-4
    assert any("import" in r.constraint or "connection" in r.constraint for r in rep.result.relaxed)
