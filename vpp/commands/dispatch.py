"""``vpp dispatch``: one dispatch of a park at a given time, printed and optionally saved."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from controllers import meter_block, relaxations
from controllers.baselines import CONTROLLERS
from controllers.mpc import MpcController
from controllers.problem import DispatchResult
from vpp.commands import day_checks
from vpp.drivers.static import StaticDriver
from vpp.park.config import ConfigError, load_site
from vpp.park.coverage import planned_days
from vpp.park.profiles import ProfileForecaster
from vpp.plan.cycle import CycleReport, run_cycle
from vpp.plan.prepare import FACTORS, PRICES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dispatch",
        help="dispatch the park once and print the plan",
        description=(
            "Solve one dispatch of the park over its horizon (default 96 x 15 min) starting at "
            "--at, with the measured profiles as perfect forecasts, and print a summary: cost "
            "terms, peak, per-asset schedule, relaxed constraints. Baselines are solved on the "
            "same problem for comparison."
        ),
    )
    p.add_argument(
        "--config", required=True, type=Path, help="park YAML, e.g. configs/parks/demo.yaml"
    )
    p.add_argument("--at", required=True, help="start time, ISO 8601 (site zone if no offset)")
    p.add_argument(
        "--controller", choices=["mpc", *CONTROLLERS], default="mpc", help="default: mpc"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the schedule as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the EV session draw (default 0)")
    p.add_argument(
        "--month-peak-kw",
        type=float,
        default=0.0,
        help="the month's peak import so far, for the demand charge (default 0)",
    )
    p.add_argument(
        "--dr",
        type=Path,
        metavar="FILE",
        help="scenario YAML with dr_events, added to the park file's (checked alike)",
    )
    day_checks.add_flags(p)
    p.set_defaults(func=run)


def _parse_at(text: str, tz: str) -> datetime:
    from vpp.errors import UserError

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--at: not an ISO 8601 time: {text!r} (e.g. 2026-07-15T08:00)") from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))


def make_controller(name: str):
    return MpcController() if name == "mpc" else CONTROLLERS[name]()


def run(args: argparse.Namespace) -> int:
    from vpp.errors import UserError

    try:
        site = load_site(args.config)
    except ConfigError as exc:
        raise UserError(f"invalid configuration:\n{exc}") from None
    at = _parse_at(args.at, site.location.tz)
    day_checks.check_days(site, *planned_days(site, at, at), args)  # --at and its horizon
    day_checks.check_series(site, at, at)
    events = site.dr_events
    if args.dr:
        from vpp.commands.simulate import load_dr_events

        events = events + load_dr_events(args.dr, site.location.tz, site)
    plan_events = _plan_events(events, at)
    driver = StaticDriver(site, seed=args.seed, month_peak_import_kw=args.month_peak_kw)
    report = run_cycle(
        site,
        at,
        driver,
        ProfileForecaster(),
        make_controller(args.controller),
        dr_events=plan_events,
        publish=False,
    )
    others = {
        name: c().dispatch(report.problem)
        for name, c in CONTROLLERS.items()
        if name != report.controller
    }
    print(summary(site.name, report, others))
    dr = dr_roles(events, plan_events, report.result.horizon)
    print("\n".join(dr_lines(dr)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = report.result.to_json_dict()
        doc["site"] = site.name
        doc["setpoints_kw"] = report.setpoints_kw
        doc["invariant_violations"] = report.violations
        doc["fallback"] = report.fallback
        doc["dr_events"] = [{"event_id": e, "shapes_plan": r is None, "why_not": r} for e, r in dr]
        doc["relaxation_lines"] = [
            x.to_json_dict() for x in relaxations.alarm_lines(report.result.relaxed)
        ]
        args.json.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        print(f"\nschedule written to {args.json}")
    return 0 if not report.violations else 1


def _plan_events(events, at: datetime) -> tuple:
    """The events the plan at ``at`` honours, as ``vpp simulate`` does
    (:func:`vpp.sim.dr_calls.visible_events`): announced by ``at``, not over, not declined
    or cancelled, and taken as confirmed."""
    from vpp.sim.dr_calls import visible_events

    return visible_events(events, at)


def dr_roles(events, plan_events, horizon) -> list[tuple[str, str | None]]:
    """Each event's id and why it does not shape the plan (None: it does)."""
    planned = {e.event_id for e in plan_events}
    out = []
    for e in events:
        inside = any(w.end > horizon.start and w.start < horizon.end for w in e.windows)
        if e.event_id not in planned:
            why = (
                e.status.value
                if e.status.value in ("declined", "cancelled")
                else "announced after --at"
                if e.announce_time is not None and e.announce_time > horizon.start
                else "over before --at"
            )
        elif not inside:
            first = min(w.start for w in e.windows)
            why = f"no window in the horizon (first {first:%Y-%m-%d %H:%M})"
        else:
            why = None
        out.append((e.event_id, why))
    return out


def dr_lines(roles: list[tuple[str, str | None]]) -> list[str]:
    """Which DR events shaped the plan, and why the others did not."""
    if not roles:
        return ["", "DR events: none (the park file has none; add one with --dr FILE)"]
    shaping = [e for e, why in roles if why is None]
    out = ["", f"DR events: {len(shaping)} of {len(roles)} shape this plan"]
    out += [f"  {e:<28} {'shapes the plan' if why is None else why}" for e, why in roles]
    return out


def _kwh(a: np.ndarray, dt_h: float) -> float:
    return float(np.sum(a) * dt_h)


def summary(site_name: str, rep: CycleReport, others: dict[str, DispatchResult]) -> str:
    r, p = rep.result, rep.problem
    dt = p.dt_h
    h = r.horizon
    lines = [
        f"park-vpp dispatch: {site_name}",
        f"horizon   {h.start:%Y-%m-%d %H:%M %Z} + {h.n} x {int(h.step.total_seconds() // 60)} min",
        f"controller {rep.controller} ({r.solver}), status {r.status}"
        + (f", fallback {rep.fallback}" if rep.fallback else ""),
        "timings   " + ", ".join(f"{k} {v:.3f}" for k, v in r.timings_s.items()),
        "",
        f"cost      {r.objective_cost_cny:12,.1f} CNY (the objective without its penalties "
        "and preference)",
    ]
    weights = ("penalties", "grid_friendly")
    lines += [
        f"  {k:<17}{v:12,.1f}" for k, v in r.terms_cny.items() if abs(v) > 0.05 and k not in weights
    ]
    lines.append(
        f"penalty   {r.objective_penalty:12,.1f} (weights of relaxed constraints, not money)"
    )
    lines.append(
        f"preference{r.objective_preference:12,.1f} (grid_friendly: keeps equal-cost plans from "
        "stacking peaks, not money)"
    )
    imp, exp = r.p_import_kw, r.p_export_kw
    lines += [
        "",
        f"import    {_kwh(imp, dt):12,.0f} kWh   peak {imp.max():8,.0f} kW "
        f"(month so far {p.month_peak_import_kw:,.0f} kW, limit {p.import_max_kw.min():,.0f} kW)",
        f"export    {_kwh(exp, dt):12,.0f} kWh   peak {exp.max():8,.0f} kW",
    ]
    lines += _meter_lines(p, r)
    if others:
        lines.append("")
        lines.append("same problem, other controllers (cost measured alike):")
        for name, o in others.items():
            d = o.objective_cost_cny - r.objective_cost_cny
            lines.append(
                f"  {name:<13}{o.objective_cost_cny:12,.1f} CNY ({d:+,.1f} vs {rep.controller}), "
                f"penalty {o.objective_penalty:,.1f}, peak {o.p_import_kw.max():,.0f} kW"
            )
    lines += ["", "assets:", *_asset_lines(r, dt)]
    lines.append("")
    lines += _relaxation_lines(r)
    lines += [f"note: {m}" for m in r.messages if m.startswith(("assumed", PRICES, FACTORS))]
    lines.append(f"setpoints clamped by the safety layer: {len(rep.clamps)}")
    for c in rep.clamps[:10]:
        lines.append(f"  {c.asset}: {c.proposed_kw:.3f} -> {c.sent_kw:.3f} kW ({c.reason})")
    lines.append(
        "invariants: all hold"
        if not rep.violations
        else "INVARIANTS BROKEN:\n  " + "\n  ".join(rep.violations)
    )
    return "\n".join(lines)


def _meter_lines(p, r: DispatchResult) -> list[str]:
    """The plan per tenant sub-meter (``metering``): what each meter is planned to import and
    export, its peak and its energy cost at its own prices (the plan's, not the park's)."""
    if not p.meters:
        return []
    billing = "per_meter" if p.per_meter_billing else "netted at the connection"
    out = ["", f"meters (billing {billing}; plan_ figures):"]
    nets = meter_block.meter_net_kw(p, r.bus_p_kw)
    for x, net in zip(p.meters, nets, strict=True):
        imp, exp = np.maximum(net, 0.0), np.maximum(-net, 0.0)
        cost = float(p.dt_h * np.asarray(x.price_import_cny_per_kwh) @ imp)
        cost -= float(p.dt_h * meter_block.effective_export_price(x) @ exp)
        out.append(
            f"  {x.name:<18} plan import {_kwh(imp, p.dt_h):10,.0f} kWh, export "
            f"{_kwh(exp, p.dt_h):8,.0f} kWh, peak {imp.max(initial=0.0):7,.0f} kW, "
            f"energy {cost:10,.1f} CNY"
        )
    return out


def _relaxation_lines(r: DispatchResult, shown: int = 20) -> list[str]:
    """Relaxations as an alarm (:func:`controllers.relaxations.alarm_lines`): each one at or
    above its tolerance in its unit, the small ones counted per kind."""
    if not r.relaxed:
        return ["relaxed constraints: none"]
    grouped = relaxations.alarm_lines(r.relaxed)
    fate = sum(x.count for x in grouped if not x.avoidable)
    out = [
        f"relaxed constraints ({len(r.relaxed)}, {fate} no decision could avoid; "
        f"under {relaxations.SMALL_KWH:g} kWh or {relaxations.SMALL_KW:g} kW counted together):"
    ]
    out += [f"  {x.text}" for x in grouped[:shown]]
    if len(grouped) > shown:
        out.append(f"  ... and {len(grouped) - shown} more lines (see --json)")
    return out


def _asset_lines(r: DispatchResult, dt: float) -> list[str]:
    kinds: dict[str, list] = {}
    for s in r.assets.values():
        kinds.setdefault(s.kind, []).append(s)
    out = []
    for kind in ("battery", "pv", "ev_charger", "shiftable", "curtailable", "base_load", "pedf"):
        items = kinds.get(kind, [])
        if not items:
            continue
        total = sum(s.p_kw for s in items)
        out.append(
            f"  {kind:<12}{len(items):4d}  energy {_kwh(total, dt):10,.0f} kWh  "
            f"max {total.max():9,.0f} kW  min {total.min():9,.0f} kW"
        )
        if kind in ("battery", "pedf", "shiftable"):
            for s in items:
                extra = ""
                if s.e_kwh is not None:
                    e = s.e_kwh
                    extra = (
                        f"  SOC {e[0]:7.0f} -> {e[-1]:7.0f} kWh"
                        f" (min {e.min():.0f}, max {e.max():.0f})"
                    )
                out.append(
                    f"      {s.name:<20} {_profile(s.p_kw)}  "
                    f"{s.p_kw.min():7.0f}..{s.p_kw.max():7.0f} kW{extra}"
                )
    return out


def _profile(a: np.ndarray, width: int = 24) -> str:
    """A one-line picture of a series: one character per hour-ish (+ charge, - discharge)."""
    chunks = [c for c in np.array_split(a, min(width, max(len(a), 1))) if c.size]
    scale = max(float(np.abs(a).max()), 1e-9)
    chars = []
    for c in chunks:
        v = float(c.mean()) / scale
        chars.append(
            " "
            if abs(v) < 0.05
            else ("+" if v > 0.5 else "." if v > 0 else "-" if v < -0.5 else ",")
        )
    return "[" + "".join(chars) + "]"
