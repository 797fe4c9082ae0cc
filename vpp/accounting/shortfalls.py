"""Who gave way in a simulation run, realised: every EV session that left short, every
shiftable window not completed, the energy each curtailable load gave up, and why.

Pure computation on a run (:class:`vpp.sim.closed_loop.SimResult`, read by attribute). The
amounts are what the simulated park did; the reasons are the plans': for a session, what the
plans said while it was plugged in (the limits at their bound in the steps it was short,
counted over the plans that named them), and whether the plan made when it arrived already
found part of its energy beyond full power (physically impossible; a remainder that becomes
unreachable later is what giving way earlier left, and is not called impossible); for a
window, the plans while it was open, likewise; for curtailment, the limits at their bound in
the step each plan applied, or its cost (a load at ``give_way: first`` is curtailed whenever
that pays). ``plan_short_kwh`` is the last plan's own figure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from vpp.park.model import GiveWay, Site, session_give_way

SHORT_KWH = 0.01  # a session or window short by less than this is served
IMPOSSIBLE_EV = "physically impossible: arrived needing more than full power could deliver"
IMPOSSIBLE_WINDOW = "physically impossible: the window closes before full power can do its work"
NOT_PLANNED = "not planned short: realised below its plans (a held or clamped setpoint)"
FOR_COST = "for its cost (the price above it)"


def shortfalls(result) -> dict:
    """The run's shortfall lists and totals (KPI names ``ev_sessions_left_short``,
    ``shiftable_windows_short``, ``curtailed_by_load``, ``shiftable_unmet_kwh``,
    ``load_curtailed_kwh``)."""
    notes = _notes_by_asset(result.cycles)
    ev = _ev_rows(result, notes)
    windows = _window_rows(result, notes)
    curtailed = _curtailed_rows(result)
    return {
        "ev_sessions_left_short": ev,
        "shiftable_windows_short": windows,
        "curtailed_by_load": curtailed,
        "shiftable_unmet_kwh": sum(w["short_kwh"] for w in windows),
        "load_curtailed_kwh": sum(c["curtailed_kwh"] for c in curtailed),
    }


def _records(cycles: Iterable):
    for c in cycles:
        rec = getattr(c, "give_way", None)
        if rec is not None:
            yield c.at, rec


def _notes_by_asset(cycles) -> dict[str, list]:
    out: dict[str, list] = {}
    for at, rec in _records(cycles):
        for n in rec.notes:
            out.setdefault(n.asset, []).append((at, n))
    return out


def why(notes: list, impossible_kwh: float, impossible: str) -> str:
    """One sentence from the plans' notes on an asset: the part no decision could deliver
    from the start (``impossible_kwh``, ``impossible`` says why), then the limits it gave way
    to, by the number of plans that named each."""
    parts = []
    if impossible_kwh > SHORT_KWH:
        parts.append(f"{impossible} ({impossible_kwh:,.1f} kWh)")
    counts: Counter[str] = Counter()
    for n in notes:
        if n.avoidable:
            counts.update({c.label for c in n.causes})
    if counts:
        named = [f"{label} ({k} plan{'s' if k > 1 else ''})" for label, k in counts.most_common()]
        parts.append("gave way to " + "; ".join(named))
    return "; ".join(parts) if parts else NOT_PLANNED


def _ev_priority(site: Site, session_id: str, charger: str) -> tuple[str, str]:
    """``(fleet, give_way)`` of a session: a booked session's own, else its fleet's."""
    ch = next((c for c in site.assets.ev_chargers if c.name == charger), None)
    own = next((s for s in site.ev_sessions if s.session_id == session_id), None)
    fleet = next((f for f in site.ev_fleets if charger in f.chargers), None)
    if ch is None:
        return (fleet.name if fleet else ""), str(GiveWay.NORMAL)
    if own is not None:
        return "", str(session_give_way(own, ch))
    level = fleet.give_way if fleet is not None and fleet.give_way is not None else ch.give_way
    return (fleet.name if fleet else ""), str(GiveWay(level))


def _from_the_start(result, start, notes: list, constraint: str) -> float:
    """The unavoidable part of ``constraint`` in the first plan made at or after ``start``
    (kWh, from ``(at, note)`` pairs): what was out of reach from the start."""
    first = next((c.at for c in result.cycles if c.at >= start), None)
    return float(
        sum(
            n.amount_kwh
            for at, n in notes
            if at == first and n.constraint == constraint and not n.avoidable
        )
    )


def _ev_rows(result, notes: dict[str, list]) -> list[dict]:
    run = result.horizon
    rows = []
    for x in result.sessions:
        if x.arrival < run.start or x.unmet_kwh <= SHORT_KWH:
            continue
        mine = [
            (at, n)
            for at, n in notes.get(x.session_id, [])
            if n.constraint in ("ev_energy", "ev_target") and x.arrival <= at < x.departure
        ]
        fleet, level = _ev_priority(result.site, x.session_id, x.charger)
        rows.append(
            {
                "session_id": x.session_id,
                "charger": x.charger,
                "fleet": fleet,
                "give_way": level,
                "arrival": x.arrival.isoformat(),
                "departure": x.departure.isoformat(),
                "requested_kwh": x.requested_kwh,
                "delivered_kwh": min(x.delivered_kwh, x.requested_kwh),
                "short_kwh": x.unmet_kwh,
                "plan_short_kwh": _last_plan_kwh(mine, "ev_energy"),
                "why": why(
                    [n for _, n in mine],
                    _from_the_start(result, x.arrival, mine, "ev_energy"),
                    IMPOSSIBLE_EV,
                ),
            }
        )
    return rows


def _last_plan_kwh(notes: list, constraint: str) -> float:
    """The last plan's shortfall of ``constraint`` (kWh, avoidable and unavoidable parts) from
    ``(at, note)`` pairs; 0 when no plan had one."""
    own = [(at, n) for at, n in notes if n.constraint == constraint]
    if not own:
        return 0.0
    last = max(at for at, _ in own)
    return float(sum(n.amount_kwh for at, n in own if at == last))


def _window_rows(result, notes: dict[str, list]) -> list[dict]:
    levels = {s.name: str(s.give_way) for s in result.site.assets.shiftable_loads}
    rows = []
    for _, rec in _records(result.cycles):
        for w in rec.windows:
            if not w.whole or w.short_kwh <= SHORT_KWH:
                continue
            mine = [
                (at, n)
                for at, n in notes.get(w.load, [])
                if n.constraint == "shiftable_energy" and w.start <= at < w.end
            ]
            rows.append(
                {
                    "load": w.load,
                    "give_way": levels.get(w.load, ""),
                    "window_start": w.start.isoformat(),
                    "window_end": w.end.isoformat(),
                    "requested_kwh": w.requested_kwh,
                    "done_kwh": w.done_kwh,
                    "short_kwh": w.short_kwh,
                    "plan_short_kwh": _last_plan_kwh(mine, "shiftable_energy"),
                    "why": why(
                        [n for _, n in mine],
                        _from_the_start(result, w.start, mine, "shiftable_energy"),
                        IMPOSSIBLE_WINDOW,
                    ),
                }
            )
    return rows


def _curtailed_rows(result) -> list[dict]:
    a = result.site.assets
    specs = [*a.curtailable_loads, *(p.flexible_load for p in a.pedf_buildings if p.flexible_load)]
    levels = {s.name: str(s.give_way) for s in specs}
    dt = result.horizon.dt_h
    kwh: dict[str, float] = {}
    steps: Counter[str] = Counter()
    by_cause: dict[str, Counter[str]] = {}
    for _, rec in _records(result.cycles):
        for c in rec.curtailed:
            kwh[c.load] = kwh.get(c.load, 0.0) + c.kw * dt
            steps[c.load] += 1
            causes = c.causes or (FOR_COST,)
            for label in causes:  # an interval at two limits counts for both
                by_cause.setdefault(c.load, Counter())[label] += c.kw * dt
    rows = []
    for load in sorted(kwh, key=lambda x: -kwh[x]):
        parts = [f"{label} {e:,.1f} kWh" for label, e in by_cause[load].most_common()]
        rows.append(
            {
                "load": load,
                "give_way": levels.get(load, ""),
                "curtailed_kwh": kwh[load],
                "intervals": steps[load],
                "why": "; ".join(parts),
            }
        )
    return rows


def summary_lines(kpis: dict, shown: int = 10) -> list[str]:
    """The run's shortfalls for a terminal: a head line, then one line per session, window
    and curtailed load (at most ``shown`` of each, largest first)."""
    ev = sorted(kpis.get("ev_sessions_left_short", []), key=lambda r: -r["short_kwh"])
    win = sorted(kpis.get("shiftable_windows_short", []), key=lambda r: -r["short_kwh"])
    cur = kpis.get("curtailed_by_load", [])
    head = (
        f"who gave way (realised): {_count(len(ev), 'EV session')} left short by "
        f"{sum(r['short_kwh'] for r in ev):,.1f} kWh, {_count(len(win), 'shiftable window')} "
        f"not completed ({sum(r['short_kwh'] for r in win):,.1f} kWh), "
        f"{sum(r['curtailed_kwh'] for r in cur):,.1f} kWh curtailed"
    )
    out = [head]
    for r in ev[:shown]:
        fleet = f", fleet {r['fleet']}" if r["fleet"] else ""
        out.append(
            f"  EV {r['session_id']} (charger {r['charger']}{fleet}, gives way "
            f"{r['give_way']}): {r['short_kwh']:,.1f} kWh short: {r['why']}"
        )
    for r in win[:shown]:
        out.append(
            f"  shiftable {r['load']} window from {r['window_start']} (gives way "
            f"{r['give_way']}): {r['short_kwh']:,.1f} kWh short: {r['why']}"
        )
    for r in cur[:shown]:
        out.append(
            f"  curtailed {r['load']} (gives way {r['give_way']}): "
            f"{r['curtailed_kwh']:,.1f} kWh in {r['intervals']} intervals: {r['why']}"
        )
    hidden = max(len(ev) - shown, 0) + max(len(win) - shown, 0) + max(len(cur) - shown, 0)
    if hidden:
        out.append(f"  (+{hidden} more in kpis.json and report.html)")
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
