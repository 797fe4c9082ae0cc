"""The workplace garage (configs/parks/garage.yaml, issue #16) in closed loop, per controller.

    .venv/bin/python bench/garage.py [--days 5] [--controllers mpc,edf,llf,uncontrolled]
        [--start 2026-06-01] [--json OUT]

Runs each controller over the garage's weekdays (re-planned every 5 minutes, the simulated
park) and prints, realised: delivered % of the requested EV energy, sessions fully served,
peak import kW, the worst utilisation of every limit group (import and per phase) and its
breach steps, energy cost, demand charge, the bill (their sum) and the median and worst
solve time per interval. Then the offline optimum (controllers.ev_offline: every session and
the realised base load known in hindsight, continuous powers, the connection limit only): a
lower bound on the bill of any controller that serves every session, and so on how far below
EDF/LLF any controller's bill can go. Then the issue's goals, each as met or missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controllers.ev_offline import OfflineSession, offline_bill_bound  # noqa: E402
from vpp.park.config import load_site  # noqa: E402
from vpp.sim.closed_loop import make_controller, simulate  # noqa: E402

PARK = ROOT / "configs" / "parks" / "garage.yaml"


class Timed:
    """A controller whose every ``dispatch`` call is timed (s): the solve per interval."""

    def __init__(self, name: str) -> None:
        self.inner = make_controller(name)
        self.name = self.inner.name
        self.solve_s: list[float] = []

    def dispatch(self, problem):
        t = time.perf_counter()
        try:
            return self.inner.dispatch(problem)
        finally:
            self.solve_s.append(time.perf_counter() - t)


def offline_bound(site, r) -> dict:
    """The offline optimum of the garage's bill over run ``r`` (its sessions, its realised base
    load, its tariff and demand pro-rating): see controllers.ev_offline."""
    run = r.horizon
    t0 = run.start
    step_s = run.step.total_seconds()
    chargers = {c.name: c for c in site.assets.ev_chargers}
    sessions = []
    for s in r.sessions:
        c = chargers[s.charger]
        sessions.append(
            OfflineSession(
                start_k=round((s.arrival - t0).total_seconds() / step_s),
                end_k=round((s.departure - t0).total_seconds() / step_s),
                p_max_kw=c.p_max_kw,
                e_kwh=s.requested_kwh,
                eta=c.eta,
            )
        )
    months = r.kpis["demand_by_month"]
    if len(months) != 1:
        raise SystemExit("the offline bound assumes a run inside one calendar month")
    rate = months[0]["rate_cny_per_kw_month"] * months[0]["covered_frac"]
    b = offline_bill_bound(
        r.series["base_kw"],
        r.series["price_cny_per_kwh"],
        run.dt_h,
        sessions,
        demand_cny_per_kw=rate,
        import_max_kw=site.connection.import_max_kw,
        peak_floor_kw=months[0]["peak_before_run_kw"],
    )
    return b.__dict__


def run_one(site, start: datetime, days: float, controller: str, bound: dict | None = None):
    """One controller's figures; ``bound``: the offline optimum if already computed (every
    controller's run has the same sessions and realised base load: the truth is seeded)."""
    t0 = time.perf_counter()
    ctrl = Timed(controller)
    r = simulate(site, start, days, ctrl)
    k = r.kpis
    solve = sorted(ctrl.solve_s)
    groups = {}
    for name, g in k["limit_groups"].items():
        groups[name] = {
            "utilisation_max": g.get("utilisation_max"),
            "phase_utilisation_max": g.get("phase_utilisation_max"),
            "breach_steps": g["import_breach"]["steps"] + g.get("phase_breach_steps", 0),
        }
    req = float(k["ev_requested_kwh"])
    return {
        "controller": controller,
        "wall_s": time.perf_counter() - t0,
        "delivered_pct": 100.0 * float(k["ev_delivered_kwh"]) / req if req > 0 else None,
        "ev_delivered_kwh": float(k["ev_delivered_kwh"]),
        "sessions": int(k["ev_sessions"]),
        "sessions_served": int(k["ev_sessions"]) - int(k["ev_sessions_unmet"]),
        "peak_kw": float(k["peak_import_kw"]),
        "group_breach_steps": int(k["group_breach_steps"]),
        "connection_breach_steps": int(k["connection_import_breach_steps"]),
        "limits": groups,
        "energy_cost_cny": float(k["energy_cost_cny"]),
        "demand_charge_cny": float(k["demand_charge_cny"]),
        "bill_cny": float(k["energy_cost_cny"]) + float(k["demand_charge_cny"]),
        "cycle_p50_ms": float(k["cycle_time_p50_ms"]),
        "cycle_p95_ms": float(k["cycle_time_p95_ms"]),
        "solve_p50_s": solve[len(solve) // 2] if solve else None,
        "solve_max_s": solve[-1] if solve else None,
        "dispatch_calls": len(solve),
        "offline": bound if bound is not None else offline_bound(site, r),
    }


def show(rows: list[dict]) -> None:
    for r in rows:
        print(
            f"{r['controller']:>12}: delivered {r['delivered_pct'] or 0:6.2f} %  served "
            f"{r['sessions_served']}/{r['sessions']}  peak {r['peak_kw']:7.2f} kW  energy "
            f"{r['energy_cost_cny']:8.2f}  demand {r['demand_charge_cny']:7.2f}  bill "
            f"{r['bill_cny']:8.2f} CNY  cycle p50 {r['cycle_p50_ms']:.0f} ms p95 "
            f"{r['cycle_p95_ms']:.0f} ms  solve p50 {1000 * (r['solve_p50_s'] or 0):.0f} ms "
            f"max {1000 * (r['solve_max_s'] or 0):.0f} ms  breaches {r['group_breach_steps']} "
            f"(connection {r['connection_breach_steps']})  wall {r['wall_s']:.0f} s"
        )
        for g, v in r["limits"].items():
            ph = v["phase_utilisation_max"]
            print(
                f"{'':14}{g:>12}: utilisation {v['utilisation_max'] or 0:.3f}"
                + (f"  phase {ph:.3f}" if ph is not None else "")
                + f"  breach steps {v['breach_steps']}"
            )

    if rows:
        b = rows[0]["offline"]
        print(
            f"{'offline optimum':>12}: bill {b['bill_cny']:.2f} CNY (energy "
            f"{b['energy_cost_cny']:.2f}, demand {b['demand_charge_cny']:.2f}, peak "
            f"{b['peak_import_kw']:.2f} kW), every session known in hindsight"
        )


def goals(rows: list[dict]) -> list[str]:
    by = {r["controller"]: r for r in rows}
    out = []
    for name, r in by.items():
        ok = r["group_breach_steps"] == 0 and r["connection_breach_steps"] == 0
        out.append(f"{name}: zero realised breaches: {'met' if ok else 'MISSED'}")
    if {"mpc", "edf", "llf"} <= by.keys():
        m, e, ll = by["mpc"], by["edf"], by["llf"]
        ok = m["ev_delivered_kwh"] >= ll["ev_delivered_kwh"] - 1e-6
        out.append(f"mpc delivers at least LLF: {'met' if ok else 'MISSED'}")
        best = min(e["bill_cny"], ll["bill_cny"])
        cut = 100.0 * (1.0 - m["bill_cny"] / best) if best > 0 else 0.0
        out.append(
            f"mpc bill {cut:.1f} % below the better of EDF/LLF (goal 25 %): "
            f"{'met' if cut >= 25.0 else 'MISSED'}"
        )
        bound = m["offline"]["bill_cny"]
        room = 100.0 * (1.0 - bound / best) if best > 0 else 0.0
        out.append(
            f"offline optimum (hindsight, continuous, connection limit only) {bound:.2f} CNY: "
            f"{room:.1f} % below the better of EDF/LLF, the most any controller serving every "
            f"session can cut; the 25 % goal is "
            + ("within reach" if room >= 25.0 else "out of reach of any controller")
            + f"; mpc is {100.0 * (m['bill_cny'] / bound - 1.0):.1f} % above it"
        )
    if "mpc" in by:
        m = by["mpc"]
        p50, top = m["solve_p50_s"] or 0.0, m["solve_max_s"] or 0.0
        out.append(
            f"mpc solve per interval p50 {1000 * p50:.0f} ms (goal < 100 ms: "
            f"{'met' if p50 < 0.1 else 'MISSED'}), worst {1000 * top:.0f} ms (goal < 1000 ms: "
            f"{'met' if top < 1.0 else 'MISSED'})"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=5.0, help="days to run (default 5 weekdays)")
    ap.add_argument(
        "--start",
        default="2026-06-01",
        help="first day (default Monday 1 June: the month's demand peak starts at 0)",
    )
    ap.add_argument("--controllers", default="mpc,edf,llf,uncontrolled")
    ap.add_argument("--json", type=Path, help="write the figures as JSON here")
    a = ap.parse_args(argv)
    site = load_site(str(PARK))
    start = datetime.fromisoformat(a.start).replace(tzinfo=ZoneInfo(site.location.tz))
    rows, bound = [], None
    for c in a.controllers.split(","):
        rows.append(run_one(site, start, a.days, c, bound))
        bound = rows[-1]["offline"]
    show(rows)
    for line in goals(rows):
        print(line)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
