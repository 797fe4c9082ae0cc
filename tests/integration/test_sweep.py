"""``vpp sweep`` on Dask: a LocalCluster of two workers gives the figures of the same cases
run serially; a worker killed mid-case costs nothing but time; a rerun runs only what is
missing or failed (vpp.sweep.runner). Cases are tiny (45 min of the manufacturing park)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from vpp.accounting.kpis import KPI_NAMES
from vpp.sweep.cases import TIMING_KPIS
from vpp.sweep.results import write_table
from vpp.sweep.runner import case_dir, dask_client, run_serial, run_sweep
from vpp.sweep.spec import base_from_config, load_spec
from vpp.sweep.summary import write_summary

ROOT = Path(__file__).resolve().parents[2]
PARK = ROOT / "configs" / "parks" / "manufacturing.yaml"
# Deterministic for a seed: the same inputs through the same solver on one thread. The
# tolerance allows for a different summation order of BLAS in another process, nothing more.
REL, ABS = 1e-7, 1e-6


def spec(tmp_path: Path, seeds: list[int], name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(
        "description: tiny\ndays: 0.03125\nstart: 2026-07-20\nforecast: naive\nhistory_days: 7\n"
        f"baseline: false\naxes:\n  controller: [mpc, uncontrolled]\n  seed: {seeds}\n"
        "  battery_scale: [1, 2]\n",
        encoding="utf-8",
    )
    return p


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def _figures(doc: dict) -> dict:
    return {k: doc["kpis"][k] for k in KPI_NAMES if k not in TIMING_KPIS}


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=REL, abs=ABS)


def test_local_cluster_equals_serial_and_a_rerun_skips(tmp_path, client):
    sw = load_spec(spec(tmp_path, [1, 2]), base_from_config(PARK))
    assert len(sw) == 8
    out = tmp_path / "out"
    done = run_sweep(sw, out, client=client, stream=None)
    assert (done.total, done.ran, done.skipped, done.failed) == (8, 8, 0, 0)
    workers = {d["worker"] for d in done.docs}
    assert len(workers) == 2  # both workers took cases
    serial = {d["key"]: d for d in run_serial(sw)}
    for d in done.docs:
        s = serial[d["key"]]
        assert d["status"] == s["status"] == "ok"
        fa, fb = _figures(d), _figures(s)
        bad = {k: (fa[k], fb[k]) for k in fa if not _same(fa[k], fb[k])}
        assert not bad, f"{d['axes']}: {bad}"
    # The table: one row per case, savings against the uncontrolled case of the same seed
    # and battery size, from the per-case files.
    df = write_table(sw, out)
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    back = pd.read_parquet(out / "results.parquet")
    assert list(back["key"]) == list(df["key"])
    assert back["total_cost_cny"].to_numpy() == pytest.approx(df["total_cost_cny"].to_numpy())
    assert len(pd.read_csv(out / "results.csv")) == 8
    for _, row in df.iterrows():
        ref = df[(df.controller == "uncontrolled") & (df.seed == row.seed)
                 & (df.battery_scale == row.battery_scale)].iloc[0]  # fmt: skip
        assert row.savings_cny == pytest.approx(ref.total_cost_cny - row.total_cost_cny)
        assert row.peak_reduction_kw == pytest.approx(ref.peak_import_kw - row.peak_import_kw)
    assert (df[df.controller == "uncontrolled"].savings_cny == 0).all()
    html = write_summary(df, out, "tiny").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 2 and "http" not in html.replace(
        "http-equiv", ""
    )
    # A rerun runs nothing; one case file lost and one marked failed: those two run again.
    again = run_sweep(sw, out, client=client, stream=None)
    assert (again.ran, again.skipped) == (0, 8)
    keys = [r.key for r in sw.cases]
    (case_dir(out) / f"{keys[0]}.json").unlink()
    f = case_dir(out) / f"{keys[3]}.json"
    doc = json.loads(f.read_text())
    f.write_text(json.dumps({**doc, "status": "failed", "error": "RuntimeError: test"}))
    third = run_sweep(sw, out, client=client, stream=None)
    assert (third.ran, third.skipped, third.failed) == (2, 6, 0)
    assert sorted(d["key"] for d in third.docs) == sorted([keys[0], keys[3]])
    assert not list(case_dir(out).glob("*.tmp"))  # nothing half-written left behind


def test_a_failed_case_is_recorded_and_the_others_finish(tmp_path, client, monkeypatch):
    sw = load_spec(spec(tmp_path, [5]), base_from_config(PARK))
    # A case the simulation refuses (shorter than one interval: ValueError in simulate).
    import dataclasses

    bad = dataclasses.replace(sw.cases[0], days=1e-6)
    sw = dataclasses.replace(sw, cases=(bad, *sw.cases[1:]))
    done = run_sweep(sw, tmp_path / "out", client=client, stream=None)
    assert (done.ran, done.failed) == (4, 1)
    failed = next(d for d in done.docs if d["status"] == "failed")
    assert failed["key"] == bad.key and failed["error"].startswith("ValueError: days:")
    assert "Traceback" in failed["traceback"] and "closed_loop.py" in failed["traceback"]
    assert all(d["status"] == "ok" for d in done.docs if d["key"] != bad.key)
    df = write_table(sw, tmp_path / "out")
    assert df.set_index("key").loc[bad.key, "status"] == "failed"


def test_a_worker_killed_mid_case_and_the_sweep_completes(tmp_path, client):
    sw = load_spec(spec(tmp_path, [3]), base_from_config(PARK))
    killed: dict = {}

    def killer(c, futures) -> None:
        pids = c.run(os.getpid)

        def watch() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                busy = {a: ks for a, ks in c.processing().items() if ks}
                if busy:
                    time.sleep(1.0)  # well inside a case (each takes seconds)
                    addr = next(iter(busy))
                    still = c.processing().get(addr)
                    if still:
                        killed.update(pid=pids[addr], keys=list(still))
                        os.kill(pids[addr], signal.SIGKILL)
                        return
                time.sleep(0.1)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        killed["thread"] = t

    done = run_sweep(sw, tmp_path / "out", client=client, stream=None, on_submitted=killer)
    killed["thread"].join(timeout=5)
    assert "pid" in killed, "no worker was killed while a case ran"
    assert (done.total, done.ran, done.failed) == (4, 4, 0)
    # The case that ran on the killed worker ran again elsewhere (or on its restarted self).
    lost = [d for d in done.docs if f"vpp-case-{d['key']}" in " ".join(killed["keys"])]
    assert lost and all(not d["worker"].endswith(f":{killed['pid']}") for d in lost)
    assert all(d["status"] == "ok" for d in done.docs)
