"""The operator's page against a running service on loopback, while cycles run.

Starts ``vpp run`` (demo park, simulated clock ``--speed``, a temporary SQLite database) as
a subprocess, lets it run ``--warmup-s`` so the database holds some history, then measures,
bounded in count and time:

* first meaningful paint: a fresh browser context (Debian's Chromium, headless) with the
  key already given opens ``/``; the time from navigation start until the Now view's import
  chart holds the service's figures (and the browser's first contentful paint), ``--loads``
  times;
* live updates: with the page open, for each cycle in ``--live-s`` the time from the
  service publishing the plan (seen by polling ``/api/v1/setpoints`` every 10 ms from here)
  to the page showing that plan version (the page's own clock, the same machine's);
* the page's data endpoints (``/now``, ``/network``, ``/month-to-date``, ``/dr-events``,
  ``/cycles``, ``/me``): each one's first answer (a view no page had open is computed when
  asked for), then under ``--readers`` concurrent readers, each polling one endpoint
  after another every ``--poll-s`` seconds out of phase for ``--duration-s``, while cycles
  run: p50/p99 per endpoint and over all.

Goals: first meaningful paint under 1 s, live updates within 2 s of a new cycle, data
endpoints p99 under 50 ms. Usage: python bench/webpage.py [--speed 600] [--duration-s 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_latency import Conn, _free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ENDPOINTS = (
    "/api/v1/now",
    "/api/v1/network",
    "/api/v1/month-to-date",
    "/api/v1/dr-events",
    "/api/v1/cycles?limit=48",
    "/api/v1/me",
)
PAINTED = (
    "Number((document.querySelector('#chart-import') || {dataset: {}}).dataset.points || 0) > 0"
)


def start_service(args, port: int, key: str, db_url: str) -> subprocess.Popen:
    env = dict(os.environ, VPP_ADMIN_KEY=key, VPP_DATABASE_URL=db_url)
    cmd = [
        sys.executable, "-m", "vpp.cli", "run", "--config", args.config,
        "--port", str(port), "--speed", str(args.speed), "--start", args.start,
    ]  # fmt: skip
    log = open(Path(tempfile.gettempdir()) / f"vpp-bench-web-{port}.log", "w")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


BREAKDOWN = """(() => {
  const r = (k) => performance.getEntriesByType('resource').find((e) => e.name.includes(k));
  const m = (k) => (performance.getEntriesByName(k)[0] || {}).startTime;
  const nav = performance.getEntriesByType('navigation')[0];
  return {html: nav.responseEnd, scripts: nav.domContentLoadedEventEnd,
          me: (r('/api/v1/me') || {}).responseEnd, now: (r('/api/v1/now') || {}).responseEnd,
          drawn: m('vpp:now-drawn'), fcp: m('first-contentful-paint')};
})()"""


def first_paint(browser, base: str, key: str, loads: int) -> list[dict[str, float]]:
    """For ``loads`` fresh contexts (no cache), ms from navigation start to: the page's
    HTML, its scripts run (DOMContentLoaded), /me and /now answered, the Now view drawn
    (its mark ``vpp:now-drawn``: charts, cards and tables from the service's figures), and
    the browser's first contentful paint."""
    out = []
    for _ in range(loads):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        ctx.add_init_script(f"sessionStorage.setItem('vpp.key', {key!r})")
        page = ctx.new_page()
        page.goto(base + "/")
        page.wait_for_function(PAINTED, timeout=30_000, polling="raf")
        page.wait_for_function("performance.getEntriesByName('vpp:now-drawn').length > 0")
        out.append(page.evaluate(BREAKDOWN))
        ctx.close()
    return out


def live_latency(browser, base: str, key: str, live_s: float) -> list[float]:
    """Seconds from a plan's publication to the page showing it, for every cycle."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    ctx.add_init_script(f"sessionStorage.setItem('vpp.key', {key!r})")
    page = ctx.new_page()
    page.expose_function("benchShown", lambda v: shown.setdefault(int(v), time.time()))
    shown: dict[int, float] = {}
    published: dict[int, float] = {}
    page.goto(base + "/")
    page.wait_for_function(PAINTED, timeout=30_000)
    page.evaluate(
        """() => new MutationObserver(
              () => window.benchShown(document.body.dataset.shownPlanVersion || 0))
            .observe(document.body,
              {attributes: true, attributeFilter: ['data-shown-plan-version']})"""
    )
    stop = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            while not stop.is_set():
                try:
                    v = c.get("/api/v1/setpoints").json()["plan_version"]
                    published.setdefault(int(v), time.time())
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                time.sleep(0.01)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    end = time.monotonic() + live_s
    while time.monotonic() < end:
        page.wait_for_timeout(200)  # the browser's event loop runs meanwhile
    page.wait_for_timeout(2500)  # the last cycle's page update
    stop.set()
    th.join(2)
    ctx.close()
    first = min(published) if published else 0
    return [shown[v] - published[v] for v in sorted(published) if v > first and v in shown]


async def endpoint_load(port: int, key: str, readers: int, poll_s: float, duration_s: float):
    lat: dict[str, list[float]] = {p: [] for p in ENDPOINTS}
    errors: list = []
    stop_at = time.monotonic() + duration_s

    async def reader(i: int) -> None:
        conn = Conn("127.0.0.1", port, key)
        await asyncio.sleep(random.random() * poll_s)
        k = i
        while time.monotonic() < stop_at:
            path = ENDPOINTS[k % len(ENDPOINTS)]
            k += 1
            t0 = time.perf_counter()
            try:
                status = await conn.request("GET", path)
                if status >= 400:
                    errors.append(status)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
                conn.close()
                conn.w = None
            dt = time.perf_counter() - t0
            lat[path].append(dt)
            await asyncio.sleep(max(poll_s - dt, 0.0) * (0.5 + random.random()))
        conn.close()

    await asyncio.gather(*(reader(i) for i in range(readers)))
    return lat, errors


def show(name: str, xs, unit: str = "ms", scale: float = 1.0) -> None:
    a = np.asarray(xs, float) * scale
    if not len(a):
        print(f"{name:<40} no samples")
        return
    q = np.percentile(a, [50, 99])
    print(
        f"{name:<40} n {len(a):>6,}   p50 {q[0]:7.1f} {unit}   p99 {q[1]:7.1f} {unit}"
        f"   max {a.max():7.1f} {unit}"
    )


def run(args) -> int:
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"no Chromium at {CHROMIUM}: run scripts/chromium.sh")
    port = _free_port()
    key = "vpp_" + secrets.token_hex(8) + "_" + secrets.token_urlsafe(24)
    tmp = tempfile.TemporaryDirectory()
    proc = start_service(args, port, key, f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}")
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_ready(base, args.ready_timeout_s))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            c.get("/api/v1/me")  # builds the network model, as a page's sign-in does
            time.sleep(args.warmup_s)  # history: telemetry and plans of a few intervals
            n_cycles = len(c.get("/api/v1/cycles?limit=500").json())
        print(
            f"webpage bench: demo park, --speed {args.speed:g}, {n_cycles} cycles stored "
            f"after {args.warmup_s:g} s; Chromium headless"
        )
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            loads = first_paint(browser, base, key, args.loads)
            show("first meaningful paint (Now view drawn)", [x["drawn"] for x in loads])
            for k, what in (
                ("fcp", "first contentful paint"),
                ("html", "  of which: the page's HTML"),
                ("scripts", "  scripts run (DOMContentLoaded)"),
                ("me", "  /api/v1/me answered"),
                ("now", "  /api/v1/now answered"),
            ):
                show(what, [x[k] for x in loads if x.get(k) is not None])
            live = live_latency(browser, base, key, args.live_s)
            show("new cycle -> shown on the page", live, "s")
            browser.close()
        # A view no page has shown for a while is computed when first asked for (then kept
        # fresh with every cycle while pages ask for it): that first answer, on its own line.
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            cold = {}
            for path in ENDPOINTS:
                t0 = time.perf_counter()
                c.get(path)
                cold[path] = time.perf_counter() - t0
        print(
            "first answer of each endpoint (a view no page had open): "
            + ", ".join(f"{p.split('?')[0].removeprefix('/api/v1/')} {s * 1000:.0f} ms"
                        for p, s in cold.items())
        )  # fmt: skip
        lat, errors = asyncio.run(
            endpoint_load(port, key, args.readers, args.poll_s, args.duration_s)
        )
        print(
            f"data endpoints, {args.readers} readers polling every {args.poll_s:g} s for "
            f"{args.duration_s:g} s while cycles run (errors {len(errors)}):"
        )
        for path, xs in lat.items():
            show(f"  GET {path}", xs, scale=1000)
        show("  all", [x for xs in lat.values() for x in xs], scale=1000)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as c:
            cycles = c.get("/api/v1/cycles?limit=500").json()
        print(f"cycles stored at the end: {len(cycles)}")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        tmp.cleanup()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/parks/demo.yaml")
    ap.add_argument("--speed", type=float, default=600.0)
    ap.add_argument("--start", default="2026-07-15T06:00:00+08:00")
    ap.add_argument("--warmup-s", type=float, default=15.0)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--live-s", type=float, default=15.0)
    ap.add_argument("--readers", type=int, default=10)
    ap.add_argument("--poll-s", type=float, default=0.5)
    ap.add_argument("--duration-s", type=float, default=15.0)
    ap.add_argument("--ready-timeout-s", type=float, default=180.0)
    return run(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
