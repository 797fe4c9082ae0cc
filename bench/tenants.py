"""The tenant park (configs/parks/tenant_park.yaml, issue #21 item 3) dispatched for each
billing contract, every meter billed on its own afterwards.

    .venv/bin/python bench/tenants.py [--days 2] [--start 2026-07-15] [--forecast perfect]

Runs the mpc controller in closed loop twice on the same seeded park: once planning for the
connection's netted bill (``metering.billing: netted``) and once for the sum of the meters'
own bills (``per_meter``). Prints, realised, each meter's bill (energy + demand charge on its
own peak, pro-rated to the days run), their sum and the connection's netted bill under each
plan, and the median solve time per interval. Under a per-meter contract the park pays the
sum; under a netted one, the connection. A shiftable load whose night window outlasts the
run (the heat-treatment furnace) moves energy past the run's end in one plan more than the
other: its meter's difference is partly that, not a saving.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controllers.mpc import MpcController  # noqa: E402
from vpp.park.config import load_site  # noqa: E402
from vpp.park.model import Billing  # noqa: E402
from vpp.sim.closed_loop import simulate  # noqa: E402

PARK = ROOT / "configs" / "parks" / "tenant_park.yaml"


class Timed(MpcController):
    """The mpc controller, each dispatch timed (s)."""

    def __init__(self) -> None:
        super().__init__()
        self.solve_s: list[float] = []

    def dispatch(self, problem):
        t0 = time.perf_counter()
        out = super().dispatch(problem)
        self.solve_s.append(time.perf_counter() - t0)
        return out


def run(billing: Billing, start: datetime, days: float, forecast: str) -> tuple[dict, Timed]:
    site = load_site(PARK)
    site = dataclasses.replace(site, metering=dataclasses.replace(site.metering, billing=billing))
    ctrl = Timed()
    result = simulate(site, start, days, ctrl, forecast=forecast)
    return result.tenants, ctrl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--start", default="2026-07-15")
    ap.add_argument("--forecast", default="perfect", choices=["perfect", "naive", "model"])
    args = ap.parse_args()
    start = datetime.fromisoformat(args.start).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    docs, solve = {}, {}
    for billing in (Billing.NETTED, Billing.PER_METER):
        docs[billing], solve[billing] = run(billing, start, args.days, args.forecast)
    rows: dict[str, dict] = {}
    for billing, doc in docs.items():
        for x in doc["meters"]:
            rows.setdefault(x["meter"], {})[billing] = x["bill"]["total_cny"]
        rows.setdefault("sum of the meters", {})[billing] = sum(
            x["bill"]["total_cny"] for x in doc["meters"]
        )
        rows.setdefault("connection (netted)", {})[billing] = doc["connection_bill"]["total_cny"]
    print(
        f"tenant park, {args.start} + {args.days:g} days, forecast {args.forecast}; CNY, realised"
    )
    print(f"{'meter':<22}{'netted plan':>14}{'per_meter plan':>16}{'difference':>12}")
    for name, r in rows.items():
        a, b = r[Billing.NETTED], r[Billing.PER_METER]
        print(f"{name:<22}{a:14,.1f}{b:16,.1f}{b - a:12,.1f}")
    for billing, c in solve.items():
        print(
            f"{billing}: median solve per interval {1000 * statistics.median(c.solve_s):.0f} ms, "
            f"models built {c.builds}, MILPs answered by their LP relaxation "
            f"{c.relaxation_hits} of {len(c.solve_s)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
