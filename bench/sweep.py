"""Sweeps on Dask against the same cases run serially: speed-up, per-task overhead, memory.

    .venv/bin/python bench/sweep.py [--cases 8] [--runs 3] [--days 0.0625] [--workers 2]
        [--park configs/parks/manufacturing.yaml]

``--cases`` mpc cases of ``--days`` each (seeds 1..N: one park, distinct keys, nothing
skipped; every run writes to a fresh folder). Each run times, side by side in one process:

- ``serial s``: every case one after another in this process (:func:`run_serial`);
- ``dask s``: the same cases through :func:`run_sweep` on one ``LocalCluster`` of
  ``--workers`` processes of one thread (started once before the runs, its start-up and the
  workers' first import of the simulation reported apart), result files written as in
  ``vpp sweep``;
- ``pool s``: the same cases on a plain ``ProcessPoolExecutor`` of ``--workers`` processes
  (warmed the same way), the control: what two processes give on this machine without
  Dask (on a shared machine, neighbours' load shows here as much as in ``dask s``);
- ``speed-up`` = serial / dask;
- ``overhead s`` (per task, the goal's figure): ``(dask wall x workers - sum of the cases'
  own compute s) / cases``: scheduling, pickling the case, sending the result, the client
  writing its file, and any worker idle at the end, charged to each task;
- ``in-task s``: median over tasks of Dask's own compute time of the task minus the case's
  compute time (the wrapper inside the worker);
- ``worker RSS MB``: peak resident memory of a worker process (``VmHWM``), the largest.

Medians of ``--runs`` runs are printed last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from vpp.sweep.runner import dask_client, run_serial, run_sweep  # noqa: E402
from vpp.sweep.spec import base_from_config, load_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _spec(folder: Path, cases: int, days: float) -> Path:
    p = folder / "bench_sweep.yaml"
    seeds = list(range(1, cases + 1))
    p.write_text(
        f"description: bench\ndays: {days}\nstart: 2026-07-20\nforecast: naive\n"
        f"baseline: false\naxes:\n  controller: [mpc]\n  seed: {seeds}\n",
        encoding="utf-8",
    )
    return p


def _in_task_s(client, docs: list[dict], since_unix_s: float) -> float:
    """Median of (Dask's compute time of the task - the case's own compute time)."""
    stream = client.get_task_stream(start=since_unix_s)
    own = {f"vpp-case-{d['key']}": d["compute_s"] for d in docs}
    diffs = []
    for t in stream:
        key = str(t.get("key", ""))
        prefix = key.rsplit("-", 1)[0]
        if prefix not in own:
            continue
        comp = [s for s in t["startstops"] if s["action"] == "compute"]
        if comp:
            diffs.append(comp[-1]["stop"] - comp[-1]["start"] - own[prefix])
    return statistics.median(diffs) if diffs else float("nan")


def _pool_case(r) -> float:
    from vpp.sweep.cases import run_case

    return run_case(r)["compute_s"]


def _pool_warm() -> None:
    from vpp.sweep.runner import _warm

    _warm()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--days", type=float, default=0.0625)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--park", default=str(ROOT / "configs" / "parks" / "manufacturing.yaml"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    sweep = load_spec(_spec(tmp, a.cases, a.days), base_from_config(a.park))
    run_serial(type(sweep)(sweep.path, "", sweep.cases[:1]))  # warm: imports, profiles
    t0 = time.perf_counter()
    rows = []
    pool = ProcessPoolExecutor(a.workers, initializer=_pool_warm)
    list(pool.map(_pool_case, sweep.cases[: a.workers]))  # warm (a case in each, mostly)
    with pool, dask_client(workers=a.workers) as client:
        from vpp.sweep.runner import _warm

        client.run(_warm)
        # The first case in a fresh process reads the profiles and sets up the solver (about
        # 6 s here): once per worker, as the serial process and the pool are warmed.
        client.run(_pool_case, sweep.cases[0])
        client.get_task_stream()  # the scheduler records the task stream from its first call
        startup = time.perf_counter() - t0
        print(f"LocalCluster of {a.workers} workers (1 thread each) up and warm in {startup:.1f} s")
        print(f"{a.cases} mpc cases of {a.days:g} days on {Path(a.park).name}")
        print(
            "run  serial s  pool s  dask s  speed-up  overhead s  in-task s  "
            "case s (median)  worker RSS MB"
        )
        for i in range(a.runs):
            t = time.perf_counter()
            serial = run_serial(sweep)
            serial_s = time.perf_counter() - t
            t = time.perf_counter()
            pool_case = statistics.median(pool.map(_pool_case, sweep.cases))
            pool_s = time.perf_counter() - t
            wall0 = time.time()
            t = time.perf_counter()
            done = run_sweep(sweep, tmp / f"run{i}", client=client, stream=None)
            dask_s = time.perf_counter() - t
            assert done.ran == a.cases and done.failed == 0, done
            own = [d["compute_s"] for d in done.docs]
            overhead = (dask_s * a.workers - sum(own)) / a.cases
            in_task = _in_task_s(client, done.docs, wall0)
            rss = max(d["rss_peak_mb"] for d in done.docs)
            case_s = statistics.median(own)
            serial_case = statistics.median(d["compute_s"] for d in serial)
            rows.append(
                (serial_s, dask_s, serial_s / dask_s, overhead, in_task, case_s, rss, pool_s)
            )
            print(
                f"{i + 1:>3}  {serial_s:8.1f}  {pool_s:6.1f}  {dask_s:6.1f}  "
                f"{serial_s / dask_s:8.2f}  {overhead:10.2f}  {in_task:9.3f}  {case_s:6.2f} "
                f"(serial {serial_case:.2f}, pool {pool_case:.2f})  {rss:13.0f}",
                flush=True,
            )
    med = [statistics.median(r[j] for r in rows) for j in range(8)]
    print(
        f"median: serial {med[0]:.1f} s, pool {med[7]:.1f} s ({med[0] / med[7]:.2f}x), "
        f"dask {med[1]:.1f} s, speed-up {med[2]:.2f}x "
        f"(goal >= 1.7x with 2 workers), per-task overhead {med[3]:.2f} s (goal < 1 s), "
        f"in-task {med[4]:.3f} s, worker RSS peak {med[6]:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
