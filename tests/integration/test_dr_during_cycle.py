"""A DR event posted while a cycle runs: the runtime with its scheduler (trigger queue) and a
controller that blocks on an Event. The event is re-solved right after the running cycle (no
"maximum number of running instances" skip), cycles never overlap, and the response carries
the plan that follows the change. The park's auto-confirm policy, and what the 201 says."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from controllers.mpc import MpcController
from tests.service_kit import dr_body, headers, make_keys, make_runtime, small_site
from vpp.park.model import DrAutoConfirm, DrPolicy
from vpp.runtime.scheduler import CycleScheduler
from vpp.store import repo


class GatedController:
    """The MPC, but each dispatch waits for ``gate``; counts dispatches running at once."""

    def __init__(self):
        self.inner = MpcController()
        self.name = self.inner.name
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.busy = self.max_busy = 0
        self._lock = threading.Lock()

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    def dispatch(self, problem):
        with self._lock:
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        self.entered.set()
        try:
            assert self.gate.wait(30), "the test never opened the gate"
            return self.inner.dispatch(problem)
        finally:
            with self._lock:
                self.busy -= 1


@pytest.fixture
def service(db_url):
    def make(policy: DrPolicy | None = None, **settings):
        site = small_site()
        if policy is not None:
            site = dataclasses.replace(site, dr_policy=policy)
        ctl = GatedController()
        rt = make_runtime(db_url, site=site, controller=ctl, **settings)
        keys = make_keys(rt.engine)
        sched = CycleScheduler(rt, misfire_grace_s=5)  # manual clock: no boundary fires
        sched.start(run_now=True)
        client = TestClient(create_app(rt.settings, rt))
        made.append((sched, ctl))
        _until(lambda: rt.cycles_run >= 1, "the first cycle")
        return client, keys, rt, ctl

    made: list = []
    yield make
    for sched, ctl in made:
        ctl.gate.set()
        sched.shutdown(10)


def _until(pred, what, timeout_s=30.0):
    end = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def _cycles(rt):
    with rt.engine.connect() as conn:
        return list(reversed(repo.cycles(conn, 50)))


def test_dr_event_during_a_cycle_is_re_solved_right_after_it(service):
    client, keys, rt, ctl = service()
    ctl.gate.clear()
    ctl.entered.clear()
    r = client.post("/api/v1/cycles", headers=headers(keys["operator"]))
    assert r.status_code == 202
    assert ctl.entered.wait(10)  # the operator's cycle is blocked in the controller
    before = rt.current.version
    out: dict = {}

    def post():
        out["r"] = client.post(
            "/api/v1/dr-events",
            json=dr_body("SG-MID", cap_kw=2500.0),
            headers=headers(keys["utility"]),
        )

    th = threading.Thread(target=post)
    th.start()
    time.sleep(0.3)  # the POST is stored and waits for its re-solve; the cycle still blocks
    assert th.is_alive()
    ctl.gate.set()
    th.join(30)
    r = out["r"]
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["plan"]["state"] == "planned"
    assert body["plan"]["previous_version"] == before
    assert body["plan"]["version"] >= before + 2  # the operator's cycle, then the re-solve
    assert body["next_step"]["state"] == "in_force" and body["next_step"]["honoured_by_plan"]
    assert body["expected_delivery"]["meets_target"] is True  # the new plan's, not the old
    triggers = [c["trigger"] for c in _cycles(rt)]
    assert triggers[-2:] == ["operator", "dr_event"]
    assert ctl.max_busy == 1


def test_many_triggers_during_a_cycle_make_one_re_solve_and_none_is_lost(service):
    client, keys, rt, ctl = service(dr_response_wait_s=0.0)  # answer at once: pending
    ctl.gate.clear()
    ctl.entered.clear()
    client.post("/api/v1/cycles", headers=headers(keys["operator"]))
    assert ctl.entered.wait(10)
    n = rt.cycles_run
    for i in range(3):
        body = dr_body(f"SG-{i}", cap_kw=2500.0 - 10 * i)
        r = client.post("/api/v1/dr-events", json=body, headers=headers(keys["utility"]))
        assert r.status_code == 201 and r.json()["plan"]["state"] == "pending"
    client.post("/api/v1/cycles", headers=headers(keys["operator"]))
    ctl.gate.set()
    _until(lambda: rt.cycles_run >= n + 2, "the coalesced re-solve")
    time.sleep(0.3)
    triggers = [c["trigger"] for c in _cycles(rt)]
    assert triggers[-2] == "operator"
    assert triggers[-1] == "dr_event+operator"  # one cycle for the four triggers
    assert rt.cycles_run == n + 2
    with rt.engine.connect() as conn:
        assert all(repo.get_dr(conn, f"SG-{i}")["expected"] for i in range(3))
    assert ctl.max_busy == 1


def test_a_response_that_cannot_wait_says_the_plan_is_pending(service):
    client, keys, rt, ctl = service(dr_response_wait_s=0.2)
    ctl.gate.clear()
    ctl.entered.clear()
    client.post("/api/v1/cycles", headers=headers(keys["operator"]))
    assert ctl.entered.wait(10)
    before = rt.current.version
    body = dr_body("SG-SLOW", contract_type="invitation")
    r = client.post("/api/v1/dr-events", json=body, headers=headers(keys["utility"]))
    assert r.status_code == 201
    got = r.json()
    assert got["plan"] == {**got["plan"], "state": "pending", "version": before}
    assert got["status"] == "announced"
    step = got["next_step"]
    assert step["state"] == "awaiting_confirmation" and step["honoured_by_plan"] is False
    assert "does not honour it until it is confirmed" in step["says"]
    ctl.gate.set()
    _until(lambda: rt.current.version >= before + 2, "the re-solve")
    ev = client.get("/api/v1/dr-events/SG-SLOW", headers=headers(keys["viewer"])).json()
    assert ev["expected_delivery"]["intervals_in_horizon"] == 4 and ev["plan"] is None


@pytest.mark.parametrize(
    ("policy", "cap_kw", "status", "note"),
    [
        (DrAutoConfirm.NEVER, 2500.0, "announced", "awaiting an operator's confirmation"),
        (DrAutoConfirm.ALWAYS, 100.0, "confirmed", "auto-confirmed: dr_policy.auto_confirm"),
        (DrAutoConfirm.WHEN_COVERED, 2500.0, "confirmed", "holds import at most 2500 kW"),
        (DrAutoConfirm.WHEN_COVERED, 100.0, "announced", "cannot hold import at most 100 kW"),
    ],
)
def test_the_park_policy_confirms_an_invitation_on_receipt(service, policy, cap_kw, status, note):
    client, keys, _, _ = service(DrPolicy(auto_confirm=policy))
    body = dr_body("SG-POL", cap_kw=cap_kw, contract_type="invitation")
    r = client.post("/api/v1/dr-events", json=body, headers=headers(keys["utility"]))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["status"] == status and got["plan"]["state"] == "planned"
    assert got["next_step"]["state"] == (
        "in_force" if status == "confirmed" else "awaiting_confirmation"
    )
    ev = client.get("/api/v1/dr-events/SG-POL", headers=headers(keys["viewer"])).json()
    notes = " | ".join(h["note"] or "" for h in ev["history"])
    if status == "confirmed":
        assert note in notes and ev["history"][-1]["by"] == "dr_policy"
    else:
        assert ev["history"][-1]["status"] == "announced"


def test_confirm_answers_with_the_new_plan_and_its_expected_delivery(service):
    client, keys, _, _ = service()
    body = dr_body("SG-INV", cap_kw=2500.0, contract_type="invitation")
    r = client.post("/api/v1/dr-events", json=body, headers=headers(keys["utility"]))
    v1 = r.json()["plan"]["version"]
    r = client.post("/api/v1/dr-events/SG-INV/confirm", headers=headers(keys["operator"]))
    assert r.status_code == 200
    got = r.json()
    assert got["plan"]["state"] == "planned" and got["plan"]["version"] > v1
    assert got["expected_delivery"]["import_max_kw"] <= 2500.0 + 1e-3
    assert got["next_step"]["state"] == "in_force"
