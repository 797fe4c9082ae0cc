"""A researcher's rolling run through vpp.study: five buildings' batteries and PV on hourly
data, a day-ahead horizon, persistence forecasts (yesterday at this hour), the realised SOC
fed forward. Prints the time per solve, the builds and the bill against the park without
batteries (synthetic seeded data: the shape of the public benchmarks, not their numbers).

    .venv/bin/python bench/study_rolling.py --days 14 --horizon 24
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vpp import study


def _data(days: int, seed: int) -> tuple[study.Series, list[str]]:
    rng = np.random.default_rng(seed)
    T, h = 24 * days, np.arange(24 * days) % 24
    names = [f"B{i}" for i in range(5)]
    load = sum(30 + 20 * np.exp(-(((h - 14) / 4) ** 2)) + 5 * rng.random(T) for _ in names)
    sun = np.clip(np.sin(np.pi * (h - 6) / 12), 0, None)
    cloud = np.repeat(0.4 + 0.6 * rng.random(days), 24)
    pv = {f"{n}-pv": 25.0 * sun * cloud for n in names}
    price = 0.08 + 0.10 * np.exp(-(((h - 19) / 2.5) ** 2)) + 0.02 * rng.standard_normal(T)
    return study.Series(load_kw=load, price_per_kwh=price, pv_kw=pv), names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data, names = _data(args.days, args.seed)
    park = study.Park(
        batteries=[study.Battery(f"{n}-bat", 60.0, 25.0) for n in names],
        pv=[study.Pv(f"{n}-pv") for n in names],
        currency="EUR",
    )
    load = np.asarray(data.load_kw)

    def persistence(k: int, n: int):
        idx = np.arange(k, k + n)
        back = idx - 24 * ((idx - k) // 24 + 1)  # the last observed step at this hour
        f_load = np.where(back >= 0, load[np.maximum(back, 0)], load[: max(k, 1)].mean())
        return f_load, {x: a[idx] for x, a in data.pv_kw.items()}  # PV: the truth (a stand-in)

    t0 = time.perf_counter()
    out = study.run(park, data, args.horizon, forecast=persistence)
    wall = time.perf_counter() - t0
    T = load.size
    pv = sum(np.asarray(a) for a in data.pv_kw.values())
    bare = float(np.asarray(data.price_per_kwh) @ np.maximum(load - pv, 0.0))
    gap = load + sum(out.battery_p_kw.values()) - sum(out.pv_used_kw.values()) - out.net_kw
    soc = np.concatenate(list(out.battery_soc_frac.values()))
    print(f"steps {T}, horizon {args.horizon} h, 5 batteries + 5 PV arrays")
    print(
        f"wall {wall:.1f} s, solver path {out.solve_s:.1f} s, {1000 * out.solve_s / T:.1f} ms/step"
    )
    print(f"statuses: {sorted(set(out.status))}")
    print(f"bill {out.energy_cost:.2f} {out.currency} vs {bare:.2f} without batteries "
          f"({100 * (1 - out.energy_cost / bare):.1f} % less)")  # fmt: skip
    print(f"balance gap max {np.abs(gap).max():.2e} kW; SOC in [{soc.min():.3f}, {soc.max():.3f}]")


if __name__ == "__main__":
    main()
