"""The cycle's computation in a worker process (what ``vpp run`` does): the service process
reads the plant, stores and publishes, and computes nothing itself unless the worker fails;
then the fallbacks run in the service (the last plan shifted), and a fresh worker takes over
at the next cycle."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import numpy as np
import pytest

from controllers.mpc import MpcController
from tests.service_kit import T0, make_runtime, small_site
from vpp.park.profiles import ProfileForecaster
from vpp.park.state import PlantState
from vpp.runtime.planner import InlinePlanner, PlannerSpec, PlanRequest
from vpp.runtime.planner_process import ProcessPlanner
from vpp.store import repo

FAIL_ENV = "VPP_TEST_PLANNER_FAIL"


class EnvFailingController:
    """The MPC, failing in every process started while ``VPP_TEST_PLANNER_FAIL=1``."""

    name = "mpc"

    def __init__(self):
        self.inner = MpcController()
        self.fail = os.environ.get(FAIL_ENV) == "1"

    def dispatch(self, problem):
        if self.fail:
            raise RuntimeError("solver failure injected in the planner process")
        return self.inner.dispatch(problem)


class CountingForecaster(ProfileForecaster):
    """Counts the forecasts made in the service's process."""

    def __init__(self):
        self.calls = 0

    def forecast(self, site, horizon, state):
        self.calls += 1
        return super().forecast(site, horizon, state)


@pytest.fixture
def planner():
    spec = PlannerSpec(
        small_site(),
        controller="tests.e2e.test_planner_process:EnvFailingController",
        ac_validation=False,
    )
    p = ProcessPlanner(spec)
    p.start()
    yield p
    p.close()


def _last(rt) -> dict:
    with rt.engine.connect() as conn:
        return repo.last_cycle(conn)


@pytest.mark.slow
def test_worker_plans_and_the_service_only_stores_and_publishes(tmp_path, planner, monkeypatch):
    fc = CountingForecaster()
    rt = make_runtime(f"sqlite:///{tmp_path / 'w.sqlite3'}", planner=planner, forecaster=fc)
    first = rt.run_cycle()
    assert first.fallback is None and first.status == "optimal"
    assert fc.calls == 0  # forecast, prepare and dispatch ran in the worker
    run = _last(rt)
    assert {"state_s", "forecast_s", "dispatch_s", "planner_s", "ipc_s", "store_s"} <= set(
        run["timings_s"]
    )
    inline = InlinePlanner(rt.site, ProfileForecaster(), MpcController()).plan(
        PlanRequest(T0, PlantState(at=T0))
    )
    assert first.plan.objective_cny == pytest.approx(inline.report.result.objective_cny, 1e-6)
    with rt.engine.connect() as conn:  # the plan and forecasts stored from the worker's JSON
        back = repo.plan_from_json(repo.latest_plan(conn)["body"])
        stored = repo.forecasts_of(conn, first.cycle_id)
    np.testing.assert_allclose(back.p_net_kw, first.plan.p_net_kw, atol=1e-5)
    assert len(stored) == len(first.forecasts.p50)
    assert isinstance(stored[0]["p50_kw"], list)

    # A fresh worker whose solver fails: it asks for the last plan it did not make, and
    # shifts it itself.
    monkeypatch.setenv(FAIL_ENV, "1")
    os.kill(planner.worker.pid(), signal.SIGKILL)
    planner.worker._proc.join(5)
    rt.clock.set(T0 + timedelta(minutes=15))
    cur = rt.run_cycle()
    assert cur.fallback == "last_plan" and cur.status == "shifted"
    assert "injected in the planner process" in _last(rt)["errors"][0]
    assert fc.calls == 0 and planner.worker.starts == 2


@pytest.mark.slow
def test_worker_time_out_is_killed_and_the_service_falls_back(tmp_path, planner):
    fc = CountingForecaster()
    rt = make_runtime(f"sqlite:///{tmp_path / 't.sqlite3'}", planner=planner, forecaster=fc)
    assert rt.run_cycle().fallback is None
    pid = planner.worker.pid()
    planner.timeout_s = 0.001  # a cycle that hangs
    rt.clock.set(T0 + timedelta(minutes=15))
    cur = rt.run_cycle()
    assert cur.fallback == "last_plan" and cur.status == "shifted"
    assert fc.calls == 1  # the fallback's problem was built here
    errors = _last(rt)["errors"]
    assert "SolveTimeoutError" in errors[0] and "planner" in errors[0]
    assert planner.worker.pid() is None  # killed
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    planner.timeout_s = None  # a fresh worker plans again, from the shifted plan
    rt.clock.set(T0 + timedelta(minutes=30))
    assert rt.run_cycle().fallback is None
    assert planner.worker.starts == 2 and fc.calls == 1
