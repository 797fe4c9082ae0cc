"""``vpp grid``: check a dispatch schedule against the park network, export the network.

    vpp grid check --config configs/parks/demo.yaml --schedule dispatch.json
    vpp grid export --config configs/parks/demo.yaml --out park_net.json

``--schedule`` is the JSON written by ``vpp dispatch --json`` (``bus_p_kw`` per bus, and the
assets, whose kinds give the reactive power of the consumption).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("grid", help="AC power flow of a schedule; network export")
    sub = p.add_subparsers(dest="grid_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="validate every step of a schedule with AC power flow")
    c.add_argument("--config", required=True, help="park YAML file")
    c.add_argument("--schedule", required=True, help="JSON from 'vpp dispatch --json'")
    c.add_argument("--ext-grid-vm-pu", type=float, default=1.0, help="utility voltage, pu")
    c.set_defaults(func=_check)
    e = sub.add_parser("export", help="write the park network as a pandapower JSON file")
    e.add_argument("--config", required=True, help="park YAML file")
    e.add_argument("--out", required=True, help="output JSON path")
    e.set_defaults(func=_export)


def _site(path: str):
    from vpp.errors import UserError
    from vpp.park.config import ConfigError, load_site

    try:
        return load_site(path)
    except (ConfigError, OSError) as exc:
        raise UserError(f"{path}: {exc}") from None


def _read_schedule(path: str) -> tuple[dict[str, np.ndarray], dict[str, SimpleNamespace]]:
    from vpp.errors import UserError

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        bus_p = {b: np.asarray(v, dtype=float) for b, v in raw["bus_p_kw"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: expected dispatch JSON with 'bus_p_kw' ({exc})") from None
    assets = {
        name: SimpleNamespace(kind=a.get("kind"), bus=a.get("bus"), p_kw=np.asarray(a["p_kw"]))
        for name, a in (raw.get("assets") or {}).items()
    }
    return bus_p, assets


def _check(args: argparse.Namespace) -> int:
    from vpp.errors import UserError
    from vpp.grid import unbalanced
    from vpp.grid.network import GridModel, GridOptions, bus_q_kvar

    site = _site(args.config)
    grid = GridModel.from_site(site, GridOptions(ext_grid_vm_pu=args.ext_grid_vm_pu))
    bus_p, assets = _read_schedule(args.schedule)
    q = bus_q_kvar(assets, grid.buses, grid.options.load_power_factor)
    try:
        rep = grid.validate(bus_p, {b: q.get(b, 0.0 * p) for b, p in bus_p.items()})
    except ValueError as exc:
        raise UserError(f"{args.schedule}: {exc}") from None
    phase_note = ""
    if unbalanced.applies(site) and assets:
        # Single-phase chargers on the network: every step per phase as well (runpp_3ph).
        found = unbalanced.PhaseCheck(site, grid.options.load_power_factor).check(
            {n: a.p_kw for n, a in assets.items()},
            rep,
            list(range(len(rep.vm_min_pu))),
            rep.limits,
        )
        unbalanced.fold(rep, found)
        worst = max(found.trafo_loading_max_percent.values(), default=float("nan"))
        phase_note = f", worst transformer phase {worst:.1f} % (unbalanced flow)"
    print(f"{len(rep.vm_min_pu)} steps: voltage {np.nanmin(rep.vm_min_pu):.4f}-"
          f"{np.nanmax(rep.vm_max_pu):.4f} pu, max line loading "
          f"{np.nanmax(rep.line_loading_max_percent):.1f} %, max transformer loading "
          f"{np.nanmax(rep.trafo_loading_max_percent):.1f} %, losses "
          f"{np.nansum(rep.losses_kw) * site.dispatch.step_minutes / 60:.1f} kWh, reverse flow "
          f"{rep.reverse_flow_kw.max():.1f} kW max{phase_note}")  # fmt: skip
    for line in rep.summary():
        print(f"VIOLATION {line}")
    return 0 if rep.ok else 1


def _export(args: argparse.Namespace) -> int:
    import pandapower as pp

    from vpp.grid.network import GridModel

    grid = GridModel.from_site(_site(args.config))
    pp.to_json(grid.net, args.out)
    print(f"wrote {args.out}: {len(grid.net.bus)} buses, {len(grid.net.line)} lines, "
          f"{len(grid.net.trafo)} transformers")  # fmt: skip
    return 0
