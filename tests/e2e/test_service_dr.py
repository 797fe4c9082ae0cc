"""End to end against a running service: uvicorn on a loopback port, the scheduler on a
simulated clock (900x: an interval a second), the simulated park as the plant. A utility
posts a DR event; the service re-solves at once, and the park's *realised* import stays
under the cap for the whole window."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import httpx
import numpy as np
import pytest
import uvicorn

from api.app import create_app
from controllers.mpc import MpcController
from tests.service_kit import T0, dr_body, headers, make_keys, small_site
from vpp.park.profiles import ProfileForecaster
from vpp.runtime.clock import Clock
from vpp.runtime.plant import SteppedPlant
from vpp.runtime.scheduler import CycleScheduler, next_boundary
from vpp.runtime.service import Runtime
from vpp.runtime.settings import Settings
from vpp.sim.closed_loop import device_commands
from vpp.sim.simulated_park import SimOptions, SimulatedPark
from vpp.store.db import make_engine

SPEED = 900.0  # 15 simulated minutes per second
CAP_KW = 2600.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def service(db_url):
    site = small_site()
    settings = Settings(database_url=db_url, speed=SPEED, port=_free_port())
    step = timedelta(minutes=site.dispatch.step_minutes)
    clock = Clock(T0 - timedelta(seconds=1), SPEED)
    park = SimulatedPark(site, seed=3, start=T0, options=SimOptions(load_noise_frac=0.0))
    plant = SteppedPlant(park, step)
    rt = Runtime(
        site=site,
        settings=settings,
        engine=make_engine(settings.database_url),
        driver=plant,
        forecaster=ProfileForecaster(),
        controller=MpcController(),
        clock=clock,
        commands_fn=device_commands,
    )
    rt.start()
    keys = make_keys(rt.engine)
    scheduler = CycleScheduler(rt, misfire_grace_s=5)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, rt), host="127.0.0.1", port=settings.port, log_level="warning"
        )
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    scheduler.start()
    base = f"http://127.0.0.1:{settings.port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client, keys, rt, plant, step
    scheduler.shutdown()
    server.should_exit = True
    th.join(10)


def _wait(pred, timeout_s: float, what: str):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_dr_event_resolves_and_realised_import_stays_under_the_cap(service):
    client, keys, rt, plant, step = service
    h = headers(keys["utility"])
    _wait(lambda: rt.cycles_run >= 1, 20, "the first cycle")
    assert client.get("/health").status_code == 200
    start = next_boundary(rt.clock.now(), step) + 2 * step
    end = start + 4 * step
    body = dr_body("SG-E2E", cap_kw=CAP_KW)
    body["windows"] = [{"start": start.isoformat(), "end": end.isoformat()}]
    body["binding"] = True  # a firm command: followed, never weighed
    before = rt.cycles_run
    r = client.post("/api/v1/dr-events", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "confirmed"  # pre-agreed

    def resolved():
        rows = client.get("/api/v1/cycles", headers=h).json()
        return any(c["trigger"] == "dr_event" for c in rows) and rt.cycles_run > before

    _wait(resolved, 10, "a re-solve triggered by the DR event")
    ev = client.get("/api/v1/dr-events/SG-E2E", headers=h).json()
    assert ev["expected_delivery"]["meets_target"] is True
    assert ev["fields"]["binding"] is True
    d = rt.current.plan.dr_decisions["SG-E2E"]
    assert d.followed and not d.weighed and "binding" in d.says, d

    def window_realised():
        times, rec = plant.realised()
        idx = [i for i, t in enumerate(times) if start <= t < end]
        return (idx, rec) if len(idx) == 4 else None

    idx, rec = _wait(window_realised, 30, "the simulated park to run through the window")
    realised = np.asarray(rec["import_kw"])[idx]
    assert realised.max() <= CAP_KW + 1.0, realised
    times, _ = plant.realised()
    before_window = [i for i, t in enumerate(times) if t < start]
    assert np.asarray(rec["import_kw"])[before_window].max() > CAP_KW  # the cap binds
    status = _wait(
        lambda: client.get("/api/v1/dr-events/SG-E2E", headers=h).json()["status"] == "completed",
        10,
        "the event to complete",
    )
    assert status
    sp = client.get("/api/v1/setpoints", headers=h).json()
    assert sp["plan_version"] >= 4
    metrics = client.get("/metrics").text
    assert 'vpp_forecast_abs_error_kw_count{lead_steps="1"}' in metrics  # telemetry flows
    assert 'vpp_dr_realised_margin_kw{event_id="SG-E2E"}' in metrics
    assert (
        'vpp_cycles_total{controller="mpc",fallback="none",status="optimal",trigger="dr_event"}'
        in metrics
    )
