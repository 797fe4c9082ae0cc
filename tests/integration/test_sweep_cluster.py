"""``vpp sweep --scheduler tcp://...`` against a real Dask cluster on loopback: a scheduler
and two workers started as separate processes (the ``dask`` command line), the sweep run
by the ``vpp`` command line, every case computed by one of those two workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _wait_for(path: Path, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.2)
    raise AssertionError(f"{path} did not appear in {timeout_s} s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_sweep_on_a_scheduler_and_two_worker_processes(tmp_path):
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3"}
    sched_file = tmp_path / "scheduler.json"
    log = (tmp_path / "dask.log").open("w")
    procs = []
    try:
        procs.append(subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(sched_file)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        ))  # fmt: skip
        address = _wait_for(sched_file)["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            ))  # fmt: skip
        spec = tmp_path / "s.yaml"
        spec.write_text(
            "days: 0.03125\nstart: 2026-07-20\nhistory_days: 7\nbaseline: true\naxes:\n"
            "  controller: [mpc]\n  seed: [11, 12]\n",
            encoding="utf-8",
        )
        out = tmp_path / "out"
        cmd = [str(BIN / "vpp"), "sweep", "--config", "configs/parks/manufacturing.yaml",
               "--spec", str(spec), "--out", str(out), "--scheduler", address]  # fmt: skip
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "4 cases: 4 run now, 0 done before (skipped), 0 failed" in done.stdout
        assert "sweep: 4/4 done (0 skipped), 0 failed, 0 left" in done.stderr
        df = pd.read_parquet(out / "results.parquet")
        assert len(df) == 4 and set(df.status) == {"ok"}
        # Every case ran in one of the two worker processes started here (no nanny: the
        # worker is the process itself), and both took cases.
        pids = {p.pid for p in procs[1:]}
        ran_on = {int(w.rsplit(":", 1)[1]) for w in df.worker}
        assert ran_on <= pids and len(ran_on) == 2
    finally:
        _stop(procs)
        log.close()
    assert all(p.poll() is not None for p in procs)
