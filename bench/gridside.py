"""Grid side: how long from a VTN's event, and from a dispatch centre's set-point, to a plan
(and its setpoints) that carries it.

Runs the service's runtime in this process (the small test park by default, ``--config`` for
another; SQLite in a temporary folder; the scheduler's trigger queue, so a change arriving
while a cycle runs is re-solved right after it), with the OpenADR 2.0b VEN polling an
``openleadr`` VTN on loopback every ``--poll-s`` and the IEC 104 outstation with a ``c104``
master station. Half the calls arrive while a cycle runs (a manual cycle asked for just
before), half when the service is idle.

Latency of a VTN event: from ``add_event`` at the VTN to the first plan in force whose
problem carries the DR event (polled every 2 ms). Of a set-point: from the master's
``transmit`` to the same. Prints p50/p99/max per class, the poll period and the cycles'
solve time (p50 of the planner phase), the yardstick of the goal "under one poll period plus
the solve time".

Usage: python bench/gridside.py [--events 8] [--setpoints 8] [--poll-s 1] [--config FILE]
"""

# No "from __future__ import annotations": c104 checks callbacks' annotations as objects.

import argparse
import contextlib
import io
import random
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import c104  # noqa: E402
import numpy as np  # noqa: E402

from tests.integration.gridside.vtn2 import Vtn  # noqa: E402
from tests.service_kit import TZ, make_runtime, small_site  # noqa: E402
from vpp.gridside.iec104 import IOA_SETPOINT, Iec104Config, Iec104Outstation  # noqa: E402
from vpp.gridside.offers import offer  # noqa: E402
from vpp.gridside.openadr2 import OpenAdr2Config, OpenAdr2Ven  # noqa: E402
from vpp.plan.prepare import horizon_for  # noqa: E402
from vpp.runtime.scheduler import CycleScheduler  # noqa: E402


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _carried(rt, event_id: str) -> bool:
    cur = rt.current
    if cur is None or cur.problem is None:
        return False
    return any(r.event_id == event_id for r in cur.problem.dr_rows) or (
        event_id in cur.plan.dr_decisions
    )


def _wait_carried(rt, event_id: str, t0: float, timeout_s: float = 60.0) -> float:
    while not _carried(rt, event_id):
        if time.monotonic() - t0 > timeout_s:
            return float("nan")
        time.sleep(0.002)
    return time.monotonic() - t0


def _busy(rt) -> bool:
    return rt._lock.locked()  # a cycle holds the runtime's lock while it runs


def _aim(rt, during: bool, idle_s: float) -> None:
    """Arrange for the next call to land during a cycle, or on an idle service."""
    if during:
        rt.request_resolve("bench")
        end = time.monotonic() + 5
        while not _busy(rt) and time.monotonic() < end:
            time.sleep(0.001)
        time.sleep(random.uniform(0.0, 0.05))
    else:
        end = time.monotonic() + 30
        while _busy(rt) and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(idle_s * (0.5 + random.random()))


def bench_openadr(rt, n: int, poll_s: float, idle_s: float) -> list[tuple[float, bool]]:
    with contextlib.redirect_stdout(io.StringIO()):  # openleadr prints a banner
        vtn = Vtn(_free_port(), poll_s)
    ven = OpenAdr2Ven(rt, OpenAdr2Config(vtn_url=vtn.url, report_sampling_s=60, watch_s=1))
    ven.start()
    out = []
    try:
        end = time.monotonic() + 30
        while not ven.registered and time.monotonic() < end:
            time.sleep(0.01)
        h = horizon_for(rt.site, rt.clock.now())
        for i in range(n):
            during = i % 2 == 0
            _aim(rt, during, idle_s)
            was_busy = _busy(rt)
            start = h.start + (2 + i % 8) * h.step
            ivs = [{"dtstart": start, "duration": h.step * 2, "signal_payload": -20.0 - i}]
            t0 = time.monotonic()
            vtn.add_event(f"B{i}", ivs)
            out.append((_wait_carried(rt, f"oadr2:B{i}", t0), was_busy))
    finally:
        ven.stop()
        vtn.close()
    return out


def bench_iec104(rt, n: int, idle_s: float) -> list[tuple[float, bool]]:
    out_st = Iec104Outstation(rt, Iec104Config(port=_free_port(), common_address=1))
    out_st.start()
    cl = c104.Client(tick_rate_ms=50, command_timeout_ms=5000)
    con = cl.add_connection(ip="127.0.0.1", port=out_st.config.port, init=c104.Init.NONE)
    sp = con.add_station(common_address=1).add_point(
        io_address=IOA_SETPOINT, type=c104.Type.C_SE_NC_1
    )
    cl.start()
    out = []
    try:
        end = time.monotonic() + 10
        while con.state not in (c104.ConnectionState.OPEN_MUTED, c104.ConnectionState.OPEN):
            assert time.monotonic() < end, "the 104 link did not open"
            time.sleep(0.01)
        con.unmute()
        for i in range(n):
            during = i % 2 == 0
            _aim(rt, during, idle_s)
            cur = rt.current
            off = offer(cur.problem, cur.plan, cur.version)
            lo, hi = float(off.p_import_min_kw[:4].max()), float(off.p_import_max_kw[:4].min())
            was_busy = _busy(rt)
            before = {out_st.setpoint.event_id} if out_st.setpoint else set()
            sp.value = lo + (0.3 + 0.4 * random.random()) * (hi - lo)
            t0 = time.monotonic()
            threading.Thread(target=sp.transmit, args=(c104.Cot.ACTIVATION,)).start()
            while out_st.setpoint is None or {out_st.setpoint.event_id} == before:
                if time.monotonic() - t0 > 10:
                    break
                time.sleep(0.001)
            if out_st.setpoint is None:
                out.append((float("nan"), was_busy))
                continue
            out.append((_wait_carried(rt, out_st.setpoint.event_id, t0), was_busy))
    finally:
        cl.stop()
        out_st.stop()
    return out


def show(name: str, rows: list[tuple[float, bool]]) -> None:
    for label, sel in (("idle", False), ("during a cycle", True)):
        lat = np.array([x for x, d in rows if d is sel])
        ok = lat[np.isfinite(lat)]
        if not len(ok):
            print(f"  {name:<8} {label:<16} no calls")
            continue
        q = np.percentile(ok, [50, 99]) * 1000
        print(
            f"  {name:<8} {label:<16} {len(ok):>3} calls   p50 {q[0]:7.1f} ms   p99 {q[1]:7.1f} ms"
            f"   max {ok.max() * 1000:7.1f} ms"
            + (f"   not planned {len(lat) - len(ok)}" if len(ok) < len(lat) else "")
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="park YAML (default: the small test park)")
    ap.add_argument("--events", type=int, default=8)
    ap.add_argument("--setpoints", type=int, default=8)
    ap.add_argument("--poll-s", type=float, default=1.0)
    ap.add_argument("--idle-s", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    random.seed(args.seed)
    import logging

    logging.basicConfig(level=logging.ERROR)
    for noisy in ("openleadr", "vpp", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    site = small_site()
    if args.config:
        from vpp.park.config import load_site

        site = load_site(args.config)
    tmp = tempfile.TemporaryDirectory()
    now = datetime.now(TZ)
    rt = make_runtime(f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}", site=site, at=now)
    sched = CycleScheduler(rt, misfire_grace_s=5)
    sched.start(run_now=True)
    try:
        end = time.monotonic() + 120
        while rt.current is None and time.monotonic() < end:
            time.sleep(0.01)
        oadr = bench_openadr(rt, args.events, args.poll_s, args.idle_s)
        iec = bench_iec104(rt, args.setpoints, args.idle_s)
        from vpp.store import repo

        with rt.engine.connect() as conn:
            cycles = repo.cycles(conn, limit=500)
        planner = [float(c["timings_s"].get("planner_s", np.nan)) for c in cycles]
        planner = np.array([x for x in planner if np.isfinite(x)])
        steps = site.dispatch.horizon_steps
        print(f"park: {site.name}, {steps} intervals, cycles run {rt.cycles_run}")
        if len(planner):
            p50 = np.median(planner) * 1000
            print(f"solve (planner phase) p50 {p50:.1f} ms over {len(planner)} cycles")
        print(f"OpenADR 2.0b poll period {args.poll_s * 1000:.0f} ms")
        print("call-to-plan latency (the call sent to the first plan in force that carries it):")
        show("OpenADR", oadr)
        show("IEC 104", iec)
    finally:
        sched.shutdown(30)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
