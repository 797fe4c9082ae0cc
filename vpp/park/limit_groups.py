"""Limit groups of a park: their members resolved and their configuration checked.

A :class:`vpp.park.model.LimitGroup` names assets, buses and child groups. Here, once:

- :func:`members` flattens a group to the assets it holds (a bus stands for every asset on it,
  a child group for its members, nested to any depth; a PEDF building counts as itself);
- :func:`limit_group_problems` checks the configuration, every problem with its field path
  (``limit_groups[2].groups[0]: unknown group 'pod-9'``), and the charger fields that feed the
  phase rows and the steps (``phase``, ``voltage_v``, ``pilot``).

A child whose limit is above its parent's is allowed (the parent's limit then binds first;
nothing is said about it). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from vpp.park import model as m


def top_assets(site: m.Site) -> dict[str, str]:
    """Every asset a group can name, with its bus (PEDF buildings as themselves, their
    members not listed)."""
    a = site.assets
    kinds = (
        a.pv_arrays,
        a.batteries,
        a.ev_chargers,
        a.shiftable_loads,
        a.curtailable_loads,
        a.base_loads,
        a.pedf_buildings,
    )
    return {x.name: x.bus for items in kinds for x in items}


def by_name(site: m.Site) -> dict[str, m.LimitGroup]:
    return {g.name: g for g in site.limit_groups}


def members(site: m.Site, group: str | m.LimitGroup) -> tuple[str, ...]:
    """The assets of ``group`` (its own, those on its buses and its child groups' members,
    recursively), sorted. The configuration is assumed checked (no cycle)."""
    groups = by_name(site)
    assets = top_assets(site)
    out: set[str] = set()

    def visit(g: m.LimitGroup, seen: frozenset[str]) -> None:
        if g.name in seen:  # a cycle (refused by the checks); do not recurse forever
            return
        out.update(x for x in g.assets if x in assets)
        buses = set(g.buses)
        out.update(name for name, bus in assets.items() if bus in buses)
        for child in g.groups:
            if child in groups:
                visit(groups[child], seen | {g.name})

    visit(groups[group] if isinstance(group, str) else group, frozenset())
    return tuple(sorted(out))


def connections(site: m.Site) -> dict[str, tuple[str, float]]:
    """Each decision asset's (connection, line-to-line voltage): chargers as configured, the
    rest three-phase at the voltage given (filled per group)."""
    return {c.name: (c.phase, c.voltage_v) for c in site.assets.ev_chargers}


def split_members(site: m.Site, names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``names`` as (decision assets, fixed loads): base loads are fixed, a PEDF building
    splits into its members."""
    a = site.assets
    base = {b.name for b in a.base_loads}
    pedf = {p.name: p for p in a.pedf_buildings}
    decide: list[str] = []
    fixed: list[str] = []
    for x in names:
        if x in base:
            fixed.append(x)
        elif x in pedf:
            pe = pedf[x]
            decide += [pe.battery.name, pe.pv.name]
            decide += [pe.flexible_load.name] if pe.flexible_load else []
            fixed.append(pe.base_load.name)
        else:
            decide.append(x)
    return decide, fixed


def member_connections(site: m.Site, g: m.LimitGroup) -> list[tuple[str, str, float]]:
    """(asset, connection, voltage_v) of every member of ``g`` (decisions and fixed loads),
    for the realised phase currents."""
    decide, fixed = split_members(site, members(site, g))
    conn = connections(site)
    v = float(g.voltage_v or 400.0)
    return [(x, *conn.get(x, ("three_phase", v))) for x in decide + fixed]


def has_limit(g: m.LimitGroup) -> bool:
    return any(
        x is not None
        for x in (g.import_max_kw, g.export_max_kw, g.current_max_a, g.phase_current_max_a)
    )


def limit_group_problems(site: m.Site) -> Iterable[str]:
    """Every problem of ``site.limit_groups`` and of the chargers' phase fields (field paths)."""
    yield from _charger_problems(site)
    names: dict[str, int] = {}
    assets = top_assets(site)
    buses = set(site.bus_names())
    for i, g in enumerate(site.limit_groups):
        p = f"limit_groups[{i}]"
        if not g.name:
            yield f"{p}.name: must be a non-empty name"
        if g.name in names:
            yield f"{p}.name: {g.name!r} is already used by limit_groups[{names[g.name]}]"
        names.setdefault(g.name, i)
    for i, g in enumerate(site.limit_groups):
        yield from _group_problems(g, f"limit_groups[{i}]", assets, buses, names)
    yield from _cycles(site)


def _group_problems(
    g: m.LimitGroup, p: str, assets: dict[str, str], buses: set[str], names: dict[str, int]
) -> Iterable[str]:
    for j, x in enumerate(g.assets):
        if x not in assets:
            yield f"{p}.assets[{j}]: unknown asset {x!r} (group {g.name})"
    for j, b in enumerate(g.buses):
        if b not in buses:
            yield f"{p}.buses[{j}]: unknown bus {b!r}; buses are {sorted(buses)}"
    for j, c in enumerate(g.groups):
        if c not in names:
            yield f"{p}.groups[{j}]: unknown group {c!r}; groups are {sorted(names)}"
        elif c == g.name:
            yield f"{p}.groups[{j}]: group {g.name!r} cannot contain itself"
    if not (g.assets or g.buses or g.groups):
        yield f"{p}: group {g.name!r} has no members (assets, buses or groups)"
    if not has_limit(g):
        yield (
            f"{p}: group {g.name!r} has no limit; give import_max_kw, export_max_kw, "
            "current_max_a or phase_current_max_a"
        )
    for f in ("import_max_kw", "export_max_kw", "current_max_a", "phase_current_max_a"):
        v = getattr(g, f)
        if v is not None and not (math.isfinite(v) and v >= 0):
            yield f"{p}.{f}: must be >= 0, got {v:g}"
    current = g.current_max_a is not None or g.phase_current_max_a is not None
    if current and g.voltage_v is None:
        yield f"{p}.voltage_v: required with current_max_a or phase_current_max_a (line-to-line V)"
    if g.voltage_v is not None and not g.voltage_v > 0:
        yield f"{p}.voltage_v: must be > 0, got {g.voltage_v:g}"
    if not 0 < g.power_factor <= 1:
        yield f"{p}.power_factor: must be in (0, 1], got {g.power_factor:g}"


def _cycles(site: m.Site) -> Iterable[str]:
    """One problem per group that contains itself through its children."""
    groups = by_name(site)
    index = {g.name: i for i, g in enumerate(site.limit_groups)}

    def path_back(start: str) -> list[str] | None:
        stack = [(c, [start, c]) for c in groups[start].groups if c in groups]
        seen: set[str] = set()
        while stack:
            name, path = stack.pop()
            if name == start:
                return path
            if name in seen:
                continue
            seen.add(name)
            stack.extend((c, [*path, c]) for c in groups[name].groups if c in groups)
        return None

    for name in groups:
        cycle = path_back(name)
        if cycle and len(cycle) > 2:
            yield (f"limit_groups[{index[name]}].groups: cycle in nesting: " + " -> ".join(cycle))


def _charger_problems(site: m.Site) -> Iterable[str]:
    for i, c in enumerate(site.assets.ev_chargers):
        p = f"assets.ev_chargers[{i}]"
        if c.phase not in m.PHASES:
            yield f"{p}.phase: must be one of {list(m.PHASES)}, got {c.phase!r}"
        if not c.voltage_v > 0:
            yield f"{p}.voltage_v: must be > 0, got {c.voltage_v:g}"
        if c.pilot is None or c.phase not in m.PHASES or not c.voltage_v > 0:
            continue
        pi = c.pilot
        bad = [x for x in pi.values_a if not x > 0]
        if bad:
            yield f"{p}.pilot.values_a: every current must be > 0 A, got {bad[0]:g}"
        if not pi.min_a > 0:
            yield f"{p}.pilot.min_a: must be > 0 A, got {pi.min_a:g}"
        if not pi.step_a > 0:
            yield f"{p}.pilot.step_a: must be > 0 A, got {pi.step_a:g}"
        if not pi.max_a >= pi.min_a:
            yield f"{p}.pilot.max_a: must be >= min_a ({pi.min_a:g}), got {pi.max_a:g}"
        if pi.step_a > 0 and len(m.charger_steps_kw(c)) < 2:
            k = m.kw_per_a(c.phase, c.voltage_v)
            yield (
                f"{p}.pilot: no pilot current gives a power in [p_min_kw, p_max_kw] = "
                f"[{c.p_min_kw:g}, {c.p_max_kw:g}] kW ({k:.3f} kW per A on {c.phase} at "
                f"{c.voltage_v:g} V)"
            )
