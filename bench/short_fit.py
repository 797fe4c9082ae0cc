"""The load forecaster as the closed loop fits it: 28 days, then forecasts from the measured
past (issue #13), with and without the day of the year as a feature.

    .venv/bin/python bench/short_fit.py [--cases flat_offpeak:2026-06-01,demo:2026-07-15,...]
        [--fit-days 28] [--cycles 36] [--every-h 2]

For each park and start: the simulated park's truth for the ``fit-days`` before the start is
the history the model is fitted on (``forecasts.load.LoadForecaster`` with the settings of
``vpp.plan.history_forecasters.ModelForecasts``); then ``cycles`` forecasts of 96 steps, one
every ``every-h`` hours, each from the truth measured up to its issue time. Printed per case:
the WAPE (sum of absolute errors over sum of loads) of every load's P50, once with the day of
the year as a feature (today's default) and once without it (``season_min_days=365``). On
28 days the model can take a date just after its fit for the last days it saw: on the flat
off-peak park it forecast an office's 07:00 on 2 June at a third of its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecasts.load import LoadForecaster  # noqa: E402
from vpp.park.config import load_site  # noqa: E402
from vpp.park.model import Horizon  # noqa: E402
from vpp.plan.history_forecasters import MeasuredHistory, asset_names  # noqa: E402
from vpp.sim.simulated_park import SimulatedPark  # noqa: E402

CASES = (
    "flat_offpeak:2026-06-01,flat_offpeak:2026-01-12,demo:2026-07-15,fleet_depot:2026-09-08,"
    "manufacturing:2026-07-21,pedf_campus:2026-04-06"
)
HORIZON = 96
RECENT_DAYS = 8  # what ModelForecasts reads for the features


def wape(park: str, day: str, season_min_days: int, fit_days: int, cycles: int, every: int):
    """WAPE of the loads' P50 over ``cycles`` forecasts, and the seconds it took."""
    site = load_site(ROOT / "configs" / "parks" / f"{park}.yaml")
    step = timedelta(minutes=site.dispatch.step_minutes)
    t0 = datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(site.location.tz))
    h0 = t0 - timedelta(days=fit_days + RECENT_DAYS)
    truth_park = SimulatedPark(site, seed=0, start=h0)
    _, loads = asset_names(site)
    k0 = round((t0 - h0) / step)
    full = Horizon(h0, step, k0 + cycles * every + HORIZON)
    truth = truth_park.truth(full)
    hist = MeasuredHistory(h0, step, loads)
    hist.extend({n: truth[n][:k0] for n in loads})
    hist.now = t0
    started = time.perf_counter()
    model = LoadForecaster(
        seed=0,
        max_rows=60_000,
        rows_per_series=6_000,
        calendar=site.calendar,
        season_min_days=season_min_days,
    ).fit_many([hist.series(n, fit_days) for n in loads])
    err = total = 0.0
    for c in range(cycles):
        k = k0 + c * every
        if c:
            hist.extend({n: truth[n][k - every : k] for n in loads})
        hist.now = h0 + k * step
        h = Horizon(hist.now, step, HORIZON)
        qs = model.predict_many(h, [hist.series(n, RECENT_DAYS) for n in loads])
        for n, q in zip(loads, qs, strict=True):
            t = truth[n][k : k + HORIZON]
            err += float(np.abs(q.p50_kw - t).sum())
            total += float(np.abs(t).sum())
    return err / total, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=CASES, help="park:YYYY-MM-DD, comma-separated")
    ap.add_argument("--fit-days", type=int, default=28)
    ap.add_argument("--cycles", type=int, default=36)
    ap.add_argument("--every-h", type=float, default=2.0)
    a = ap.parse_args(argv)
    every = max(1, round(a.every_h * 4))  # 15-minute steps
    print(
        f"load forecaster fitted on {a.fit_days} days, {a.cycles} forecasts of {HORIZON} steps "
        f"every {a.every_h:g} h: WAPE of the loads' P50"
    )
    print(f"{'park':<16}{'start':<12}{'with day of year':>18}{'without':>10}{'s':>7}")
    for case in a.cases.split(","):
        park, day = case.split(":")
        with_doy, s1 = wape(park, day, 0, a.fit_days, a.cycles, every)
        without, s2 = wape(park, day, 365, a.fit_days, a.cycles, every)
        print(f"{park:<16}{day:<12}{with_doy:18.3f}{without:10.3f}{s1 + s2:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
