"""DR event to new plan: how long after a utility's POST the first stored plan includes it.

Starts ``vpp run`` as ``bench/api_latency.py`` does (demo park, simulated clock ``--speed``,
a temporary SQLite database unless ``--database-url``), then posts ``--events`` DR
invitations at random moments: half right after asking for a manual cycle (so most land
while a cycle runs), half after the service has been idle for a while. The latency of each
is the end of the first cycle that started after its POST (that cycle's plan includes the
event; it is stored with the plan) minus the POST's time. Each event is classed by whether a
cycle was running when it was posted (from the stored cycles' start and total time).

Prints p50/p99 for "idle" and "during a cycle". Before the coalesced trigger queue, an event
posted during a cycle waited for the next boundary (up to an interval).
Usage: python bench/dr_latency.py [--events 40] [--speed 60] [--no-grid]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from api_latency import _free_port, start_service, stop_service, wait_ready


def _event(i: int, sim_now: datetime) -> dict:
    start = sim_now + timedelta(hours=1)
    return {
        "event_id": f"BENCH-{i:04d}-{secrets.token_hex(3)}",
        "direction": "peak_shaving",
        "windows": [{"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}],
        "requested_kw": 100.0,
        "contract_type": "invitation",
        "call_class": "intraday",
    }


def _spans(cycles: list[dict]) -> list[tuple[float, float, float]]:
    """(started, ended by its total time, finished_at) per stored cycle, epoch seconds."""
    out = []
    for c in cycles:
        a = datetime.fromisoformat(c["started_at"]).timestamp()
        b = datetime.fromisoformat(c["finished_at"]).timestamp()
        out.append((a, a + float(c["timings_s"].get("total_s", b - a)), b))
    return sorted(out)


def classify(posts: list[float], cycles: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per POST time: latency to the end of the first cycle started after it (s; NaN when
    none did), and whether a cycle was running when it was posted."""
    spans = _spans(cycles)
    lat = np.full(len(posts), np.nan)
    during = np.zeros(len(posts), dtype=bool)
    for i, t in enumerate(posts):
        during[i] = any(a <= t < e for a, e, _ in spans)
        after = [(a, e) for a, e, _ in spans if a >= t]
        if after:
            lat[i] = after[0][1] - t
    return lat, during


def show(name: str, lat: np.ndarray) -> None:
    ok = lat[np.isfinite(lat)]
    if not len(ok):
        print(f"{name:<34} {0:>4} events")
        return
    q = np.percentile(ok, [50, 99]) * 1000
    print(
        f"{name:<34} {len(ok):>4} events   p50 {q[0]:8.1f} ms   p99 {q[1]:8.1f} ms"
        f"   max {ok.max() * 1000:8.1f} ms"
        + (f"   unplanned {len(lat) - len(ok)}" * (len(ok) < len(lat)))
    )


async def run(args) -> int:
    random.seed(args.seed)
    port = _free_port()
    key = "vpp_" + secrets.token_hex(8) + "_" + secrets.token_urlsafe(24)
    tmp = tempfile.TemporaryDirectory()
    db_url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}"
    proc = start_service(args, port, key, db_url)
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {key}"}
    posts: list[float] = []
    try:
        await wait_ready(base, args.ready_timeout_s)
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=h) as c:
            cycles = (await c.get("/api/v1/cycles", params={"limit": 5})).json()
            print(f"service: {args.config}, speed {args.speed:g}, {db_url}")
            for i in range(args.events):
                last = (await c.get("/api/v1/setpoints")).json()
                sim_now = datetime.fromisoformat(last["at"])
                if i % 2 == 0:  # aim inside a cycle: ask for one, post a moment later
                    await c.post("/api/v1/cycles")
                    await asyncio.sleep(random.uniform(0.0, args.offset_s))
                else:  # idle: let any cycle end first
                    await asyncio.sleep(args.idle_s * (0.5 + random.random()))
                t = time.time()
                r = await c.post("/api/v1/dr-events", json=_event(i, sim_now))
                if r.status_code != 201:
                    raise SystemExit(f"POST /dr-events: {r.status_code} {r.text[:300]}")
                posts.append(t)
            await asyncio.sleep(1.0)
            cycles = (await c.get("/api/v1/cycles", params={"limit": 500})).json()
        lat, during = classify(posts, cycles)
        print(f"DR events posted: {len(posts)}, cycles stored: {len(cycles)}")
        print("event-to-plan latency (POST to the end of the first cycle after it):")
        show("  idle", lat[~during])
        show("  during a cycle", lat[during])
        show("  all", lat)
    finally:
        stop_service(proc, tmp)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/parks/demo.yaml")
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--offset-s", type=float, default=0.3, help="after asking for a cycle")
    ap.add_argument("--idle-s", type=float, default=3.0, help="wait before an idle POST")
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--start", default=None, help="simulated start (default now)")
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--ready-timeout-s", type=float, default=180.0)
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
