"""Price series rule (vpp.park.series): a year of 15-minute cleared prices (35,040 rows) in a
park file, resolved on one planning cycle's horizon (96 steps), with a day of posted rows
merged over it (the service's cycle), and on a 30-day run (the closed loop's bill).

Usage: python bench/series.py [--days 365] [--runs 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from vpp.park.series import IntervalSeries, merge, resolve

TZ = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)


def _ms(fn, runs: int) -> float:
    fn()  # warm: the UTC seconds of the file's rows are computed once
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return 1000.0 * (time.perf_counter() - t0) / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=365, help="days of 15-minute rows in the file")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    t0 = datetime(2026, 1, 1, tzinfo=TZ)
    n = args.days * 96
    starts = tuple(t0 + k * Q for k in range(n))
    prices = tuple(0.3 + 0.5 * (k % 96) / 96 for k in range(n))
    file = IntervalSeries("file", 15, starts, prices, (None,) * n)
    at = t0 + timedelta(days=args.days // 2, hours=8)
    k0 = (args.days // 2) * 96 + 32
    issued = at - timedelta(hours=14)
    posted = IntervalSeries("posted", 15, starts[k0 : k0 + 96], (1.0,) * 96, (issued,) * 96)
    t_build = time.perf_counter()
    file.utc_s  # noqa: B018 (the one-off conversion, measured)
    build_ms = 1000.0 * (time.perf_counter() - t_build)
    fb96, fb30 = np.full(96, 0.5), np.full(30 * 96, 0.5)
    rows = [
        ("file rows to UTC seconds, once", build_ms),
        ("96-step horizon, file only", _ms(lambda: resolve(file, at, Q, 96, at, fb96), args.runs)),
        (
            "96-step horizon, 96 posted rows merged",
            _ms(lambda: resolve(merge(file, posted), at, Q, 96, at, fb96), args.runs),
        ),
        (
            "30-day run (2,880 steps), file only",
            _ms(lambda: resolve(file, t0, Q, 30 * 96, at, fb30), max(args.runs // 4, 1)),
        ),
    ]
    print(f"series rule over {n:,} file rows ({args.days} days of 15 min), {args.runs} runs")
    for label, ms in rows:
        print(f"  {label:<42}{ms:8.2f} ms")


if __name__ == "__main__":
    main()
