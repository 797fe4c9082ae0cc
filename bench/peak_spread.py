"""Plans that do not stack peaks (issue #21 item 4): peak against cost on a flat off-peak park.

    .venv/bin/python bench/peak_spread.py [--days 2.9167] [--start 2026-06-01]
        [--weights 0:0,0:0.001,0.05:0.001] [--forecast naive|model|perfect] [--json OUT]
        [--park configs/parks/flat_offpeak.yaml]

The park (configs/parks/flat_offpeak.yaml): five buildings with PV and a battery each on one
connection, a tariff with one flat off-peak block (22:00-08:00) and no demand charge, so every
off-peak interval costs the same and the LP has ties. For each ``spread:ramp`` pair of
grid-friendly weights (``dispatch.peak_spread_cny_per_kw`` and
``dispatch.import_ramp_cny_per_kw``, controllers.grid_friendly; ``0:0`` is the tie-break
only) the MPC runs in closed loop (forecasts from the past, the simulated park) and prints,
realised: the park's peak import, its cost (energy + the value of the energy left in the
batteries) and the saving against the uncontrolled park (no batteries moving), the share of
the first weights' saving each keeps, and how far a cold solve's first setpoints land from the
warm controller's on the same problem (every 8th cycle; kW, worst over batteries and cycles).
The run ends at 22:00 of its third day, before the cheap block, so that every plan ends with
its batteries near the same state (a run cut inside the block values what they hold at the
mean price and flatters the plan that charged first). Then the issue's goal: peak no higher
than the uncontrolled park's while keeping at least 95 % of the cost saving of the plan
without the preference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controllers.mpc import MpcController  # noqa: E402
from vpp.park.config import load_site  # noqa: E402
from vpp.sim.closed_loop import simulate  # noqa: E402

PARK = ROOT / "configs" / "parks" / "flat_offpeak.yaml"


class ColdCheck:
    """The MPC, and every ``every``-th problem also solved by a fresh controller (cold)."""

    def __init__(self, every: int = 8) -> None:
        self.inner = MpcController()
        self.name = self.inner.name
        self.every, self.k = every, 0
        self.gap_kw: list[float] = []

    def dispatch(self, problem):
        r = self.inner.dispatch(problem)
        if self.k % self.every == 0 and r.ok:
            cold = MpcController().dispatch(problem)
            warm_sp, cold_sp = r.setpoints_kw(), cold.setpoints_kw()
            names = [b.spec.name for b in problem.batteries]
            names += [pe.spec.battery.name for pe in problem.pedfs]
            gaps = [abs(warm_sp.get(n, 0.0) - cold_sp.get(n, 0.0)) for n in names]
            self.gap_kw.append(max(gaps, default=0.0))
        self.k += 1
        return r


def run(site, start, days, controller, forecast):
    t0 = time.perf_counter()
    r = simulate(site, start, days, controller, forecast=forecast)
    k = r.kpis
    return {
        "peak_kw": float(k["peak_import_kw"]),
        "cost_cny": float(k["total_cost_cny"]),
        "energy_cost_cny": float(k["energy_cost_cny"]),
        "stored_energy_cost_cny": float(k["stored_energy_cost_cny"]),
        "wall_s": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # To 22:00 of the third day, before the cheap block: a run cut inside it values whatever
    # the batteries hold at the mean price, and the plan that charged first looks richer.
    ap.add_argument("--days", type=float, default=2 + 22 / 24)
    ap.add_argument("--start", default="2026-06-01")
    ap.add_argument(
        "--weights", default="0:0,0:0.001,0.05:0.001", help="spread:ramp pairs, comma-separated"
    )
    ap.add_argument("--forecast", default="naive", choices=["naive", "model", "perfect"])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--park", type=Path, default=PARK, help="another park, to check the weights")
    a = ap.parse_args(argv)
    site = load_site(a.park)
    start = datetime.fromisoformat(a.start).replace(tzinfo=ZoneInfo(site.location.tz))
    base = run(site, start, a.days, "uncontrolled", a.forecast)
    print(f"{site.name}: {a.days:g} days from {a.start}, forecast {a.forecast} (realised figures)")
    print(f"uncontrolled: peak {base['peak_kw']:,.0f} kW, cost {base['cost_cny']:,.2f} CNY")
    rows = []
    for pair in a.weights.split(","):
        spread, ramp = (float(x) for x in pair.split(":"))
        d = dataclasses.replace(
            site.dispatch, peak_spread_cny_per_kw=spread, import_ramp_cny_per_kw=ramp
        )
        ctrl = ColdCheck()
        r = run(dataclasses.replace(site, dispatch=d), start, a.days, ctrl, a.forecast)
        r |= {"spread": spread, "ramp": ramp, "saving_cny": base["cost_cny"] - r["cost_cny"]}
        r["cold_gap_kw_max"] = max(ctrl.gap_kw, default=0.0)
        rows.append(r)
    ref = rows[0]["saving_cny"]
    print(
        f"{'spread':>7} {'ramp':>7} {'peak kW':>9} {'cost CNY':>11} {'energy':>10} "
        f"{'stored':>8} {'saving':>9} {'kept %':>7} {'cold gap kW':>11} {'wall s':>7}"
    )
    for r in rows:
        r["kept_pct"] = 100.0 * r["saving_cny"] / ref if ref > 0 else None
        kept = f"{r['kept_pct']:7.1f}" if r["kept_pct"] is not None else "      -"
        print(
            f"{r['spread']:7g} {r['ramp']:7g} {r['peak_kw']:9,.0f} {r['cost_cny']:11,.2f} "
            f"{r['energy_cost_cny']:10,.2f} {r['stored_energy_cost_cny']:8,.2f} "
            f"{r['saving_cny']:9,.2f} {kept} {r['cold_gap_kw_max']:11.3f} {r['wall_s']:7.1f}"
        )
    for r in rows[1:]:
        ok_peak = r["peak_kw"] <= base["peak_kw"] + 1e-6
        ok_cost = r["kept_pct"] is not None and r["kept_pct"] >= 95.0
        kept = "-" if r["kept_pct"] is None else f"{r['kept_pct']:.1f}"
        print(
            f"goal at {r['spread']:g}:{r['ramp']:g}: peak {r['peak_kw']:,.0f} <= "
            f"{base['peak_kw']:,.0f} kW {'met' if ok_peak else 'MISSED'}; saving kept "
            f"{kept} % >= 95 % {'met' if ok_cost else 'MISSED'}"
        )
    if a.json:
        a.json.write_text(json.dumps({"uncontrolled": base, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
