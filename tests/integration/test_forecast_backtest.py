"""Backtest on the real SimBench profiles through the CLI command (reads package data)."""

from __future__ import annotations

import pytest

from vpp.cli import main


@pytest.mark.slow
def test_backtest_command_on_simbench_load_and_pv(capsys, tmp_path):
    plot = tmp_path / "bt.png"
    rc = main(
        [
            "forecast", "backtest",
            "--series", "simbench:G1-B",
            "--series", "pv:simbench:PV3",
            "--test-days", "14", "--issue-every", "24", "--refit-days", "30",
            "--plot", str(plot),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert plot.exists() and plot.stat().st_size > 10_000
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("model")]
    load_all = next(r for r in rows if r[1] == "all")
    # columns: forecaster lead n MAE RMSE nMAE pinball coverage skill...
    assert float(load_all[3]) > 0.0
    assert "skill vs seasonal_naive_1w" in out and "skill vs smart_persistence" in out


def test_unknown_series_is_a_user_error(capsys):
    assert main(["forecast", "backtest", "--series", "simbench:NOPE"]) == 2
    assert "unknown" in capsys.readouterr().err
