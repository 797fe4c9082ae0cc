"""Reliability of the runtime: solver failure -> fallback, stale telemetry -> safe hold,
restart recovery, telemetry far from the plan -> re-solve, clean shutdown."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

from controllers.mpc import MpcController
from tests.service_kit import T0, make_runtime, small_site
from vpp.park.model import DrStatus, EvSession
from vpp.runtime.planner_process import ProcessController
from vpp.store import repo
from vpp.store.codec import dr_from_json


class FlakyController:
    """The MPC, except when told to fail (a solver crash or time-out)."""

    name = "mpc"

    def __init__(self):
        self.inner, self.fail, self.delay_s = MpcController(), False, 0.0

    def dispatch(self, problem):
        time.sleep(self.delay_s)
        if self.fail:
            raise TimeoutError("solver time limit reached (injected)")
        return self.inner.dispatch(problem)


def test_solver_failure_falls_back_to_last_plan_then_rule(tmp_path):
    ctl = FlakyController()
    ctl.fail = True
    rt = make_runtime(f"sqlite:///{tmp_path / 'a.sqlite3'}", controller=ctl)
    first = rt.run_cycle()
    assert first.fallback == "rule"  # no plan to shift yet
    ctl.fail = False
    rt.clock.set(T0 + timedelta(minutes=15))
    assert rt.run_cycle().fallback is None
    ctl.fail = True
    rt.clock.set(T0 + timedelta(minutes=30))
    cur = rt.run_cycle()
    assert cur.fallback == "last_plan" and cur.status == "shifted"
    with rt.engine.connect() as conn:
        runs = repo.cycles(conn, 3)
    assert [r["fallback"] for r in runs] == ["last_plan", None, "rule"]
    assert "injected" in runs[0]["errors"][0]
    assert 'fallback="last_plan"' in rt.metrics.render().decode()


def test_solver_process_time_out_is_killed_and_falls_back(tmp_path):
    pc = ProcessController()
    try:
        rt = make_runtime(f"sqlite:///{tmp_path / 'p.sqlite3'}", controller=pc)
        assert rt.run_cycle().fallback is None
        pc.timeout_s = 0.001  # a solve that hangs
        rt.clock.set(T0 + timedelta(minutes=15))
        cur = rt.run_cycle()
        assert cur.fallback == "last_plan"
        with rt.engine.connect() as conn:
            assert "SolveTimeoutError" in repo.last_cycle(conn)["errors"][0]
        pc.timeout_s = None  # a fresh worker solves again
        rt.clock.set(T0 + timedelta(minutes=30))
        assert rt.run_cycle().fallback is None
    finally:
        pc.close()


def test_stale_telemetry_holds_the_asset_safe(tmp_path):
    rt = make_runtime(f"sqlite:///{tmp_path / 'b.sqlite3'}", stale_after_s=600)
    rt.ingest([{"asset": "B02-bess", "ts": T0 - timedelta(hours=1), "p_kw": 0.0, "e_kwh": 1000}])
    rt.ingest([{"asset": "B04-ups-bess", "ts": T0 - timedelta(minutes=5), "p_kw": 0.0}])
    cur = rt.run_cycle()
    assert cur.setpoints_kw["B02-bess"] == 0.0  # storage idles when its state is unknown
    with rt.engine.connect() as conn:
        run = repo.cycle(conn, cur.cycle_id)
    assert run["stale_assets"] == ["B02-bess"]
    assert any(c["asset"] == "B02-bess" and "stale" in c["reason"] for c in run["clamps"])


def test_restart_brings_back_plan_dr_events_and_ev_sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    site = small_site()
    ev = EvSession("car-1", site.assets.ev_chargers[0].name, T0, T0 + timedelta(hours=6), 30.0)
    site = dataclasses.replace(site, ev_sessions=(ev,))
    rt = make_runtime(url, site=site)
    with rt.engine.begin() as conn:
        body = {
            "event_id": "E-R",
            "direction": "peak_shaving",
            "windows": [
                {
                    "start": (T0 + timedelta(hours=1)).isoformat(),
                    "end": (T0 + timedelta(hours=2)).isoformat(),
                }
            ],
            "requested_kw": 200.0,
        }
        repo.insert_dr(conn, "E-R", "confirmed", body, "utility")
    first = rt.run_cycle()
    with rt.engine.begin() as conn:  # telemetry said 12 kWh went into the car
        repo.upsert_ev_sessions(conn, [dataclasses.replace(ev, e_delivered_kwh=12.0)])
    rt.engine.dispose()

    again = make_runtime(url, site=site)  # a new process on the same database
    assert again.current.version == first.version
    assert again.current.setpoints_kw == first.setpoints_kw
    assert [e.event_id for e in again.dr_events()] == ["E-R"]
    assert again.dr_events()[0].status is DrStatus.CONFIRMED
    assert [s.session_id for s in again.recovered_sessions()] == ["car-1"]
    cur = again.run_cycle()
    with again.engine.connect() as conn:
        sessions = repo.open_ev_sessions(conn, T0)
    assert sessions[0].e_delivered_kwh == 12.0  # not reset by the driver's fresh view
    assert cur.version == first.version + 1
    assert dr_from_json({**body, "status": "confirmed"}).windows[0].start == T0 + timedelta(hours=1)


def test_telemetry_far_from_the_plan_triggers_a_resolve(tmp_path):
    rt = make_runtime(
        f"sqlite:///{tmp_path / 'd.sqlite3'}", replan_threshold_kw=100, replan_min_gap_s=0
    )
    rt.run_cycle()
    planned = float(rt.current.plan.p_net_kw[0])
    rt.ingest([{"asset": "park", "ts": T0, "p_kw": planned + 50}])
    assert rt.cycles_run == 1  # within the threshold
    rt.ingest([{"asset": "park", "ts": T0, "p_kw": planned + 500}])
    assert rt.cycles_run == 2
    with rt.engine.connect() as conn:
        assert repo.last_cycle(conn)["trigger"] == "telemetry"


def test_shutdown_waits_for_the_running_cycle(tmp_path):
    ctl = FlakyController()
    rt = make_runtime(f"sqlite:///{tmp_path / 'e.sqlite3'}", controller=ctl)
    ctl.delay_s = 1.0
    done = []
    th = threading.Thread(target=lambda: done.append(rt.run_cycle()))
    th.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    assert rt.close(timeout_s=30) is True  # returns once the cycle has finished
    assert time.perf_counter() - t0 > 0.3
    th.join()
    assert done and done[0] is not None
    assert rt.run_cycle() is None  # no new cycle after shutdown
    with rt.engine.connect() as conn:
        assert len(repo.cycles(conn)) == 1
