"""The Network view's document: the park's network as a drawing (buses placed as a
single-line diagram), each transformer's and line's loading and each bus voltage, realised
(an AC power flow of the power each bus drew, from the stored readings of every asset) and
planned (the same flow of the plan in force), and the limits that bind.

Realised figures come from the readings: an asset's last reading is held over an interval
without one, and an interval before any reading of an asset counts it as 0 kW (the
interval's ``assets_unmetered`` says how many). A plain name is realised; ``plan_*`` planned.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np

from api.ui.figures import (
    BINDING_LOADING_FRAC,
    BINDING_V_PU,
    PAST_INTERVALS_H,
    _ffill,
    _floor,
    _times,
    asset_means,
    series,
)
from controllers import group_block
from vpp.grid.network import bus_q_kvar
from vpp.park.model import PARK_METER, Horizon


def layout(
    buses: list[str], branches: list[tuple[str, str, str]], root: str
) -> dict[str, tuple[int, int]]:
    """Grid positions (column, row) of a single-line diagram: from ``root`` each first line
    continues the row to the right, a transformer hangs its low-voltage side below, further
    lines start new rows beneath everything drawn so far. ``branches`` are (kind, from, to);
    buses a radial walk does not reach are put in a last row."""
    kids: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for kind, a, b in branches:
        kids[a].append((b, kind))
        kids[b].append((a, kind))
    pos: dict[str, tuple[int, int]] = {}

    def place(b: str, x: int, y: int) -> int:
        pos[b] = (x, y)
        bottom = y
        todo = [(c, k) for c, k in kids[b] if c not in pos]
        for c, _ in [t for t in todo if t[1] == "trafo"]:
            if c not in pos:
                bottom = max(bottom, place(c, x, bottom + 1))
        lines = [c for c, k in todo if k == "line" and c not in pos]
        for i, c in enumerate(lines):
            if c in pos:
                continue
            bottom = max(bottom, place(c, x + 1, y if i == 0 else bottom + 1))
        return bottom

    bottom = place(root, 0, 0) if root in buses else -1
    rest = [b for b in buses if b not in pos]
    for i, b in enumerate(rest):
        pos[b] = (i, bottom + 2)
    return pos


def _topology(grid) -> dict[str, Any]:
    net = grid.net
    bus_name = {int(i): str(n) for i, n in zip(net.bus.index, net.bus.name, strict=True)}
    branches = []
    for r in net.line.itertuples():
        branches.append(
            {
                "name": str(r.name),
                "kind": "line",
                "from": bus_name[int(r.from_bus)],
                "to": bus_name[int(r.to_bus)],
                "rating": f"{float(r.max_i_ka) * 1000 * float(r.parallel):.0f} A",
            }
        )
    for r in net.trafo.itertuples():
        branches.append(
            {
                "name": str(r.name),
                "kind": "trafo",
                "from": bus_name[int(r.hv_bus)],
                "to": bus_name[int(r.lv_bus)],
                "rating": f"{float(r.sn_mva) * 1000:.0f} kVA",
            }
        )
    root = bus_name[int(net.ext_grid.bus.iloc[0])] if len(net.ext_grid) else ""
    names = [bus_name[int(i)] for i in net.bus.index]
    pos = layout(names, [(b["kind"], b["from"], b["to"]) for b in branches], root)
    park_buses = set(grid.buses)
    buses = [
        {
            "name": n,
            "vn_kv": float(kv),
            "x": pos[n][0],
            "y": pos[n][1],
            "slack": n == root,
            "park_bus": n in park_buses,
        }
        for n, kv in zip(names, net.bus.vn_kv, strict=True)
    ]
    return {"buses": buses, "branches": branches, "connection_bus": root}


def _realised(figs, grid) -> tuple[Horizon, Any, np.ndarray, np.ndarray]:
    """The realised flow of the past day: the horizon, the flow (None without readings),
    which intervals have a park-meter reading, and how many assets had no reading yet.

    An interval's flow is kept with the bus powers it was computed from and computed again
    only when they change (a new interval, a late reading): a cycle costs one or two steps
    of power flow, not a day's."""
    rt = figs.rt
    step = figs.step
    k_now = _floor(rt.clock.now(), step)
    n = round(timedelta(hours=PAST_INTERVALS_H) / step)
    h = Horizon(k_now - n * step, step, n + 1)
    rows = [a for a in figs.asset_rows() if a.bus in grid.buses]
    with rt.engine.connect() as conn:
        p = asset_means(conn, [PARK_METER, *(a.name for a in rows)], h)
    metered = np.isfinite(p[0])
    held = _ffill(p[1:])
    unmetered = np.sum(~np.isfinite(held), axis=0)
    held = np.nan_to_num(held, nan=0.0)
    if not metered.any():
        return h, None, metered, unmetered
    assets = {  # a PEDF building reports its exchange, not its members
        a.name: SimpleNamespace(kind=a.kind, bus=a.bus, p_kw=held[i]) for i, a in enumerate(rows)
    }
    bus_p: dict[str, np.ndarray] = {}
    for s in assets.values():
        bus_p[s.bus] = bus_p.get(s.bus, 0.0) + s.p_kw
    q = bus_q_kvar(assets, grid.buses, grid.options.load_power_factor)
    P, Q = grid.schedule_arrays(bus_p, {b: q.get(b, np.zeros(h.n)) for b in bus_p})
    times = h.times()
    keys = [np.round(np.concatenate([P[t], Q[t]]), 3).tobytes() for t in range(h.n)]
    cache = figs._flows
    todo = [t for t in range(h.n) if metered[t] and cache.get(times[t], (None,))[0] != keys[t]]
    if todo:
        with figs.flow_lock:  # the model's arrays are not shared between threads
            fresh = grid.power_flow(P[todo], Q[todo])
        for j, t in enumerate(todo):
            cache[times[t]] = (
                keys[t],
                fresh.vm_pu[j],
                fresh.line_loading_percent[j],
                fresh.trafo_loading_percent[j],
                bool(fresh.converged[j]),
            )
    for t in [t for t in cache if t < h.start]:
        del cache[t]
    nb, nl, nt = len(grid.net.bus), len(grid.net.line), len(grid.net.trafo)
    nan = (None, np.full(nb, np.nan), np.full(nl, np.nan), np.full(nt, np.nan), False)
    got = [cache[times[t]] if metered[t] else nan for t in range(h.n)]
    flow = SimpleNamespace(
        vm_pu=np.array([g[1] for g in got]),
        line_loading_percent=np.array([g[2] for g in got]).reshape(h.n, nl),
        trafo_loading_percent=np.array([g[3] for g in got]).reshape(h.n, nt),
        converged=np.array([g[4] for g in got]),
    )
    return h, flow, metered, unmetered


def _planned(figs, grid, cur):
    """The AC power flow of the plan in force (as :func:`vpp.grid.loop.validate_result`
    computes it, without its violation list), kept per plan version."""
    if cur is None:
        return None
    hit = getattr(figs, "_plan_flow", None)
    if hit is not None and hit[0] == cur.version:
        return hit[1]
    r = cur.plan
    q = bus_q_kvar(r.assets, grid.buses, grid.options.load_power_factor)
    q_all = {b: q.get(b, np.zeros_like(np.asarray(p, float))) for b, p in r.bus_p_kw.items()}
    P, Q = grid.schedule_arrays(r.bus_p_kw, q_all)
    with figs.flow_lock:
        flow = grid.power_flow(P, Q)
    figs._plan_flow = (cur.version, SimpleNamespace(flow=flow))
    return figs._plan_flow[1]


def _last(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[-1]) if idx.size else None


def document(figs) -> dict[str, Any]:
    grid = figs._grid
    if grid is None:
        return {"available": False, "why": figs._grid_error or "no network model"}
    cur = figs.rt.current
    topo = _topology(grid)
    lim = grid.limits
    h, flow, metered, unmetered = _realised(figs, grid)
    plan = _planned(figs, grid, cur)
    k = _last(metered & (flow.converged if flow is not None else False))
    net = grid.net
    groups = (
        ("line", list(net.line.name), "line_loading_percent"),
        ("trafo", list(net.trafo.name), "trafo_loading_percent"),
    )
    by_name: dict[str, dict[str, Any]] = {b["name"]: b for b in topo["branches"]}
    for _kind, names, attr in groups:
        for i, name in enumerate(names):
            b = by_name[str(name)]
            real = getattr(flow, attr)[:, i] if flow is not None else None
            if real is not None:
                real = np.where(metered & flow.converged, real, np.nan)
            pl = getattr(plan.flow, attr)[:, i] if plan is not None else None
            b["loading_percent"] = _at(real, k)
            b["loading_percent_series"] = series(real, 2)
            b["plan_loading_percent"] = _at(pl, 0)
            b["plan_loading_percent_series"] = series(pl, 2)
            b["plan_loading_max_percent"] = _max(pl)
            b["loading_max_percent_24h"] = _max(real)
    for i, b in enumerate(topo["buses"]):
        real = flow.vm_pu[:, i] if flow is not None else None
        if real is not None:
            real = np.where(metered & flow.converged, real, np.nan)
        pl = plan.flow.vm_pu[:, i] if plan is not None else None
        b["vm_pu"] = _at(real, k, 4)
        b["vm_pu_series"] = series(real, 4)
        b["plan_vm_pu"] = _at(pl, 0, 4)
        b["plan_vm_pu_series"] = series(pl, 4)
        b["plan_vm_min_pu"] = _min(pl, 4)
        b["plan_vm_max_pu"] = _max(pl, 4)
    return {
        "available": True,
        "cycle_id": cur.cycle_id if cur else None,
        "plan_version": cur.version if cur else None,
        "limits": {
            "v_min_pu": lim.v_min_pu,
            "v_max_pu": lim.v_max_pu,
            "loading_max_percent": lim.loading_max_percent,
        },
        "realised_at": h.times()[k].isoformat() if k is not None else None,
        "times": _times(h),
        "assets_unmetered": [int(x) for x in unmetered],
        "plan_times": _times(cur.plan.horizon) if cur else [],
        **topo,
        "binding": binding(topo, lim, cur, h, k),
    }


def _at(a, k, digits: int = 2) -> float | None:
    if a is None or k is None or not np.isfinite(a[k]):
        return None
    return round(float(a[k]), digits)


def _max(a, digits: int = 2) -> float | None:
    if a is None or not np.isfinite(a).any():
        return None
    return round(float(np.nanmax(a)), digits)


def _min(a, digits: int = 2) -> float | None:
    if a is None or not np.isfinite(a).any():
        return None
    return round(float(np.nanmin(a)), digits)


def binding(topo, lim, cur, h: Horizon, k: int | None) -> list[dict[str, Any]]:
    """The limits that bind or are broken: network elements within 5 % of their rating or
    over it, voltages within 0.005 pu of the band or outside it, in the plan (``source``
    plan: its worst interval) or in the latest realised interval (``measured``); the
    connection's import limit and the DR cap and floor where the plan holds them; and the
    network rows the planner added to its problem."""
    out: list[dict[str, Any]] = []
    lmax = lim.loading_max_percent
    plan_times = list(cur.plan.horizon.times()) if cur else []
    for b in topo["branches"]:
        for source, key, series_key in (
            ("plan", "plan_loading_max_percent", "plan_loading_percent_series"),
            ("measured", "loading_percent", None),
        ):
            v = b.get(key)
            if v is None or v < BINDING_LOADING_FRAC * lmax:
                continue
            at = None
            if series_key:
                s = [x if x is not None else -1 for x in b[series_key]]
                at = plan_times[int(np.argmax(s))].isoformat() if plan_times else None
            elif k is not None:
                at = h.times()[k].isoformat()
            out.append(
                {
                    "element": b["name"],
                    "kind": f"{b['kind']}_loading",
                    "source": source,
                    "value": v,
                    "limit": lmax,
                    "unit": "%",
                    "at": at,
                    "broken": v > lmax + 1e-6,
                }
            )
    for bus in topo["buses"]:
        for source, lo_key, hi_key in (
            ("plan", "plan_vm_min_pu", "plan_vm_max_pu"),
            ("measured", "vm_pu", "vm_pu"),
        ):
            lo, hi = bus.get(lo_key), bus.get(hi_key)
            if lo is not None and lo <= lim.v_min_pu + BINDING_V_PU:
                out.append(_v(bus["name"], "undervoltage", source, lo, lim.v_min_pu))
            if hi is not None and hi >= lim.v_max_pu - BINDING_V_PU:
                out.append(_v(bus["name"], "overvoltage", source, hi, lim.v_max_pu))
    out.extend(_plan_limits(cur))
    return out


def _v(bus: str, kind: str, source: str, value: float, limit: float) -> dict[str, Any]:
    broken = value < limit if kind == "undervoltage" else value > limit
    return {
        "element": bus,
        "kind": kind,
        "source": source,
        "value": value,
        "limit": limit,
        "unit": "pu",
        "at": None,
        "broken": bool(broken),
    }


def _plan_limits(cur) -> list[dict[str, Any]]:
    """Where the plan sits on the connection's import limit, a DR cap or floor (within
    1 kW), and the network rows its problem carries."""
    if cur is None or cur.problem is None:
        return []
    p, r = cur.problem, cur.plan
    times = list(r.horizon.times())
    net = np.asarray(r.p_net_kw, float)
    out = []
    for name, lim, sign in (
        ("connection_import", p.import_max_kw, 1.0),
        ("dr_cap", p.dr_import_max_kw, 1.0),
        ("dr_floor", p.dr_import_min_kw, -1.0),
    ):
        if lim is None:
            continue
        lim = np.asarray(lim, float)
        at = np.flatnonzero(np.isfinite(lim) & (sign * (net - lim) >= -1.0))
        if at.size:
            out.append(
                {
                    "element": "park",
                    "kind": name,
                    "source": "plan",
                    "value": round(float(net[at[0]]), 1),
                    "limit": round(float(lim[at[0]]), 1),
                    "unit": "kW",
                    "at": times[int(at[0])].isoformat(),
                    "intervals": int(at.size),
                    "broken": bool(sign * (net[at[0]] - lim[at[0]]) > 1.0),
                }
            )
    for g in group_block.binding(p, r):  # limit groups of the park file, where they bind
        out.append(
            {
                "element": g["group"],
                "kind": f"group_{g['kind']}",
                "source": "plan",
                "value": round(g["value_kw"], 1),
                "limit": round(g["limit_kw"], 1),
                "unit": "kW",
                "at": times[g["step"]].isoformat(),
                "intervals": g["intervals"],
                "utilisation": round(g["utilisation"], 4),
                "broken": g["broken"],
            }
        )
    for c in p.network:
        out.append(
            {
                "element": c.element,
                "kind": "network_row",
                "source": "plan",
                "value": None,
                "limit": None,
                "unit": "",
                "at": None,
                "row": c.name,
                "broken": False,
            }
        )
    return out
