"""Benchmark of the forecasters: fit one year of 15-minute history for 50 series, then
predict all of them for one interval (the runtime's every-15-minutes call).

The 50 series are 35 loads (the 15 SimBench commercial profiles G*, scaled and cycled) and
15 PV arrays (SimBench PV1..PV8 cloudiness at Hangzhou, several sizes and tilts). Prints the
median of several runs. Goals: fit < 60 s, predict < 0.2 s on this machine.

Run: ``.venv/bin/python bench/forecasters.py [--runs-fit 3] [--runs-predict 20]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# This file is named like the package it measures: drop bench/ from the import path so that
# ``import forecasts`` finds the package, not this script.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import pandas as pd  # noqa: E402

from forecasts.load import LoadForecaster  # noqa: E402
from forecasts.pv import PvForecaster  # noqa: E402
from forecasts.types import Series  # noqa: E402
from vpp.park import profiles  # noqa: E402
from vpp.park.model import Horizon, Location, Profile, PvArray  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)
N_LOADS, N_PV = 35, 15


def _data():
    start = datetime(2016, 1, 1, tzinfo=TZ)
    n = 366 * 96
    times = pd.date_range(start, periods=n, freq=STEP)
    horizon = Horizon(start, STEP, n)
    commercial = [p for p in profiles.available("load") if p.startswith("G")]
    loads = [
        Series(
            horizon,
            profiles.load_kw(Profile(f"simbench:{commercial[i % 15]}", 50.0 + 10 * i), times),
        )
        for i in range(N_LOADS)
    ]
    loc = Location(30.25, 120.17)
    sites, pv_series = [], []
    for i in range(N_PV):
        kwp = 50.0 + 25 * i
        pv = PvArray(
            f"pv{i}", "bus", kwp, 0.9 * kwp, tilt_deg=10 + 2 * i, weather=f"simbench:PV{i % 8 + 1}"
        )
        sites.append((pv, loc))
        pv_series.append(Series(horizon, profiles.pv_available_kw(pv, loc, times)))
    return loads, sites, pv_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-fit", type=int, default=3)
    parser.add_argument("--runs-predict", type=int, default=20)
    args = parser.parse_args()
    loads, sites, pv_series = _data()
    cut = 365 * 96  # fit on one year, predict the last day
    load_hist = [Series(Horizon(s.horizon.start, STEP, cut), s.values_kw[:cut]) for s in loads]
    pv_hist = [Series(Horizon(s.horizon.start, STEP, cut), s.values_kw[:cut]) for s in pv_series]
    fit_load, fit_pv = [], []
    for _ in range(args.runs_fit):
        t0 = time.perf_counter()
        load_fc = LoadForecaster().fit_many(load_hist)
        t1 = time.perf_counter()
        pv_fc = PvForecaster(sites).fit_many(pv_hist)
        t2 = time.perf_counter()
        fit_load.append(t1 - t0)
        fit_pv.append(t2 - t1)
    horizon = Horizon(load_hist[0].end, STEP, 96)
    recent_load = [s.tail(10 * 96) for s in load_hist]
    recent_pv = [s.tail(2 * 96) for s in pv_hist]
    pred_load, pred_pv = [], []
    for _ in range(args.runs_predict):
        t0 = time.perf_counter()
        load_fc.predict_many(horizon, recent_load)
        t1 = time.perf_counter()
        pv_fc.predict_many(horizon, recent_pv)
        t2 = time.perf_counter()
        pred_load.append(t1 - t0)
        pred_pv.append(t2 - t1)
    med = statistics.median
    print(
        f"cores: {os.cpu_count()}, series: {N_LOADS} loads + {N_PV} PV, one year of 15-min history"
    )
    print(
        f"fit     loads {med(fit_load):6.2f} s   PV {med(fit_pv):6.2f} s   "
        f"total {med(a + b for a, b in zip(fit_load, fit_pv, strict=True)):6.2f} s   (goal < 60 s)"
        f"   median of {args.runs_fit}"
    )
    total = [a + b for a, b in zip(pred_load, pred_pv, strict=True)]
    print(
        f"predict loads {med(pred_load):6.3f} s   PV {med(pred_pv):6.3f} s   "
        f"total {med(total):6.3f} s   (goal < 0.2 s)   median of {args.runs_predict}, "
        f"max {max(total):.3f} s"
    )


if __name__ == "__main__":
    main()
