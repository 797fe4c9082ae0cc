"""One writer per park: two services on one database (SQLite and PostgreSQL), one lease.

The second refuses to start, naming the holder and when its lease expires; it starts once
the first has stopped (released) or let its lease expire (taken over), and the first then
stores nothing more, even from a cycle that was already running. Two runtimes stand for two
processes here by holding as two holders (a process is one holder).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from tests.service_kit import T0, make_runtime
from vpp.drivers.static import StaticDriver
from vpp.runtime.scheduler import CycleScheduler
from vpp.runtime.settings import Settings
from vpp.runtime.writer_lease import HELD, LOST, NOT_TAKEN, RELEASED, LeaseHeldError
from vpp.store import lease as store
from vpp.store import tables
from vpp.store.db import make_engine, migrate
from vpp.store.lease import Holder

ROOT = Path(__file__).resolve().parents[2]
STEP = timedelta(minutes=15)
STARTED = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)
HOST_A = Holder("host-a", 101, STARTED)
HOST_B = Holder("host-b", 202, STARTED)


def _cycle_times(engine) -> list[datetime]:
    with engine.connect() as conn:
        rows = conn.execute(select(tables.cycle_runs.c.at).order_by(tables.cycle_runs.c.id))
        return [r[0] for r in rows]


def _expire(engine) -> None:
    """The holder stopped heartbeating long ago (a hung or partitioned service)."""
    with engine.begin() as conn:
        past = datetime(2000, 1, 1, tzinfo=UTC)
        conn.execute(update(tables.writer_lease).values(heartbeat_at=past, expires_at=past))


def test_a_second_service_refuses_naming_the_holder_and_writes_nothing(db_url):
    a = make_runtime(db_url, holder=HOST_A)
    b = make_runtime(db_url, holder=HOST_B, start=False)
    with pytest.raises(LeaseHeldError) as refused:
        b.start()
    msg = str(refused.value)
    assert "host host-a, pid 101" in msg and f"park {a.site.name!r}" in msg
    assert "lease expires at" in msg and "VPP_LEASE_TTL_S" in msg
    assert b.run_cycle() is None  # refused: no lease, nothing stored or sent
    assert b.lease.status()["state"] == NOT_TAKEN and not b.lease.status()["writes"]
    assert a.run_cycle() is not None
    assert _cycle_times(a.engine) == [T0.astimezone(UTC)]
    s = a.lease.status()
    assert s["state"] == HELD and s["writes"] and s["lease"]["host"] == "host-a"


def test_after_the_first_stops_the_second_writes(db_url):
    a = make_runtime(db_url, holder=HOST_A)
    first = a.run_cycle()
    b = make_runtime(db_url, holder=HOST_B, start=False)
    with pytest.raises(LeaseHeldError):
        b.start()
    assert a.close(timeout_s=30) is True  # a clean stop releases the lease at once
    assert a.lease.state == RELEASED
    b.start()
    cur = b.run_cycle(at=T0 + STEP)
    assert cur is not None and cur.version == first.version + 1
    assert a.run_cycle() is None
    assert _cycle_times(b.engine) == [T0.astimezone(UTC), (T0 + STEP).astimezone(UTC)]


def test_an_expired_lease_is_taken_over_and_its_old_holder_stops_writing(db_url, caplog):
    short = {"lease_heartbeat_s": 0.5, "lease_ttl_s": 1.0}
    a = make_runtime(db_url, holder=HOST_A, **short)
    assert a.run_cycle() is not None
    b = make_runtime(db_url, holder=HOST_B, start=False, **short)
    with pytest.raises(LeaseHeldError):
        b.start()
    _expire(a.engine)  # no heartbeat from a: another may take it over
    b.start()
    assert b.lease.held
    assert a.run_cycle(at=T0 + STEP) is None  # a's next cycle refuses to write
    s = a.lease.status()
    assert s["state"] == LOST and not s["writes"] and "host host-b, pid 202" in s["detail"]
    assert "no longer stores cycles or sends setpoints" in caplog.text
    assert not a.lease.renew()  # lost for good: it never takes the lease back by itself
    assert b.run_cycle(at=T0 + STEP) is not None
    assert _cycle_times(b.engine) == [T0.astimezone(UTC), (T0 + STEP).astimezone(UTC)]


def test_an_expired_lease_nobody_took_is_renewed_by_its_holder(db_url):
    a = make_runtime(db_url, holder=HOST_A)
    _expire(a.engine)  # a database outage outlasted the lease, nobody else came
    assert a.run_cycle() is not None and a.lease.held
    with a.engine.connect() as conn:
        assert store.current(conn).expires_at > datetime.now(UTC)


class _TakenOverDuringTheCycle:
    """A driver during whose read the holder's lease expires and another service takes it:
    the cycle passed its check at the start, then must store and send nothing."""

    def __init__(self, inner: StaticDriver):
        self.inner, self.applied, self.take_over = inner, [], None

    def read_state(self, at):
        if self.take_over is not None:
            self.take_over()
        return self.inner.read_state(at)

    def apply(self, at, setpoints_kw):
        self.applied.append(at)
        self.inner.apply(at, setpoints_kw)


def test_a_cycle_running_when_its_lease_is_taken_over_stores_and_sends_nothing(db_url):
    from tests.service_kit import small_site

    site = small_site()
    driver = _TakenOverDuringTheCycle(StaticDriver(site))
    a = make_runtime(db_url, site=site, driver=driver, holder=HOST_A)
    b = make_runtime(db_url, site=site, holder=HOST_B, start=False)

    def take_over():
        _expire(a.engine)
        b.start()

    driver.take_over = take_over
    assert a.run_cycle() is None  # fenced in the transaction that would have stored it
    assert driver.applied == [] and _cycle_times(a.engine) == []
    assert a.lease.state == LOST and b.lease.held
    assert b.run_cycle() is not None and len(_cycle_times(a.engine)) == 1


def test_two_services_racing_store_exactly_one_cycle_per_interval(db_url):
    a = make_runtime(db_url, holder=HOST_A, start=False)
    b = make_runtime(db_url, holder=HOST_B, start=False)
    n = 4
    barrier, refused, errors, ran = threading.Barrier(2), [], [], []

    def service(rt):
        try:
            barrier.wait(10)
            try:
                rt.start()
            except LeaseHeldError:
                refused.append(rt.lease.holder.host)
            for k in range(n):
                barrier.wait(30)  # both ask for the same interval at the same moment
                if rt.run_cycle(at=T0 + k * STEP) is not None:
                    ran.append(rt.lease.holder.host)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=service, args=(rt,)) for rt in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(refused) == 1 and len(set(ran)) == 1 and set(ran).isdisjoint(refused)
    times = _cycle_times(a.engine)
    assert sorted(times) == [(T0 + k * STEP).astimezone(UTC) for k in range(n)]


@pytest.mark.parametrize("row", ["absent", "expired"])
def test_many_takers_of_a_free_lease_one_wins(db_url, row):
    engine = make_engine(db_url)
    migrate(engine)
    if row == "expired":
        with engine.begin() as conn:
            store.take(conn, HOST_A, "park", 60.0)
        _expire(engine)
    holders = [Holder(f"host-{i}", 1000 + i, STARTED) for i in range(8)]
    barrier, got = threading.Barrier(len(holders)), []

    def take(h):
        barrier.wait(10)
        with engine.begin() as conn:
            got.append(store.take(conn, h, "park", 60.0))

    threads = [threading.Thread(target=take, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == len(holders)
    winners = {h.host for h, lease in zip(holders, got, strict=True) if lease.held_by(h)}
    assert len(winners) == 1
    with engine.connect() as conn:
        assert store.current(conn).holder.host in winners
    engine.dispose()


def test_a_lease_of_a_dead_process_on_this_host_is_taken_at_once(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_OUT)
    dead = Holder(socket.gethostname(), int(child.stdout), STARTED)  # killed, not stopped
    with engine.begin() as conn:
        store.take(conn, dead, "park", 3600.0)
    b = make_runtime(db_url, holder=HOST_B)  # no need to wait an hour
    assert b.lease.held
    alive = Holder(socket.gethostname(), os.getppid(), STARTED)
    assert not store.holder_gone(alive)
    engine.dispose()


_OUT = {"capture_output": True, "text": True, "check": True}


def test_vpp_run_refuses_while_another_service_holds_the_lease(db_url, tmp_path):
    from tests.e2e.test_service_restart import small_park_yaml

    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        store.take(conn, HOST_A, "demo", 600.0)
    env = dict(os.environ, VPP_DATABASE_URL=db_url)
    args = ["run", "--config", str(small_park_yaml(tmp_path)), "--start", "2026-07-15T08:00"]
    cmd = [sys.executable, "-m", "vpp.cli", *args, "--no-grid", "--once"]
    t0 = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "vpp run: error: another service stores cycles" in out.stderr
    assert "host host-a, pid 101" in out.stderr and "lease expires at" in out.stderr
    assert "Traceback" not in out.stderr and time.monotonic() - t0 < 60
    assert _cycle_times(engine) == []
    with engine.begin() as conn:  # host-a stops: the next start writes, and releases at exit
        store.release(conn, HOST_A)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(_cycle_times(engine)) == 1
    with engine.connect() as conn:
        lease = store.current(conn)
    assert lease.holder.host == socket.gethostname() and lease.released_at is not None
    engine.dispose()


def test_the_scheduler_heartbeats_and_a_stop_releases(db_url):
    rt = make_runtime(db_url, holder=HOST_A, lease_heartbeat_s=0.2, lease_ttl_s=1.0)
    with rt.engine.connect() as conn:
        before = store.current(conn).heartbeat_at
    sched = CycleScheduler(rt)
    sched.start(run_now=False)
    try:
        time.sleep(1.0)
        with rt.engine.connect() as conn:
            lease = store.current(conn)
        assert lease.heartbeat_at > before and lease.expires_at > datetime.now(UTC)
    finally:
        sched.shutdown(timeout_s=30)
    with rt.engine.connect() as conn:
        assert store.current(conn).released_at is not None
    assert rt.lease.state == RELEASED


def test_a_lease_shorter_than_two_heartbeats_is_refused():
    with pytest.raises(ValidationError, match="at least twice"):
        Settings(lease_heartbeat_s=30.0, lease_ttl_s=45.0)


def test_health_fails_when_the_lease_is_lost(db_url):
    """The service that lost its lease says so where an operator looks: /health failing."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    a = make_runtime(db_url, holder=HOST_A)
    a.run_cycle()
    with TestClient(create_app(a.settings, a)) as client:
        assert client.get("/health").json()["lease"]["state"] == HELD
        _expire(a.engine)
        b = make_runtime(db_url, holder=HOST_B)
        assert a.run_cycle(at=T0 + STEP) is None  # refused: taken over
        body = client.get("/health").json()
    assert body["status"] == "failing" and body["lease"]["state"] == LOST
    assert any(p.startswith("writer lease lost") for p in body["problems"])
    b.engine.dispose()
    a.engine.dispose()
