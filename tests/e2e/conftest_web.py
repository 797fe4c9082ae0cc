"""Fixtures of the operator page's browser tests (imported explicitly by
``tests/e2e/test_webpage_*.py``): one running service on the simulated park for the module,
one headless Chromium for the session.

The service: uvicorn on a loopback port found at run time, the small park (tests.service_kit)
played by the simulated park, its history made first by running cycles on a clock that is
held (four hours of intervals, a few seconds), then the clock running at ``SPEED`` with the
scheduler on the interval boundaries. Chromium is Debian's (/usr/bin/chromium,
``scripts/chromium.sh`` installs it); without it the tests skip, except under
``VPP_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from controllers.mpc import MpcController
from tests.service_kit import T0, make_keys, small_site
from vpp.park.profiles import ProfileForecaster
from vpp.runtime.plant import SteppedPlant
from vpp.runtime.scheduler import CycleScheduler
from vpp.runtime.service import Runtime
from vpp.runtime.settings import Settings
from vpp.sim.closed_loop import device_commands
from vpp.sim.simulated_park import SimOptions, SimulatedPark
from vpp.store.db import make_engine

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SPEED = 60.0  # an interval every 15 s: cycles come while a test looks, not all the time
HISTORY_INTERVALS = 16  # four hours of plans and readings before the page opens
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "webpage"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HeldClock:
    """A clock held at a time (moved by :meth:`set`) until :meth:`run` lets it go at
    ``speed`` times the wall clock: the history is made held, the service then runs."""

    def __init__(self, start: datetime, speed: float):
        self.speed = speed
        self._at, self._since = start, None

    def set(self, at: datetime) -> None:
        self._at = at

    def run(self) -> None:
        self._since = time.monotonic()

    def now(self) -> datetime:
        if self._since is None:
            return self._at
        return self._at + timedelta(seconds=(time.monotonic() - self._since) * self.speed)

    def real_seconds(self, sim: timedelta) -> float:
        return sim.total_seconds() / self.speed


@dataclass
class Service:
    base: str
    keys: dict[str, str]
    rt: Runtime
    client: httpx.Client


def wait_for(cond, timeout_s: float, what: str, every_s: float = 0.05):
    """``cond()``'s first truthy value within ``timeout_s``, else a failure naming ``what``."""
    end = time.monotonic() + timeout_s
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def start_service(db_url: str, speed: float = SPEED, history: int = HISTORY_INTERVALS):
    """Start the service; returns (Service, stop())."""
    site = small_site(horizon_steps=32)
    settings = Settings(database_url=db_url, speed=speed, port=free_port())
    step = timedelta(minutes=site.dispatch.step_minutes)
    start = T0 - history * step
    clock = HeldClock(start, speed)
    park = SimulatedPark(site, seed=7, start=start, options=SimOptions(load_noise_frac=0.02))
    rt = Runtime(
        site=site,
        settings=settings,
        engine=make_engine(settings.database_url),
        driver=SteppedPlant(park, step),
        forecaster=ProfileForecaster(),
        controller=MpcController(),
        clock=clock,
        commands_fn=device_commands,
    )
    rt.start()
    for k in range(history):  # the history: one cycle per interval on the held clock
        clock.set(start + k * step)
        rt.run_cycle("schedule", start + k * step)
    clock.set(T0 - timedelta(seconds=1))
    keys = make_keys(rt.engine)
    app = create_app(settings, rt)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    wait_for(lambda: server.started, 20, "uvicorn to start")
    clock.run()
    scheduler = CycleScheduler(rt, misfire_grace_s=5)
    scheduler.start()
    base = f"http://127.0.0.1:{settings.port}"
    client = httpx.Client(base_url=base, timeout=30)

    def stop() -> None:
        client.close()
        scheduler.shutdown()
        server.should_exit = True
        th.join(15)
        rt.engine.dispose()

    return Service(base, keys, rt, client), stop


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    db = tmp_path_factory.mktemp("webdb") / "vpp.sqlite3"
    svc, stop = start_service(f"sqlite:///{db}")
    yield svc
    stop()


def chromium_or_skip() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if path is None:
        msg = f"no Chromium at {CHROMIUM} (scripts/chromium.sh installs Debian's)"
        if os.environ.get("VPP_REQUIRE_SERVICES") == "1":
            pytest.fail(msg + " and VPP_REQUIRE_SERVICES=1: the browser tests must run")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API keeps an asyncio loop running in the
    # worker's main thread while it is open, and every later test of that pytest-xdist worker
    # that calls asyncio.run() (the OCPP schema checks, the auth burst) then failed.
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
