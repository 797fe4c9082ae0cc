"""Kill ``vpp run`` (SIGKILL, no chance to clean up) while it runs cycles, then start it
again on the same database: the database is intact, every stored cycle is whole, and the
new process continues the plan versions."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def small_park_yaml(tmp_path: Path) -> Path:
    """The demo park trimmed to a few assets, with absolute paths to its tariff and carbon."""
    src = ROOT / "configs/parks/demo.yaml"
    d = yaml.safe_load(src.read_text(encoding="utf-8"))
    a = d["assets"]
    d["assets"] = {
        "pv_arrays": a["pv_arrays"][:2],
        "batteries": a["batteries"][:2],
        "base_loads": a["base_loads"][:3],
        "curtailable_loads": a["curtailable_loads"][:1],
    }
    d["tariff"] = str((src.parent / d["tariff"]).resolve())
    d["carbon"]["factors"] = str((src.parent / d["carbon"]["factors"]).resolve())
    d["dispatch"]["horizon_steps"] = 16
    out = tmp_path / "small.yaml"
    out.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    return out


def _vpp(args: list[str], db: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, VPP_DATABASE_URL=f"sqlite:///{db}")
    return subprocess.Popen(
        [sys.executable, "-m", "vpp.cli", *args], cwd=ROOT, env=env, text=True, **kw
    )


def _cycles(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT c.id, p.version, (SELECT count(*) FROM setpoints s WHERE s.cycle_id = c.id) "
            "FROM cycle_runs c JOIN plans p ON p.cycle_id = c.id ORDER BY c.id"
        ).fetchall()


@pytest.mark.slow
def test_sigkill_mid_run_then_restart(tmp_path):
    park = small_park_yaml(tmp_path)
    db = tmp_path / "vpp.sqlite3"
    run = ["run", "--config", str(park), "--start", "2026-07-15T08:00", "--no-grid"]
    proc = _vpp(
        [*run, "--speed", "3000", "--port", "0"],
        db,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if db.exists() and len(_safe_cycles(db)) >= 4:
                break
            time.sleep(0.2)
        time.sleep(0.13)  # most likely inside a cycle now (they run back to back)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = _cycles(db)
    assert len(before) >= 4
    n_setpoints = before[0][2]
    assert all(k == n_setpoints for _, _, k in before), "a cycle was stored half"
    again = _vpp([*run, "--once"], db, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    after = _cycles(db)
    assert after[-1][1] == before[-1][1] + 1  # plan versions continue
    assert f"plan v{before[-1][1] + 1}" in out


def _safe_cycles(db: Path) -> list[tuple]:
    try:
        return _cycles(db)
    except sqlite3.Error:
        return []  # not migrated yet
