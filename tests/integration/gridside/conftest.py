"""A running service for the grid-side adapters: the runtime of ``vpp run`` (small park,
SQLite in the test's tmp dir, the scheduler's trigger queue, a manual clock at the wall
clock's now so that the peers' own clocks agree with the park's), and helpers to wait on
conditions with a deadline instead of sleeping."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from tests.service_kit import TZ, make_runtime, small_site
from vpp.runtime.scheduler import CycleScheduler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(pred: Callable[[], object], what: str, timeout_s: float = 20.0, every_s: float = 0.01):
    """Wait for ``pred()`` to be truthy (polled), failing with ``what`` after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < end, f"timed out after {timeout_s:g} s waiting for {what}"
        time.sleep(every_s)


class Service:
    """The runtime with its scheduler; ``version`` is the plan in force."""

    def __init__(self, rt, sched):
        self.rt, self.sched = rt, sched

    @property
    def version(self) -> int:
        return self.rt.current.version if self.rt.current else 0

    def wait_version_above(self, v: int, timeout_s: float = 20.0) -> int:
        return until(lambda: self.version > v and self.version, f"a plan after v{v}", timeout_s)

    def meter(self, p_kw: float, at: datetime | None = None) -> None:
        """A park-meter reading at the service's clock (what the tracking error uses)."""
        self.rt.ingest([{"asset": "park", "ts": at or self.rt.clock.now(), "p_kw": p_kw}])


@pytest.fixture
def service(tmp_path):
    made = []

    def make(site=None, at: datetime | None = None, **settings) -> Service:
        rt = make_runtime(
            f"sqlite:///{tmp_path}/vpp-{len(made)}.sqlite3",
            site=site or small_site(),
            at=at or datetime.now(TZ),
            **settings,
        )
        sched = CycleScheduler(rt, misfire_grace_s=5)  # manual clock: no boundary fires
        sched.start(run_now=True)
        svc = Service(rt, sched)
        made.append(svc)
        until(lambda: rt.current is not None, "the first plan", 60)
        return svc

    yield make
    for svc in made:
        svc.sched.shutdown(10)
