"""``vpp config check``: validate park files, tariffs and DR scenario files without running
anything, every problem listed (exit 2 when there is one). ``vpp config schema``: the JSON
Schema of the park file (or of a tariff file), for editors. ``vpp config reference``: the
configuration reference (Markdown) generated from that schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

KINDS = ("auto", "park", "tariff", "dr")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="check configuration files without running anything",
        description="Validate park files, tariffs and DR scenario files.",
    )
    cmds = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    c = cmds.add_parser(
        "check",
        help="validate files; every problem listed, exit 2 if there is one",
        description=(
            "Validates each FILE as a park file (has 'site'), a tariff (has 'seasons') or a DR "
            "scenario (has 'dr_events'), or as --kind says. A DR scenario is checked against "
            "--park (its zone and connection) when given. Prints 'FILE: ok ...' or every "
            "problem, one per line, as 'FILE: field.path: message'."
        ),
    )
    c.add_argument("files", nargs="+", type=Path, metavar="FILE")
    c.add_argument("--kind", choices=KINDS, default="auto", help="what the files are (auto)")
    c.add_argument("--park", type=Path, help="park file a DR scenario is checked against")
    c.set_defaults(func=run_check)
    s = cmds.add_parser(
        "schema",
        help="write the JSON Schema of the park file (or of a tariff file)",
        description=(
            "Writes the JSON Schema (draft 2020-12) of the park file as the YAML is written, "
            "with every field's unit, default and bounds, to stdout or --out. The repository "
            "keeps it in docs/park.schema.json (regenerate: vpp config schema --out "
            "docs/park.schema.json)."
        ),
    )
    s.add_argument("--of", choices=("park", "tariff"), default="park", help="which file (park)")
    s.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    s.set_defaults(func=run_schema)
    r = cmds.add_parser(
        "reference",
        help="write the configuration reference (Markdown) generated from the schema",
        description=(
            "Writes the park file's reference, one table per object (field path, type, unit, "
            "default, bounds, meaning), to stdout or --out. The repository keeps it in "
            "docs/configuration.md (regenerate: vpp config reference --out "
            "docs/configuration.md)."
        ),
    )
    r.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")
    r.set_defaults(func=run_reference)


def kind_of(path: Path, raw: Any) -> str | None:
    """What a parsed file is: 'park', 'tariff', 'dr', or None when it cannot be told."""
    if not isinstance(raw, dict):
        return None
    if "site" in raw:
        return "park"
    if "seasons" in raw or "tiers_cny_per_kwh" in raw:
        return "tariff"
    if "dr_events" in raw:
        return "dr"
    return None


def check_file(path: Path, kind: str = "auto", park: Path | None = None) -> tuple[bool, list[str]]:
    """Validate one file; ``(ok, lines)`` with a summary line or every problem."""
    from vpp.errors import UserError
    from vpp.park.config import ConfigError, load_dr_file, load_site, load_tariff
    from vpp.park.model import DEFAULT_TZ

    if kind == "auto":
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            return False, [f"{path}: cannot read ({exc.strerror})"]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            return False, [f"{path}: not valid YAML{where}"]
        kind = kind_of(path, raw) or ""
        if not kind:
            return False, [
                f"{path}: cannot tell what this file is (no 'site', 'seasons' or 'dr_events' "
                "at the top level); pass --kind park|tariff|dr"
            ]
    try:
        if kind == "park":
            site = load_site(path)
            a = site.assets
            n_assets = len(a.names())
            return True, [
                f"{path}: ok (park {site.name!r}: {len(site.buses)} buses, {n_assets} assets, "
                f"{len(site.dr_events)} DR events, tariff {site.tariff.name!r})"
            ]
        if kind == "tariff":
            t = load_tariff(path)
            return True, [f"{path}: ok (tariff {t.name!r}: {len(t.seasons)} seasons)"]
        site = load_site(park) if park is not None else None
        tz = site.location.tz if site is not None else DEFAULT_TZ
        events = load_dr_file(path, tz, site)
        against = f" against {park}" if park is not None else f" (zone {tz}; no --park)"
        return True, [f"{path}: ok ({len(events)} DR events{against})"]
    except ConfigError as exc:
        return False, list(exc.problems)
    except UserError as exc:
        return False, str(exc).splitlines()


def run_check(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.files:
        ok, lines = check_file(path, args.kind, args.park)
        bad += not ok
        for line in lines:
            print(line)
    if bad:
        print(f"{bad} of {len(args.files)} files have problems")
        return 2
    return 0


def schema_text(of: str = "park") -> str:
    """The JSON Schema of the park file (``of="park"``) or of a tariff file, as JSON text."""
    from vpp.park import schema

    doc = schema.park_schema() if of == "park" else schema.tariff_schema()
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def reference_text() -> str:
    """The configuration reference of the park file, as Markdown text."""
    from vpp.park.config_reference import reference_markdown
    from vpp.park.schema import park_schema

    return reference_markdown(park_schema())


def _emit(text: str, out: Path | None) -> int:
    if out is None:
        sys.stdout.write(text)
        return 0
    from vpp.errors import UserError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{out}: cannot write ({exc.strerror})") from None
    print(f"wrote {out}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    return _emit(schema_text(args.of), args.out)


def run_reference(args: argparse.Namespace) -> int:
    return _emit(reference_text(), args.out)
