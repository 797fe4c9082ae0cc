"""``vpp simulate`` runs the uncontrolled baseline in a second process when asked (or from a
day of simulated time): the same figures as the serial run, to the last digit."""

from __future__ import annotations

import json
from pathlib import Path

from vpp.cli import main

TIMING = ("cycle", "solve", "wall", "_s_")  # KPI names of run time: differ run to run


def _run(out: Path, flag: str) -> dict:
    code = main(
        ["simulate", "--config", "configs/parks/demo.yaml", "--start", "2026-07-13",
         "--days", "0.06", "--forecast", "naive", "--out", str(out), "--quiet", flag]
    )  # fmt: skip
    assert code == 0
    return json.loads((out / "kpis.json").read_text())


def _figures(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not any(t in k for t in TIMING)}


def test_parallel_baseline_equals_the_serial_one(tmp_path: Path) -> None:
    par = _run(tmp_path / "par", "--parallel-baseline")
    ser = _run(tmp_path / "ser", "--no-parallel-baseline")
    assert par["baseline"]["controller"] == "uncontrolled"
    assert _figures(par["baseline"]) == _figures(ser["baseline"])
    assert par["baseline"]["total_cost_cny"] > 0
    assert _figures(par).keys() == _figures(ser).keys()
    assert par["total_cost_cny"] == ser["total_cost_cny"]
