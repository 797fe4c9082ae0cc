"""Load the running service from a second process on loopback, while cycles run.

Starts ``vpp run`` (demo park, simulated clock ``--speed``, a temporary SQLite database
unless ``--database-url``) as a subprocess, waits for ``/health``, then measures, bounded in
count and time:

* GET /api/v1/setpoints by ``--readers`` concurrent readers: first all connecting and
  reading at the same instant (the burst of every gateway restarting, on its own line), then
  each polling every ``--poll-s`` seconds out of phase (open loop: the way device gateways
  read; the steady state the p99 goal is about), and then as fast as they can (closed loop:
  the saturation throughput);
* POST /api/v1/telemetry by ``--writers`` concurrent writers, batches of ``--batch``
  readings.

Prints requests per second and p50/p99 latency. Goal: p99 under 50 ms at 200 readers.
Usage: python bench/api_latency.py [--readers 200] [--duration-s 20] [--speed 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(args, port: int, key: str, db_url: str) -> subprocess.Popen:
    env = dict(os.environ, VPP_ADMIN_KEY=key, VPP_DATABASE_URL=db_url)
    cmd = [
        sys.executable, "-m", "vpp.cli", "run", "--config", args.config,
        "--port", str(port), "--speed", str(args.speed),
    ]  # fmt: skip
    if args.start:
        cmd += ["--start", args.start]
    if args.no_grid:
        cmd.append("--no-grid")
    log = open(Path(tempfile.gettempdir()) / f"vpp-bench-{port}.log", "w")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
        while time.monotonic() < end:
            try:
                if (await c.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"the service at {base} was not ready within {timeout_s:.0f} s")


class Conn:
    """A minimal HTTP/1.1 keep-alive client on one connection: a load generator must cost
    far less than the server it measures (httpx's pool costs more than the server here)."""

    def __init__(self, host: str, port: int, key: str):
        self.host, self.port, self.key = host, port, key
        self.r = self.w = None

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Length: {len(body)}\r\n"
            + ("Content-Type: application/json\r\n" if body else "")
            + "\r\n"
        ).encode()
        self.w.write(head + body)
        await self.w.drain()
        raw = await self.r.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        n = next(int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length"))
        await self.r.readexactly(n)
        return status

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


async def _worker(conn, make_request, stop_at, max_n, poll_s, out, errors, starts=None):
    if poll_s:  # out of phase, as gateways poll: each reader starts at a random point
        await asyncio.sleep(random.random() * poll_s)
    while time.monotonic() < stop_at and len(out) < max_n:
        sent = time.time()
        t0 = time.perf_counter()
        try:
            status = await make_request(conn)
            if status >= 400:
                errors.append(status)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(type(exc).__name__)
            conn.close()
            conn.w = None
        dt = time.perf_counter() - t0
        out.append(dt)
        if starts is not None:
            starts.append(sent)  # in the same order as out (no await in between)
        if poll_s:
            await asyncio.sleep(max(poll_s - dt, 0.0) * (0.5 + random.random()))


async def connect_all(conns, make_request) -> tuple[np.ndarray, float, list]:
    """Every connection opens and makes its first request at the same instant: the burst a
    restart of every gateway would cause (reported on its own line, not in the steady state)."""
    errors: list = []

    async def first(c):
        t0 = time.perf_counter()
        try:
            if await make_request(c) >= 400:
                errors.append("status")
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(type(exc).__name__)
        return time.perf_counter() - t0

    t0 = time.monotonic()
    lat = await asyncio.gather(*(first(c) for c in conns))
    return np.asarray(lat), time.monotonic() - t0, errors


async def load(
    port, key, n_workers, make_request, duration_s, max_n, poll_s=0.0, conns=None, starts=None
):
    lat: list[float] = []
    errors: list = []
    conns = conns or [Conn("127.0.0.1", port, key) for _ in range(n_workers)]
    t0 = time.monotonic()
    stop = t0 + duration_s
    await asyncio.gather(
        *(_worker(c, make_request, stop, max_n, poll_s, lat, errors, starts) for c in conns)
    )
    elapsed = time.monotonic() - t0
    for c in conns:
        c.close()
    return np.asarray(lat), elapsed, errors


def show(name: str, lat: np.ndarray, elapsed: float, errors: list) -> None:
    q = np.percentile(lat, [50, 99, 99.9]) * 1000 if len(lat) else [np.nan] * 3
    top = lat.max() * 1000 if len(lat) else np.nan
    print(
        f"{name:<44} {len(lat):>7,} req in {elapsed:5.1f} s = {len(lat) / elapsed:7,.0f} req/s"
        f"   p50 {q[0]:6.1f} ms   p99 {q[1]:6.1f} ms   p99.9 {q[2]:6.1f} ms   max {top:6.1f} ms"
        f"   errors {len(errors)}" + (f" {sorted(set(map(str, errors)))[:3]}" if errors else "")
    )


def split_by_cycles(starts: np.ndarray, lat: np.ndarray, cycles: list[dict]) -> None:
    """The open-loop requests sent while a cycle ran (from its start for its stored total
    time: reading the plant, planning, storing, publishing) and the others."""
    spans = []
    for c in cycles:
        a = datetime.fromisoformat(c["started_at"]).timestamp()
        spans.append((a, a + float(c["timings_s"].get("total_s", 0.0))))
    inside = np.zeros(len(lat), dtype=bool)
    for a, b in spans:
        inside |= (starts >= a) & (starts < b)
    n = sum(1 for a, b in spans if len(starts) and a < starts.max() and b > starts.min())
    print(f"  of which sent while one of the {n} cycles of that phase ran, and the others:")
    for name, m in (("    while a cycle ran", inside), ("    between cycles", ~inside)):
        if m.any():
            q = np.percentile(lat[m], [50, 99, 99.9]) * 1000
            print(
                f"{name:<44} {m.sum():>7,} req{'':33}p50 {q[0]:6.1f} ms   p99 {q[1]:6.1f} ms"
                f"   p99.9 {q[2]:6.1f} ms   max {lat[m].max() * 1000:6.1f} ms"
            )


async def run(args) -> int:
    port = _free_port()
    key = "vpp_" + secrets.token_hex(8) + "_" + secrets.token_urlsafe(24)
    tmp = tempfile.TemporaryDirectory()
    db_url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}"
    proc = start_service(args, port, key, db_url)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, args.ready_timeout_s)
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            r = await c.get("/api/v1/site", headers={"Authorization": f"Bearer {key}"})
            site = r.json()
            assets = [
                a["name"]
                for a in (
                    await c.get("/api/v1/assets", headers={"Authorization": f"Bearer {key}"})
                ).json()
            ]
        print(f"service: {site['name']}, {len(assets)} assets, speed {args.speed:g}, {db_url}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

        async def get_setpoints(conn):
            return await conn.request("GET", "/api/v1/setpoints")

        conns = [Conn("127.0.0.1", port, key) for _ in range(args.readers)]
        lat, el, err = await connect_all(conns, get_setpoints)
        show(f"GET setpoints, {args.readers} readers connect at once", lat, el, err)
        starts: list[float] = []
        lat, el, err = await load(
            port, key, args.readers, get_setpoints, args.duration_s, args.max_requests,
            poll_s=args.poll_s, conns=conns, starts=starts,
        )  # fmt: skip
        show(f"GET setpoints, {args.readers} readers every ~{args.poll_s:g} s", lat, el, err)
        open_loop = (np.asarray(starts), lat)
        lat, el, err = await load(
            port, key, args.readers, get_setpoints, args.duration_s, args.max_requests
        )
        show(f"GET setpoints, {args.readers} readers, closed loop", lat, el, err)

        # Readings stamped at the service's own (simulated) clock, never ahead of it (the
        # API refuses readings from the future), and 0 kW, which every asset can report.
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            sp = await c.get("/api/v1/setpoints", headers={"Authorization": f"Bearer {key}"})
        ts = sp.json()["at"]

        async def post_telemetry(conn):
            body = {
                "readings": [
                    {"asset": assets[i % len(assets)], "ts": ts, "p_kw": 0.0}
                    for i in range(args.batch)
                ]
            }
            return await conn.request("POST", "/api/v1/telemetry", json.dumps(body).encode())

        lat, el, err = await load(
            port, key, args.writers, post_telemetry, args.duration_s, args.max_requests
        )
        show(f"POST telemetry, {args.writers} writers x {args.batch} readings", lat, el, err)
        print(f"  = {len(lat) * args.batch / el:,.0f} readings/s")
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            cycles = (
                await c.get(
                    "/api/v1/cycles", params={"limit": 500},
                    headers={"Authorization": f"Bearer {key}"},
                )
            ).json()  # fmt: skip
        print(f"cycles run by the service meanwhile: {len(cycles)}")
        split_by_cycles(*open_loop, cycles)
    finally:
        stop_service(proc, tmp)
    return 0


def stop_service(proc: subprocess.Popen, tmp: tempfile.TemporaryDirectory) -> None:
    """Stop the service a bench started (SIGTERM, then kill after 30 s) and its database."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    tmp.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/parks/demo.yaml")
    ap.add_argument("--readers", type=int, default=200)
    ap.add_argument("--poll-s", type=float, default=1.0)
    ap.add_argument("--writers", type=int, default=10)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--duration-s", type=float, default=15.0)
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--start", default=None, help="simulated start (default now)")
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--ready-timeout-s", type=float, default=180.0)
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
