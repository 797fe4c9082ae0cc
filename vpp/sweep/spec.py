"""Sweep files: the axes of a study and how they combine, read and validated once, at the edge.

A sweep file (``configs/sweeps/*.yaml``; paths relative to it)::

    description: mpc against rule over seeds, battery sizes and two tariffs
    days: 0.25                 # every case's length (default: the scenario's)
    start: 2026-07-14          # default first day of a case without a ``start`` axis
    forecast: naive            # default forecast (naive | model | perfect)
    combine: product           # product (every combination) | zip (the i-th of every axis)
    baseline: true             # add the uncontrolled case of each seed/date/park variant
    grid: false                # validate every dispatch with the AC power flow (slow)
    history_days: 14           # measured history before each start (default: simulate's)
    axes:
      controller: [mpc, rule]          # mpc | rule | uncontrolled
      seed: [1, 2, 3]
      start: [2026-07-14, 2026-01-13]  # dates (a season is a date of it)
      battery_scale: [0.5, 1, 2]       # every battery's kWh and kW times this
      pv_scale: [1, 1.5]               # every PV array's kWp and inverter kW times this
      tariff: [../tariffs/zhejiang_2026.yaml]     # tariff files (replace the park's)
      dr: [null, ../scenarios/demo_dr_july.yaml]  # DR files (null: none beyond the park's)
      forecast: [naive, perfect]
      load_noise_frac: [0.03, 0.1]     # forecast error level: the truth's load noise (1 = 100 %)
      risk_frac: [0, 1]                # the park's dispatch.risk_frac replaced
    cases:                     # listed cases, added to the axes' (unset fields: defaults)
    - {controller: mpc, seed: 7, battery_scale: 3}

Every problem names the file and the field path, the way the park file's do
(:class:`vpp.park.config.ConfigError`)::

    sweeps/x.yaml: axes.tariff[2]: no such file 'nope.yaml' (looked at /.../nope.yaml)

and every case is resolved (its park variant, tariff, DR calls) and checked against its days
before anything runs (:func:`resolve`). A case's key (:attr:`Resolved.key`) is a hash of its
full resolved definition: the park variant, its DR events, the truth, the days, the
controller, the seed, the park file's content and the code version (:func:`code_version`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from vpp.park.config import (
    ConfigError,
    file_label,
    load_dr_file,
    load_site,
    load_tariff,
    read_yaml_mapping,
)
from vpp.park.coverage import calendar_problem, planned_days, tariff_problem
from vpp.park.model import RISK_FRAC_MAX, DemandResponseEvent, Site
from vpp.plan.history_forecasters import FORECASTS
from vpp.sim.closed_loop import CONTROLLER_NAMES
from vpp.sim.scenarios import parse_day
from vpp.sim.simulated_park import SimOptions

KEYS = (
    "description",
    "days",
    "start",
    "forecast",
    "combine",
    "baseline",
    "grid",
    "history_days",
    "axes",
    "cases",
)
COMBINE = ("product", "zip")
DAYS_MAX = 366.0
SCALE_MAX = 10.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """One point of the sweep: the axis values (None: the park's or the scenario's own)."""

    controller: str = "mpc"
    seed: int = 0
    start: str | None = None  # YYYY-MM-DD
    battery_scale: float = 1.0
    pv_scale: float = 1.0
    tariff: str | None = None  # a tariff file (absolute)
    dr: str | None = None  # a DR file (absolute); None: only the park's own events
    forecast: str | None = None
    load_noise_frac: float | None = None
    risk_frac: float | None = None

    def reference(self) -> Case:
        """The uncontrolled case of the same seed, date, park variant and truth."""
        return replace(self, controller="uncontrolled", risk_frac=None)


AXES = tuple(f.name for f in fields(Case))


@dataclass(frozen=True)
class Base:
    """What a sweep varies: the park (``--config``) or a scenario (``--scenario``)."""

    park_file: Path
    site: Site
    start: date | None = None
    days: float | None = None
    forecast: str | None = None
    dr_file: Path | None = None
    options: SimOptions | None = None
    scenario_file: Path | None = None


@dataclass(frozen=True)
class Resolved:
    """A case ready to run: the park variant, its start, DR events and truth, and its key."""

    case: Case
    key: str
    site: Site
    start: datetime
    days: float
    forecast: str
    events: tuple[DemandResponseEvent, ...]
    options: SimOptions | None
    grid: bool
    reference_key: str | None  # the uncontrolled case it is measured against
    history_days: int | None = None  # measured history before the start (None: simulate's)


@dataclass(frozen=True)
class Sweep:
    path: Path
    description: str
    cases: tuple[Resolved, ...]  # listed order; references included, each once

    def __len__(self) -> int:
        return len(self.cases)


# ------------------------------------------------------------------------------------------
# The base of a sweep
# ------------------------------------------------------------------------------------------
def base_from_config(path: str | Path) -> Base:
    """A park file as the base (raises :class:`ConfigError`)."""
    path = Path(path).resolve()
    return Base(park_file=path, site=load_site(path))


def base_from_scenario(path: str | Path) -> Base:
    """A scenario file as the base: its park, start, days, forecast, DR file and truth."""
    from vpp.sim.scenarios import load_scenario

    sc = load_scenario(path)
    return Base(
        park_file=Path(sc.park_file).resolve(),
        site=sc.site,
        start=sc.start.date(),
        days=sc.days,
        forecast=sc.forecast,
        dr_file=None if sc.dr_file is None else Path(sc.dr_file).resolve(),
        options=sc.options,
        scenario_file=Path(path).resolve(),
    )


# ------------------------------------------------------------------------------------------
# Reading the file
# ------------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def read_raw(path: Path) -> dict:
    return read_yaml_mapping(path)


def load_spec(path: str | Path, base: Base) -> Sweep:
    """Read a sweep file, expand its cases over ``base`` and resolve every one of them.

    Raises :class:`ConfigError` with every problem as ``FILE: field.path: message``."""
    path = Path(path)
    label = file_label(path)
    raw = read_raw(path)
    problems: list[str] = []
    bad = sorted(set(raw) - set(KEYS), key=str)
    problems += [f"{k}: unknown key; expected one of {list(KEYS)}" for k in bad]
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        problems.append(f"description: expected a text, got {_kind(desc)}")
        desc = ""
    defaults = _defaults(raw, base, problems)
    combine = raw.get("combine", "product")
    if combine not in COMBINE:
        problems.append(f"combine: must be one of {list(COMBINE)}, got {combine!r}")
    flags = {}
    for key, default in (("baseline", True), ("grid", False)):
        v = raw.get(key, default)
        if not isinstance(v, bool):
            problems.append(f"{key}: expected true or false, got {v!r}")
            v = default
        flags[key] = v
    cases = _expand(raw, path, defaults, combine, problems)
    if problems:
        raise ConfigError([f"{label}: {p}" for p in problems])
    if not cases:
        raise ConfigError([f"{label}: axes, cases: the sweep has no case"])
    flags["history_days"] = defaults["history_days"]
    resolved = resolve(cases, base, defaults["days"], flags, label)
    return Sweep(path=path, description=" ".join(desc.split()), cases=resolved)


def _defaults(raw: dict, base: Base, problems: list[str]) -> dict:
    """The sweep-wide values: days, default start and forecast (the file's, else the base's)."""
    days = raw.get("days", base.days)
    if days is None:
        problems.append("days: required (the base is a park file, not a scenario)")
    elif not _is_number(days) or not 0 < days <= DAYS_MAX:
        problems.append(f"days: must be a number in (0, {DAYS_MAX:g}], got {days!r}")
        days = None
    start = base.start
    if "start" in raw:
        start = _case_day(raw["start"], "start", problems)
    forecast = raw.get("forecast", base.forecast or "naive")
    if forecast not in FORECASTS:
        problems.append(f"forecast: must be one of {list(FORECASTS)}, got {forecast!r}")
    dr = None if base.dr_file is None else str(base.dr_file)
    hist = raw.get("history_days")
    if hist is not None and (isinstance(hist, bool) or not isinstance(hist, int) or hist < 7):
        problems.append(f"history_days: expected a whole number of days >= 7, got {hist!r}")
        hist = None
    return {"days": days, "start": start, "forecast": forecast, "dr": dr, "history_days": hist}


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


# ------------------------------------------------------------------------------------------
# Axis values
# ------------------------------------------------------------------------------------------
def axis_value(name: str, v: Any, where: str, spec: Path, problems: list[str]) -> Any:
    """One axis value, checked and converted (files made absolute); None after a problem is
    reported (the caller tells a problem from a legitimate None by the problems' count)."""
    if name == "controller":
        if v not in CONTROLLER_NAMES:
            problems.append(f"{where}: must be one of {list(CONTROLLER_NAMES)}, got {v!r}")
        return v
    if name == "seed":
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32:
            problems.append(f"{where}: expected a whole number in [0, 2**32), got {v!r}")
        return v
    if name == "start":
        d = _case_day(v, where, problems)
        return None if d is None else d.isoformat()
    if name in ("battery_scale", "pv_scale"):
        return _number(v, where, problems, 0.0, SCALE_MAX, lo_open=True)
    if name == "load_noise_frac":
        return _number(v, where, problems, 0.0, 1.0)
    if name == "risk_frac":
        return _number(v, where, problems, 0.0, RISK_FRAC_MAX)
    if name == "forecast":
        if v not in FORECASTS:
            problems.append(f"{where}: must be one of {list(FORECASTS)}, got {v!r}")
        return v
    if name == "tariff":
        f = _file(v, where, spec, problems, optional=False)
        if f is not None:
            try:
                load_tariff(f)
            except ConfigError as exc:
                problems += [f"{where} ({v}): {p}" for p in exc.problems]
                return None
        return f
    if name == "dr":
        return _file(v, where, spec, problems, optional=True)
    raise AssertionError(name)


def _number(
    v: Any, where: str, problems: list[str], lo: float, hi: float, lo_open: bool = False
) -> float | None:
    if not _is_number(v):
        problems.append(f"{where}: expected a number, got {v!r}")
        return None
    if v < lo or (lo_open and v == lo) or v > hi:
        left = "(" if lo_open else "["
        problems.append(f"{where}: must be in {left}{lo:g}, {hi:g}], got {v:g}")
        return None
    return float(v)


def _file(v: Any, where: str, spec: Path, problems: list[str], optional: bool) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip():
        problems.append(f"{where}: must name a YAML file (relative to the sweep file), got {v!r}")
        return None
    f = (spec.parent / v).resolve()
    if not f.is_file():
        problems.append(f"{where}: no such file {v!r} (looked at {f})")
        return None
    return str(f)


def _expand(raw: dict, spec: Path, defaults: dict, combine: str, problems: list[str]) -> list[Case]:
    """The cases of the axes (product or zip) and of the ``cases`` list."""
    axes = raw.get("axes", {}) or {}
    if not isinstance(axes, dict):
        problems.append(f"axes: expected a mapping of {list(AXES)}, got {_kind(axes)}")
        axes = {}
    bad = sorted(set(axes) - set(AXES), key=str)
    problems += [f"axes.{k}: unknown axis; expected one of {list(AXES)}" for k in bad]
    values: dict[str, list] = {}
    for name in AXES:
        if name not in axes:
            continue
        items = axes[name]
        if not isinstance(items, list) or not items:
            problems.append(f"axes.{name}: expected a non-empty list, got {_kind(items)}")
            continue
        values[name] = [
            axis_value(name, v, f"axes.{name}[{i}]", spec, problems) for i, v in enumerate(items)
        ]
    out: list[Case] = []
    names = list(values)
    if names and combine == "zip":
        lengths = {n: len(values[n]) for n in names}
        if len(set(lengths.values())) > 1:
            problems.append(f"axes: combine: zip needs axes of one length, got {lengths}")
        else:
            out += [
                _case(dict(zip(names, row, strict=True)), defaults)
                for row in zip(*values.values(), strict=True)
            ]
    elif names:
        rows = itertools.product(*values.values())
        out += [_case(dict(zip(names, row, strict=True)), defaults) for row in rows]
    listed = raw.get("cases", []) or []
    if not isinstance(listed, list):
        problems.append(f"cases: expected a list of mappings, got {_kind(listed)}")
        listed = []
    for j, item in enumerate(listed):
        if not isinstance(item, dict):
            problems.append(f"cases[{j}]: expected a mapping of {list(AXES)}, got {_kind(item)}")
            continue
        bad = sorted(set(item) - set(AXES), key=str)
        problems += [f"cases[{j}].{k}: unknown axis; expected one of {list(AXES)}" for k in bad]
        vals = {
            k: axis_value(k, v, f"cases[{j}].{k}", spec, problems)
            for k, v in item.items()
            if k in AXES
        }
        out.append(_case(vals, defaults))
    return out


def _case(values: dict, defaults: dict) -> Case:
    values = dict(values)
    if values.get("start") is None and defaults["start"] is not None:
        values["start"] = defaults["start"].isoformat()
    if values.get("forecast") is None:
        values["forecast"] = defaults["forecast"]
    if "dr" not in values:  # an explicit null is no DR file; left out, the scenario's
        values["dr"] = defaults["dr"]
    return Case(**values)


# ------------------------------------------------------------------------------------------
# Resolving a case: its park variant, DR events, truth and key
# ------------------------------------------------------------------------------------------
def scaled_site(site: Site, battery_scale: float, pv_scale: float) -> Site:
    """The park with every battery's energy and power, and every PV array's kWp and inverter,
    scaled (PEDF buildings' included)."""

    def bat(b):
        return replace(
            b,
            e_kwh=b.e_kwh * battery_scale,
            p_charge_max_kw=b.p_charge_max_kw * battery_scale,
            p_discharge_max_kw=b.p_discharge_max_kw * battery_scale,
        )

    def pv(a):
        return replace(a, kwp=a.kwp * pv_scale, inverter_kw=a.inverter_kw * pv_scale)

    if battery_scale == 1.0 and pv_scale == 1.0:
        return site
    a = site.assets
    assets = replace(
        a,
        batteries=tuple(bat(b) for b in a.batteries),
        pv_arrays=tuple(pv(x) for x in a.pv_arrays),
        pedf_buildings=tuple(
            replace(p, battery=bat(p.battery), pv=pv(p.pv)) for p in a.pedf_buildings
        ),
    )
    return replace(site, assets=assets)


def _variant(case: Case, base: Base) -> Site:
    site = scaled_site(base.site, case.battery_scale, case.pv_scale)
    if case.tariff is not None:
        site = replace(site, tariff=load_tariff(case.tariff))
    if case.risk_frac is not None:
        site = replace(site, dispatch=replace(site.dispatch, risk_frac=case.risk_frac))
    return site


def describe(case: Case) -> str:
    """``controller=mpc, seed=2, tariff=zhejiang_2026``: a case in a line."""
    parts = []
    for f in fields(Case):
        v = getattr(case, f.name)
        if f.name in ("tariff", "dr") and v is not None:
            v = Path(v).stem
        parts.append(f"{f.name}={v}")
    return ", ".join(parts)


def _resolve_one(case: Case, base: Base, days: float, flags: dict) -> tuple[Resolved | None, list]:
    """The case ready to run, or the problems that stop it (its days outside the tariff or a
    known calendar, its DR file not fitting its park variant)."""
    problems: list[str] = []
    site = _variant(case, base)
    tz = ZoneInfo(site.location.tz)
    if case.start is None:
        return None, ["start: required (an axis, the file's start or the scenario's)"]
    start = datetime.combine(date.fromisoformat(case.start), time(0), tzinfo=tz)
    first, last = planned_days(site, start, start + timedelta(days=days))
    for line in (tariff_problem(site, first, last), calendar_problem(site, first, last)):
        if line is not None:
            problems.append(f"start, days: {line}")
    events = site.dr_events
    dr = case.dr
    if dr is not None:
        try:
            events = events + load_dr_file(dr, site.location.tz, site)
        except ConfigError as exc:
            problems += [f"dr ({Path(dr).name}): {p}" for p in exc.problems]
    options = base.options
    if case.load_noise_frac is not None:
        options = replace(options or SimOptions(), load_noise_frac=case.load_noise_frac)
    if problems:
        return None, problems
    assert case.forecast is not None
    grid, hist = flags["grid"], flags.get("history_days")
    key = case_key(base, site, start, days, case, events, options, grid, hist)
    r = Resolved(case, key, site, start, days, case.forecast, events, options, grid, None, hist)
    return r, []


def resolve(
    cases: list[Case], base: Base, days: float, flags: dict, label: str
) -> tuple[Resolved, ...]:
    """Every case (and, with ``baseline``, each one's uncontrolled reference) resolved; one
    :class:`ConfigError` naming every case that cannot run."""
    if flags["baseline"]:
        cases = cases + [c.reference() for c in cases if c.controller != "uncontrolled"]
    problems: list[str] = []
    seen: dict[str, Resolved] = {}
    by_case: dict[Case, Resolved] = {}
    for i, case in enumerate(dict.fromkeys(cases)):
        r, bad = _resolve_one(case, base, days, flags)
        if bad:
            problems += [f"case {i + 1} ({describe(case)}): {p}" for p in bad]
            continue
        assert r is not None
        by_case[case] = r
        seen.setdefault(r.key, r)
    if problems:
        raise ConfigError([f"{label}: {p}" for p in problems])
    out = []
    for r in seen.values():
        ref = by_case.get(r.case.reference())
        ref_key = ref.key if ref is not None and ref.key != r.key else None
        out.append(replace(r, reference_key=ref_key))
    return tuple(out)


# ------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def code_version() -> str:
    """A hash of the source the simulation runs (``vpp/``, ``controllers/``, ``forecasts/``):
    a change of code is a new case."""
    h = hashlib.sha256()
    for pkg in ("vpp", "controllers", "forecasts"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def _file_sha(path: str) -> str:
    return _sha(Path(path).read_bytes())


def case_key(
    base: Base,
    site: Site,
    start: datetime,
    days: float,
    case: Case,
    events: tuple,
    options: SimOptions | None,
    grid: bool,
    history_days: int | None = None,
) -> str:
    """The key of a case: a hash of everything that decides its figures."""
    doc = {
        "case": dataclasses.asdict(case),
        "files": {
            k: _file_sha(v) for k, v in (("tariff", case.tariff), ("dr", case.dr)) if v is not None
        },
        "park_sha": _file_sha(str(base.park_file)),
        "site": _sha(repr(site).encode()),
        "events": _sha(repr(events).encode()),
        "options": repr(options),
        "start": start.isoformat(),
        "days": days,
        "grid": grid,
        "history_days": history_days,
        "code": code_version(),
    }
    return _sha(json.dumps(doc, sort_keys=True, default=str).encode())[:20]


def _case_day(v: Any, where: str, problems: list[str]) -> date | None:
    return parse_day(v, where, problems, starts="a case")
