"""The coalesced trigger queue: whatever arrives while a cycle runs collapses into one cycle
right after it, never two at once, never a trigger lost; tickets wait for their cycle."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from vpp.runtime.scheduler import TriggerQueue


class _Cycles:
    """A cycle stub: records (trigger, at), counts overlap, blocks while ``gate`` is clear."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.runs: list[tuple[str, datetime | None]] = []
        self.busy = 0
        self.max_busy = 0
        self.fail_on: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, trigger: str, at: datetime | None) -> None:
        with self._lock:
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        self.started.set()
        try:
            assert self.gate.wait(10)
            self.runs.append((trigger, at))
            if trigger in self.fail_on:
                raise RuntimeError("planner exploded")
        finally:
            with self._lock:
                self.busy -= 1


@pytest.fixture
def queue():
    cycles = _Cycles()
    q = TriggerQueue(cycles)
    q.start()
    yield q, cycles
    cycles.gate.set()
    q.stop()


def _until(pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_triggers_during_a_cycle_collapse_into_one_cycle_right_after_it(queue):
    q, cycles = queue
    cycles.gate.clear()
    first = q.submit("schedule", datetime(2026, 7, 15, tzinfo=UTC))
    assert cycles.started.wait(5)
    tickets = [q.submit(r) for r in ("dr_event", "operator", "dr_event", "telemetry")]
    assert q.pending == ("dr_event", "operator", "telemetry")  # each reason once, in order
    assert not q.wait(tickets[0], 0.05)  # its cycle has not run
    cycles.gate.set()
    assert q.wait(first, 5) and all(q.wait(t, 5) for t in tickets)
    assert cycles.runs == [
        ("schedule", datetime(2026, 7, 15, tzinfo=UTC)),
        ("dr_event+operator+telemetry", None),  # one re-solve, every name kept
    ]
    assert cycles.max_busy == 1


def test_a_scheduled_tick_during_a_re_solve_is_kept_and_never_overlaps(queue):
    q, cycles = queue
    cycles.gate.clear()
    q.submit("dr_event")
    assert cycles.started.wait(5)
    boundary = datetime(2026, 7, 15, 0, 15, tzinfo=UTC)
    last = q.submit("schedule", boundary)
    cycles.gate.set()
    assert q.wait(last, 5)
    assert cycles.runs == [("dr_event", None), ("schedule", boundary)]
    assert cycles.max_busy == 1


def test_many_threads_posting_at_once_lose_nothing_and_never_overlap(queue):
    q, cycles = queue
    tickets: list[int] = []

    def post(i):
        tickets.append(q.submit(f"r{i % 5}"))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(200)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(q.wait(t, 5) for t in tickets)
    assert cycles.max_busy == 1
    seen = {name for trigger, _ in cycles.runs for name in trigger.split("+")}
    assert seen == {f"r{i}" for i in range(5)}
    assert len(cycles.runs) <= 200


def test_a_failed_cycle_releases_its_waiters_and_the_queue_goes_on(queue):
    q, cycles = queue
    cycles.fail_on = {"boom"}
    assert q.wait(q.submit("boom"), 5)
    assert q.wait(q.submit("after"), 5)
    assert [t for t, _ in cycles.runs] == ["boom", "after"]


def test_stop_releases_waiters_of_dropped_requests():
    cycles = _Cycles()
    cycles.gate.clear()
    q = TriggerQueue(cycles)
    q.start()
    q.submit("a")
    assert cycles.started.wait(5)
    late = q.submit("b")
    threading.Timer(0.05, cycles.gate.set).start()
    q.stop(5)
    assert q.wait(late, 0.1)  # dropped at shutdown: its waiter returns
    assert [t for t, _ in cycles.runs] == ["a"]
