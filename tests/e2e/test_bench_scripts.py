"""Every benchmark script runs as the README prints it (``.venv/bin/python bench/X.py``), at
its smallest size, and prints its figures. A broken bench cannot land again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Every realised figure of the scenario suite's table, and the plan's beside them.
SCENARIO_TABLE = (
    "figure (realised unless plan_)",
    *(
        f"\n{name} "
        for name in (
            "total_cost_cny",
            "peak_import_kw",
            "trafo_violation_steps",
            "line_violation_steps",
            "voltage_violation_steps",
            "converter_short_steps",
            "plan_grid_violation_steps",
            "dr_events_effective",
            "dr_events_settled",
            "ev_sessions_short",
            "ev_short_kwh",
            "unserved_kwh",
            "wall_s",
        )
    ),
    "all figures are the realised park's",
)

# script -> (smallest arguments, a line fragment its figures always contain, or several)
SMALLEST = {
    "dispatch.py": (
        ["--sizes", "S", "--runs", "1", "--variants", "red", "--contend", "0,1"],
        "1 competing busy processes",
    ),
    "grid.py": (["--runs", "1", "--plain-runs", "1"], "closed loop (MpcController"),
    "forecasters.py": (["--runs-fit", "1", "--runs-predict", "1"], "predict loads"),
    "simulate.py": (["--days", "0.05"], "projected 30 days"),
    "garage.py": (
        ["--days", "0.05", "--controllers", "mpc,edf"],
        ("zero realised breaches", "solve per interval"),
    ),
    "ingest.py": (["--assets", "3", "--minutes", "5"], "postgresql"),
    "api_latency.py": (
        ["--duration-s", "2", "--readers", "4", "--writers", "1", "--batch", "10"],
        "cycles run by the service meanwhile",
    ),
    "dr_latency.py": (["--events", "2", "--idle-s", "0.5"], "event-to-plan latency"),
    "gridside.py": (
        ["--events", "2", "--setpoints", "2", "--idle-s", "0.2"],
        ("call-to-plan latency", "OpenADR  idle", "IEC 104  during a cycle"),
    ),
    "field.py": (
        ["--stations", "6", "--modbus", "2", "--runs", "1", "--messages", "50", "--mqtt-runs", "1"],
        ("setpoint fan-out", "messages/s"),
    ),
    "webpage.py": (
        ["--warmup-s", "2", "--loads", "1", "--live-s", "3", "--duration-s", "2", "--readers", "2"],
        "first meaningful paint",
    ),
    "sweep.py": (
        ["--cases", "2", "--runs", "1", "--days", "0.0105"],
        ("speed-up", "per-task overhead", "worker RSS peak"),
    ),
    "series.py": (["--days", "31", "--runs", "2"], "96-step horizon, 96 posted rows merged"),
    "scenarios.py": (
        ["--scenarios", "pedf_campus_spring_festival", "--seeds", "1", "--days", "0.03"],
        SCENARIO_TABLE,
    ),
    "study_rolling.py": (["--days", "2", "--horizon", "12"], ("ms/step", "without batteries")),
    "peak_spread.py": (
        ["--days", "0.1", "--weights", "0:0,0:0.001"],
        ("uncontrolled: peak", "goal at"),
    ),
    "tenants.py": (["--days", "0.05"], ("netted plan", "per_meter plan")),
    "short_fit.py": (
        ["--cases", "flat_offpeak:2026-06-01", "--cycles", "2"],
        ("WAPE of the loads' P50", "with day of year"),
    ),
}
LIBRARIES = {"parks.py"}  # imported by the scripts and the tests, not run


def test_every_bench_script_has_a_smoke_run():
    scripts = {p.name for p in (ROOT / "bench").glob("*.py")} - LIBRARIES
    assert scripts == set(SMALLEST)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_bench_script_runs_as_documented(script, request):
    args, expected = SMALLEST[script]
    if script == "ingest.py":  # it measures PostgreSQL too: the real server, as a test user
        user = request.getfixturevalue("pg_user")
        args = [*args, "--pg-url", f"postgresql+psycopg://{user}@127.0.0.1:5432/test"]
    # From the repository root, by path, exactly as the README prints it: the script's own
    # folder goes first on sys.path, so a bench file named like a package would shadow it.
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    for fragment in [expected] if isinstance(expected, str) else expected:
        assert fragment in done.stdout, (fragment, done.stdout[-3000:])
    assert "Traceback" not in done.stderr
