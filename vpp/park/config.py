"""Park configuration: YAML -> :class:`vpp.park.model.Site`, validated once, at the edge.

Every error names the file, the field path and what was expected, e.g.::

    parks/demo.yaml: assets.batteries[2].soc_min_frac: must be in [0, 1], got 1.4

Unknown keys are errors. Types are checked by pydantic against the model's dataclasses; the
physical sense of the values (ranges, references between assets) is checked here.

Conveniences the YAML offers on top of the model:

- ``tariff: ../tariffs/zhejiang_2026.yaml`` and ``carbon: {factors: FILE, region, year}``
  load shared data files (paths relative to the park file);
- ``calendar: {holidays: [...], workdays: [...]}`` takes dates or ``"A..B"`` blocks of days
  (the park's own public holidays and make-up working days, :mod:`vpp.park.calendar`);
- ``assets.ev_charger_groups`` expands ``count`` identical chargers named ``prefix-NN`` with
  the fleet that uses them;
- datetimes without a zone are in the site's zone (``site.location.tz``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import TypeAdapter, ValidationError

from vpp.park import battery_detail, dr_checks
from vpp.park import model as m
from vpp.park.calendar import park_calendar_problems
from vpp.park.field_checks import field_problems
from vpp.park.limit_groups import limit_group_problems
from vpp.park.meters import metering_problems
from vpp.park.price_series import (
    STEPS_MINUTES,
    VALUE_COLUMN,
    SeriesFileError,
    read_series_csv,
)
from vpp.park.tariff_checks import tariff_problems
from vpp.park.value_checks import in_range, nonneg, positive


class ConfigError(ValueError):
    """A configuration problem, with every issue found (file: path: message)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def load_site(path: str | Path) -> m.Site:
    """Read, expand and validate a park file. Raises :class:`ConfigError`."""
    path = Path(path)
    raw = _read_yaml(path)
    return site_from_dict(raw, path)


def site_from_dict(raw: Any, path: Path) -> m.Site:
    """Validate an already parsed park mapping (``path`` is used in messages and for includes)."""
    label = _label(path)
    if not isinstance(raw, dict):
        raise ConfigError([f"{label}: expected a mapping at the top level"])
    top = sorted(set(raw) - _PARK_KEYS)  # listed with the rest, not on their own
    data = {k: v for k, v in raw.items() if k in _PARK_KEYS}
    site = _mapping(data.pop("site", None), "site", label)
    _check_keys(site, {"name", "location", "value_added_10k_cny_per_year"}, "site", label)
    assets = _mapping(data.pop("assets", {}) or {}, "assets", label)
    groups = assets.pop("ev_charger_groups", []) or []
    chargers, fleets = _expand_charger_groups(groups, label)
    assets["ev_chargers"] = list(assets.get("ev_chargers", []) or []) + chargers
    merged = {k: v for k, v in site.items() if k != "value_added_10k_cny_per_year"}
    if "value_added_10k_cny_per_year" in site:
        merged["value_added_10k_cny_per_year"] = site["value_added_10k_cny_per_year"]
    merged |= {
        "assets": assets,
        "ev_fleets": list(data.pop("ev_fleets", []) or []) + fleets,
        "source_file": str(path),
    }
    if "tariff" in data:
        raw_tariff = data.pop("tariff")
        tariff = _include(raw_tariff, "tariff", path)  # a tariff file reads its own series
        inline = not isinstance(raw_tariff, str)
        merged["tariff"] = _tariff_series(tariff, "tariff.", path) if inline else tariff
    if "carbon" in data:
        merged["carbon"] = _carbon(data.pop("carbon"), path)
    if "calendar" in data:
        merged["calendar"] = _calendar(data.pop("calendar"), label)
    if "metering" in data:
        merged["metering"] = _metering(data.pop("metering"), path)
    merged |= data
    tz = _zone(merged, label)
    _localise(merged, tz)
    unknown = [
        f"{label}: {k}: unknown key; expected one of {sorted(_PARK_KEYS)}" for k in top
    ] + _unknown_keys(merged, m.Site, "", label)
    try:
        result = TypeAdapter(m.Site).validate_python(merged)
    except ValidationError as exc:
        _raise_with(unknown, [_format_pydantic(label, e) for e in exc.errors()])
    _raise_with(unknown, [f"{label}: {p}" for p in _semantic_problems(result)])
    return result


def load_tariff(path: str | Path) -> m.Tariff:
    path = Path(path)
    raw = _read_yaml(path)
    label = _label(path)
    raw = _tariff_series(raw, "", path)
    unknown = _unknown_keys(raw, m.Tariff, "", label)
    try:
        tariff = TypeAdapter(m.Tariff).validate_python(raw)
    except ValidationError as exc:
        _raise_with(unknown, [_format_pydantic(label, e) for e in exc.errors()])
    _raise_with(unknown, [f"{label}: {p}" for p in tariff_problems(tariff, "")])
    return dataclasses.replace(tariff, source_file=str(path))


# --------------------------------------------------------------------------------------------
# Reading and expanding
# --------------------------------------------------------------------------------------------
_PARK_KEYS = {
    "site",
    "connection",
    "buses",
    "network",
    "assets",
    "tariff",
    "carbon",
    "penalties",
    "dispatch",
    "dr_events",
    "dr_defaults",
    "dr_policy",
    "ev_sessions",
    "ev_fleets",
    "calendar",
    "field_devices",
    "limit_groups",
    "metering",
}


def file_label(path: Path) -> str:
    """How an error names a data file: its folder and name (``parks/demo.yaml``)."""
    parts = path.parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else str(path)


_label = file_label


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (a scenario, a sweep), or a ConfigError that
    names the file and what is wrong with it."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError([f"{file_label(path)}: expected a mapping at the top level"])
    return raw


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{_label(path)}: not valid YAML{where}"]) from None


def _mapping(value: Any, where: str, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError([f"{label}: {where}: expected a mapping, got {_kind(value)}"])
    return dict(value)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _check_keys(raw: dict[str, Any], allowed: set[str], where: str, label: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            [
                f"{label}: {prefix}{k}: unknown key; expected one of {sorted(allowed)}"
                for k in unknown
            ]
        )


def _include(value: Any, where: str, park_path: Path) -> Any:
    """A string names a YAML file relative to the park file; its content replaces it. A
    problem of the included file is reported at the park file's field that names it."""
    if isinstance(value, str):
        inc = _included_file(value, where, park_path)
        try:
            raw = _read_yaml(inc)
            if where == "tariff" or where.endswith(".tariff"):
                return dataclasses.asdict(load_tariff(inc)) if raw is not None else raw
        except ConfigError as exc:
            label = _label(park_path)
            raise ConfigError([f"{label}: {where} ({value}): {p}" for p in exc.problems]) from None
        return raw
    return value


def _metering(value: Any, park_path: Path) -> Any:
    """``metering.meters[i].tariff`` may name a tariff file, as the site's ``tariff`` does."""
    if not isinstance(value, dict) or not isinstance(value.get("meters"), list):
        return value  # the type check reports what is wrong
    meters = []
    for i, x in enumerate(value["meters"]):
        if isinstance(x, dict) and isinstance(x.get("tariff"), str):
            x = x | {"tariff": _include(x["tariff"], f"metering.meters[{i}].tariff", park_path)}
        meters.append(x)
    return value | {"meters": meters}


def _included_file(value: Any, where: str, park_path: Path) -> Path:
    """The file a park file's ``where`` names (relative to the park file)."""
    label = _label(park_path)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError([f"{label}: {where}: must name a YAML file, got {value!r}"])
    inc = (park_path.parent / value).resolve()
    if not inc.is_file():
        raise ConfigError([f"{label}: {where}: no such file {value!r} (looked at {inc})"])
    return inc


def _calendar(value: Any, label: str) -> Any:
    """``calendar: {holidays: [...], workdays: [...]}``: dates, or ``"2027-02-06..2027-02-12"``
    for a block of days (both ends included)."""
    value = _mapping(value, "calendar", label)
    _check_keys(value, {"holidays", "workdays"}, "calendar", label)
    out: dict[str, Any] = {}
    for key, items in value.items():
        if not isinstance(items, list):
            raise ConfigError([f"{label}: calendar.{key}: expected a list of dates"])
        days: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, str) and ".." in item:
                a, _, b = item.partition("..")
                try:
                    lo, hi = date.fromisoformat(a.strip()), date.fromisoformat(b.strip())
                except ValueError:
                    raise ConfigError(
                        [f"{label}: calendar.{key}[{i}]: not a date range, got {item!r}"]
                    ) from None
                if hi < lo or (hi - lo).days > 31:
                    raise ConfigError(
                        [
                            f"{label}: calendar.{key}[{i}]: a block must run forwards over "
                            f"at most 32 days, got {item!r}"
                        ]
                    )
                days += [lo + timedelta(days=k) for k in range((hi - lo).days + 1)]
            else:
                days.append(item)
        out[key] = days
    return out


def _tariff_series(raw: Any, where: str, path: Path) -> Any:
    """A tariff mapping with its ``energy_series.file`` read (relative to ``path``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("energy_series"), dict):
        return raw
    spec = _series_points(raw["energy_series"], f"{where}energy_series", path, "energy", 15)
    return {**raw, "energy_series": spec}


def _series_points(spec: dict, where: str, path: Path, kind: str | None, step: int) -> dict:
    """``spec`` with ``points`` read from its ``file`` (relative to ``path``, the file that
    names it); a problem of the series file is reported at the field that names it."""
    if not isinstance(spec.get("file"), str) or not spec["file"]:
        return spec
    label = _label(path)
    kind = kind or spec.get("kind", "average")
    step = spec.get("step_minutes", step)
    negative = spec.get("allow_negative", False)
    if not isinstance(step, int) or kind not in VALUE_COLUMN or not isinstance(negative, bool):
        return spec  # the validator names the field
    inc = (path.parent / spec["file"]).resolve()
    if not inc.is_file():
        raise ConfigError(
            [f"{label}: {where}.file: no such file {spec['file']!r} (looked at {inc})"]
        )
    try:
        points = read_series_csv(inc, kind, step, spec.get("name") or "", negative, _label(inc))
    except SeriesFileError as exc:
        raise ConfigError(
            [f"{label}: {where}.file ({spec['file']}): {p}" for p in exc.problems]
        ) from None
    return {**spec, "name": points.name, "points": dataclasses.asdict(points)}


def _carbon(value: Any, park_path: Path) -> Any:
    """``{factors: FILE, region: R, year: Y, ...}`` picks one entry of a factor catalogue;
    ``series: {file: CSV, kind: marginal, ...}`` adds a dated series beside it."""
    if isinstance(value, dict) and isinstance(value.get("emission_factor"), dict):
        ef = value["emission_factor"]
        if isinstance(ef.get("series"), dict):
            series = _series_points(
                ef["series"], "carbon.emission_factor.series", park_path, None, 60
            )
            return {**value, "emission_factor": {**ef, "series": series}}
    if not isinstance(value, dict) or "factors" not in value:
        return value
    label = _label(park_path)
    _check_keys(
        value,
        {"factors", "region", "year", "carbon_price_cny_per_t", "hourly_ef_kg_per_kwh", "series"},
        "carbon",
        label,
    )
    cat_path = _included_file(value["factors"], "carbon.factors", park_path)
    catalogue = _read_yaml(cat_path)
    cat_label = _label(cat_path)
    entries = catalogue.get("grid_emission_factors") if isinstance(catalogue, dict) else None
    if not isinstance(entries, list):
        raise ConfigError([f"{cat_label}: grid_emission_factors: expected a list"])
    region, year = value.get("region"), value.get("year")
    match = [e for e in entries if e.get("region") == region and e.get("year") == year]
    if not match:
        known = sorted({(e.get("region"), e.get("year")) for e in entries}, key=str)
        raise ConfigError(
            [
                f"{label}: carbon: no factor for region={region!r} year={year!r} in "
                f"{cat_label}; known: {known}"
            ]
        )
    ef = dict(match[0])
    if value.get("hourly_ef_kg_per_kwh") is not None:
        ef["hourly_ef_kg_per_kwh"] = value["hourly_ef_kg_per_kwh"]
    if isinstance(value.get("series"), dict):
        ef["series"] = _series_points(value["series"], "carbon.series", park_path, None, 60)
    elif value.get("series") is not None:
        ef["series"] = value["series"]
    return {
        "emission_factor": ef,
        "energy_factors": catalogue.get("energy_factors", {}),
        "carbon_price_cny_per_t": value.get("carbon_price_cny_per_t", 0.0),
    }


_GROUP_CHARGER_KEYS = (
    *("bus", "p_max_kw", "p_min_kw", "v2g", "eta", "give_way", "phase", "voltage_v", "pilot"),
)
_GROUP_KEYS = {"prefix", "count", "fleet", *_GROUP_CHARGER_KEYS}


def _expand_charger_groups(groups: Any, label: str) -> tuple[list[dict], list[dict]]:
    chargers: list[dict] = []
    fleets: list[dict] = []
    if not isinstance(groups, list):
        raise ConfigError([f"{label}: assets.ev_charger_groups: expected a list"])
    for i, g in enumerate(groups):
        where = f"assets.ev_charger_groups[{i}]"
        g = _mapping(g, where, label)
        _check_keys(g, _GROUP_KEYS, where, label)
        count = g.get("count")
        if not isinstance(count, int) or count < 1:
            raise ConfigError(
                [f"{label}: {where}.count: must be a whole number >= 1, got {count!r}"]
            )
        prefix = g.get("prefix")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError([f"{label}: {where}.prefix: must be a non-empty name"])
        width = max(2, len(str(count)))
        names = [f"{prefix}-{j + 1:0{width}d}" for j in range(count)]
        spec = {k: g[k] for k in _GROUP_CHARGER_KEYS if k in g}
        chargers.extend({"name": n, **spec} for n in names)
        if g.get("fleet") is not None:
            fleet = _mapping(g["fleet"], f"{where}.fleet", label)
            fleets.append({"name": prefix, "chargers": names, **fleet})
    return chargers, fleets


def _zone(merged: dict[str, Any], label: str) -> ZoneInfo:
    loc = merged.get("location")
    tz = loc.get("tz", m.DEFAULT_TZ) if isinstance(loc, dict) else m.DEFAULT_TZ
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([f"{label}: site.location.tz: unknown time zone {tz!r}"]) from None


def _localise(node: Any, tz: ZoneInfo) -> None:
    """Give naive datetimes (and ISO strings without offset) in DR events and sessions the
    site's zone, in place."""
    for key in ("dr_events", "ev_sessions"):
        for item in node.get(key) or []:
            if isinstance(item, dict):
                _localise_mapping(item, tz)


def _localise_mapping(d: dict[str, Any], tz: ZoneInfo) -> None:
    for k, v in list(d.items()):
        if isinstance(v, dict):
            _localise_mapping(v, tz)
        elif isinstance(v, list):
            for x in v:
                if isinstance(x, dict):
                    _localise_mapping(x, tz)
        elif isinstance(v, datetime) and v.tzinfo is None:
            d[k] = v.replace(tzinfo=tz)
        elif isinstance(v, str) and _looks_like_datetime(v):
            try:
                parsed = datetime.fromisoformat(v)
            except ValueError:
                continue
            d[k] = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _looks_like_datetime(s: str) -> bool:
    return len(s) >= 16 and s[4] == "-" and s[7] == "-" and s[10] in "T "


# --------------------------------------------------------------------------------------------
# Unknown keys: walk the raw data against the dataclasses
# --------------------------------------------------------------------------------------------
def _unknown_keys(raw: Any, tp: Any, where: str, label: str) -> list[str]:
    """Every unknown key of ``raw`` against the dataclass ``tp``, as problems; the keys are
    set aside (removed from ``raw``) so that the rest is validated too and one run lists
    every problem of a file."""
    problems: list[str] = []
    _walk(raw, tp, where, problems)
    return [f"{label}: {p}" for p in problems]


def _raise_with(unknown: list[str], problems: list[str]) -> None:
    if unknown or problems:
        raise ConfigError(unknown + problems)


def _walk(raw: Any, tp: Any, where: str, problems: list[str]) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None) and _could_be(raw, arg):
                _walk(raw, arg, where, problems)
                return
        return
    if tp is time and isinstance(raw, int | float) and not isinstance(raw, bool):
        # YAML 1.1 reads an unquoted 22:00 as the sexagesimal number 1320, which pydantic
        # would take as 00:22; refuse it rather than plan a load at the wrong time.
        small = 0 <= raw < 1440  # also False for NaN and infinity (.inf in YAML)
        h, mnt = divmod(int(raw), 60) if small else (0, 0)
        hint = f" (an unquoted {h}:{mnt:02d} reads as the number {raw})" if small else ""
        problems.append(f"{where}: must be a quoted time 'HH:MM'{hint}")
        return
    if dataclasses.is_dataclass(tp) and isinstance(raw, dict):
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        for key, value in raw.items():
            path = f"{where}.{key}" if where else str(key)
            if key not in names:
                problems.append(f"{path}: unknown key; expected one of {sorted(names)}")
            else:
                _walk(value, hints[key], path, problems)
        for key in [k for k in raw if k not in names]:
            del raw[key]
    elif origin in (tuple, list) and isinstance(raw, list):
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        for i, item in enumerate(raw):
            _walk(item, item_tp, f"{where}[{i}]", problems)
    elif origin is dict and isinstance(raw, dict):
        _, val_tp = typing.get_args(tp)
        for key, value in raw.items():
            _walk(value, val_tp, f"{where}.{key}", problems)


def _could_be(raw: Any, tp: Any) -> bool:
    if dataclasses.is_dataclass(tp):
        return isinstance(raw, dict)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return isinstance(raw, list)
    if origin is dict:
        return isinstance(raw, dict)
    return True


def _format_pydantic(label: str, err: Any) -> str:
    path = ""
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    msg = err["msg"]
    if err["type"] == "missing":
        return f"{label}: {path}: required field is missing"
    return f"{label}: {path}: {msg[0].lower() + msg[1:]}, got {err.get('input')!r}"


# --------------------------------------------------------------------------------------------
# Semantic checks
# --------------------------------------------------------------------------------------------
def _semantic_problems(site: m.Site) -> Iterable[str]:
    buses = set(site.bus_names())
    if len(buses) != len(site.buses):
        yield "buses: bus names must be unique"
    if site.connection.bus not in buses:
        yield f"connection.bus: unknown bus {site.connection.bus!r}; buses are {sorted(buses)}"
    yield from positive("connection.transformer_kva", site.connection.transformer_kva)
    yield from nonneg("connection.import_max_kw", site.connection.import_max_kw)
    yield from nonneg("connection.export_max_kw", site.connection.export_max_kw)
    yield from in_range("connection.power_factor_min", site.connection.power_factor_min, 0, 1, True)
    yield from _asset_problems(site.assets, buses)
    yield from tariff_problems(site.tariff, "tariff.")
    yield from _energy_series_problems(site.tariff)
    yield from park_calendar_problems(site.calendar, "calendar.")
    yield from _carbon_problems(site.carbon)
    yield from _network_problems(site.network, buses)
    yield from _session_problems(site)
    yield from _dr_problems(site)
    for f in ("subsidy_cny_per_kwh", "subsidy_cny_per_kw", "nonperformance_cny_per_kwh"):
        yield from nonneg(f"dr_defaults.{f}", getattr(site.dr_defaults, f))
    yield from in_range("dr_policy.margin_frac", site.dr_policy.margin_frac, 0, 1)
    d = site.dispatch
    if d.horizon_steps < 1:
        yield f"dispatch.horizon_steps: must be >= 1, got {d.horizon_steps}"
    if d.step_minutes < 1 or 1440 % d.step_minutes:
        yield f"dispatch.step_minutes: must divide a day (e.g. 5, 15, 30, 60), got {d.step_minutes}"
    yield from in_range("dispatch.risk_frac", d.risk_frac, 0, m.RISK_FRAC_MAX)
    yield from in_range("dispatch.margin_window_days", d.margin_window_days, 1, 60)
    yield from in_range("dispatch.peak_spread_cny_per_kw", d.peak_spread_cny_per_kw, 0, 100)
    yield from in_range("dispatch.import_ramp_cny_per_kw", d.import_ramp_cny_per_kw, 0, 100)
    yield from _penalty_problems(site.penalties)
    yield from field_problems(site)
    yield from limit_group_problems(site)
    yield from metering_problems(site)


def _penalty_problems(pen: m.Penalties) -> Iterable[str]:
    """Every weight > 0; the priority factors keep first <= normal <= last (the global
    order against DR and the limits is the operator's: see :class:`vpp.park.model.Penalties`)."""
    factors = ("give_way_first_factor", "give_way_last_factor")
    for f in dataclasses.fields(pen):
        if f.name not in factors:
            yield from positive(f"penalties.{f.name}", getattr(pen, f.name))
    yield from in_range("penalties.give_way_first_factor", pen.give_way_first_factor, 0, 1, True)
    if pen.give_way_last_factor < 1:
        yield f"penalties.give_way_last_factor: must be >= 1, got {pen.give_way_last_factor:g}"


def _battery_problems(b: m.Battery, p: str) -> Iterable[str]:
    yield from positive(f"{p}.e_kwh", b.e_kwh)
    yield from nonneg(f"{p}.p_charge_max_kw", b.p_charge_max_kw)
    yield from nonneg(f"{p}.p_discharge_max_kw", b.p_discharge_max_kw)
    yield from in_range(f"{p}.eta_charge", b.eta_charge, 0, 1, True)
    yield from in_range(f"{p}.eta_discharge", b.eta_discharge, 0, 1, True)
    yield from in_range(f"{p}.soc_min_frac", b.soc_min_frac, 0, 1)
    yield from in_range(f"{p}.soc_max_frac", b.soc_max_frac, 0, 1)
    yield from in_range(f"{p}.soc_init_frac", b.soc_init_frac, 0, 1)
    if b.soc_min_frac > b.soc_max_frac:
        yield (
            f"{p}.soc_min_frac: must not exceed soc_max_frac ({b.soc_max_frac:g}), "
            f"got {b.soc_min_frac:g}"
        )
    yield from nonneg(f"{p}.degradation_cny_per_kwh", b.degradation_cny_per_kwh)
    yield from battery_detail.detail_problems(b, p)


def _pv_problems(a: m.PvArray, p: str) -> Iterable[str]:
    yield from positive(f"{p}.kwp", a.kwp)
    yield from positive(f"{p}.inverter_kw", a.inverter_kw)
    yield from in_range(f"{p}.tilt_deg", a.tilt_deg, 0, 90)
    yield from in_range(f"{p}.azimuth_deg", a.azimuth_deg, 0, 360)
    yield from in_range(f"{p}.losses_frac", a.losses_frac, 0, 1)
    yield from _profile_problems(a.weather, f"{p}.weather", "pv")


def _profile_problems(source: str, path: str, kind: str) -> Iterable[str]:
    from vpp.park import profiles

    try:
        profiles._parse(source, kind)
    except profiles.ProfileError as exc:
        yield f"{path}: {exc}"


def _curtailable_problems(c: m.CurtailableLoad, p: str) -> Iterable[str]:
    yield from in_range(f"{p}.curtail_max_frac", c.curtail_max_frac, 0, 1)
    yield from nonneg(f"{p}.cost_cny_per_kwh", c.cost_cny_per_kwh)
    yield from nonneg(f"{p}.baseline.scale", c.baseline.scale)
    yield from _profile_problems(c.baseline.source, f"{p}.baseline.source", "load")


def _asset_problems(a: m.Assets, buses: set[str]) -> Iterable[str]:
    seen: dict[str, str] = {}
    groups: list[tuple[str, tuple[Any, ...]]] = [
        ("pv_arrays", a.pv_arrays),
        ("batteries", a.batteries),
        ("ev_chargers", a.ev_chargers),
        ("shiftable_loads", a.shiftable_loads),
        ("curtailable_loads", a.curtailable_loads),
        ("base_loads", a.base_loads),
        ("pedf_buildings", a.pedf_buildings),
    ]
    for group, items in groups:
        for i, asset in enumerate(items):
            p = f"assets.{group}[{i}]"
            if asset.name in seen:
                yield f"{p}.name: {asset.name!r} is already used by {seen[asset.name]}"
            seen[asset.name] = p
            if asset.bus not in buses:
                yield f"{p}.bus: unknown bus {asset.bus!r} (asset {asset.name})"
    for i, pv in enumerate(a.pv_arrays):
        yield from _pv_problems(pv, f"assets.pv_arrays[{i}]")
    for i, b in enumerate(a.batteries):
        yield from _battery_problems(b, f"assets.batteries[{i}]")
    for i, c in enumerate(a.ev_chargers):
        p = f"assets.ev_chargers[{i}]"
        yield from positive(f"{p}.p_max_kw", c.p_max_kw)
        yield from in_range(f"{p}.p_min_kw", c.p_min_kw, 0, c.p_max_kw)
        yield from in_range(f"{p}.eta", c.eta, 0, 1, True)
    for i, s in enumerate(a.shiftable_loads):
        p = f"assets.shiftable_loads[{i}]"
        yield from nonneg(f"{p}.e_kwh", s.e_kwh)
        yield from positive(f"{p}.p_max_kw", s.p_max_kw)
        yield from in_range(f"{p}.p_min_kw", s.p_min_kw, 0, s.p_max_kw)
        if s.min_run_steps < 1:
            yield f"{p}.min_run_steps: must be >= 1, got {s.min_run_steps}"
    for i, c in enumerate(a.curtailable_loads):
        yield from _curtailable_problems(c, f"assets.curtailable_loads[{i}]")
    for i, bl in enumerate(a.base_loads):
        p = f"assets.base_loads[{i}]"
        yield from nonneg(f"{p}.profile.scale", bl.profile.scale)
        yield from _profile_problems(bl.profile.source, f"{p}.profile.source", "load")
    for i, pe in enumerate(a.pedf_buildings):
        p = f"assets.pedf_buildings[{i}]"
        yield from positive(f"{p}.converter_kw", pe.converter_kw)
        yield from in_range(f"{p}.converter_eta", pe.converter_eta, 0, 1, True)
        yield from _pv_problems(pe.pv, f"{p}.pv")
        yield from _battery_problems(pe.battery, f"{p}.battery")
        yield from nonneg(f"{p}.base_load.profile.scale", pe.base_load.profile.scale)
        yield from _profile_problems(
            pe.base_load.profile.source, f"{p}.base_load.profile.source", "load"
        )
        if pe.flexible_load is not None:
            yield from _curtailable_problems(pe.flexible_load, f"{p}.flexible_load")
        yield from _pedf_member_problems(pe, p, seen)


def _pedf_member_problems(pe: m.PedfBuilding, p: str, seen: dict[str, str]) -> Iterable[str]:
    """Members sit behind the building's converter (its bus) and have names of their own."""
    for role in ("pv", "battery", "base_load", "flexible_load"):
        member = getattr(pe, role)
        if member is None:
            continue
        if member.name in seen:
            yield f"{p}.{role}.name: {member.name!r} is already used by {seen[member.name]}"
        seen[member.name] = f"{p}.{role}"
        if member.bus != pe.bus:
            yield (
                f"{p}.{role}.bus: must be the building's bus {pe.bus!r} (behind its "
                f"converter), got {member.bus!r}"
            )


def _carbon_problems(c: m.Carbon) -> Iterable[str]:
    yield from in_range(
        "carbon.emission_factor.ef_kg_per_kwh", c.emission_factor.ef_kg_per_kwh, 0, 2
    )
    h = c.emission_factor.hourly_ef_kg_per_kwh
    if h is not None and len(h) != 24:
        yield f"carbon.emission_factor.hourly_ef_kg_per_kwh: expected 24 values, got {len(h)}"
    yield from nonneg("carbon.carbon_price_cny_per_t", c.carbon_price_cny_per_t)
    s = c.emission_factor.series
    if s is not None and s.step_minutes not in STEPS_MINUTES:
        yield (
            f"carbon.emission_factor.series.step_minutes: expected one of "
            f"{list(STEPS_MINUTES)}, got {s.step_minutes}"
        )


def _energy_series_problems(t: m.Tariff) -> Iterable[str]:
    s = t.energy_series
    if s is None:
        return
    p = "tariff.energy_series."
    yield from nonneg(p + "network_cny_per_kwh", s.network_cny_per_kwh)
    yield from nonneg(p + "fund_cny_per_kwh", s.fund_cny_per_kwh)
    if s.step_minutes not in STEPS_MINUTES:
        yield f"{p}step_minutes: expected one of {list(STEPS_MINUTES)}, got {s.step_minutes}"


def _network_problems(n: m.Network, buses: set[str]) -> Iterable[str]:
    for i, t in enumerate(n.transformers):
        for end in ("hv_bus", "lv_bus"):
            if getattr(t, end) not in buses:
                yield f"network.transformers[{i}].{end}: unknown bus {getattr(t, end)!r} ({t.name})"
        yield from positive(f"network.transformers[{i}].sn_kva", t.sn_kva)
    for i, ln in enumerate(n.lines):
        for end in ("from_bus", "to_bus"):
            if getattr(ln, end) not in buses:
                yield f"network.lines[{i}].{end}: unknown bus {getattr(ln, end)!r} ({ln.name})"
        yield from positive(f"network.lines[{i}].length_km", ln.length_km)
    if n.v_min_pu >= n.v_max_pu:
        yield f"network.v_min_pu: must be below v_max_pu ({n.v_max_pu:g}), got {n.v_min_pu:g}"


def _session_problems(site: m.Site) -> Iterable[str]:
    chargers = {c.name for c in site.assets.ev_chargers}
    for i, s in enumerate(site.ev_sessions):
        p = f"ev_sessions[{i}]"
        if s.charger not in chargers:
            yield f"{p}.charger: unknown charger {s.charger!r} (session {s.session_id})"
        if s.departure <= s.arrival:
            yield f"{p}.departure: must be after arrival ({s.arrival.isoformat()})"
        yield from nonneg(f"{p}.e_needed_kwh", s.e_needed_kwh)
    for i, f in enumerate(site.ev_fleets):
        p = f"ev_fleets[{i}]"
        for c in f.chargers:
            if c not in chargers:
                yield f"{p}.chargers: unknown charger {c!r} (fleet {f.name})"
        yield from in_range(f"{p}.plug_in_prob", f.plug_in_prob, 0, 1)
        yield from in_range(f"{p}.arrival_mean_h", f.arrival_mean_h, 0, 24)
        yield from positive(f"{p}.dwell_mean_h", f.dwell_mean_h)
        yield from nonneg(f"{p}.e_mean_kwh", f.e_mean_kwh)


# --------------------------------------------------------------------------------------------
# DR events: the park file's and a scenario file's, through one path (vpp.park.dr_checks)
# --------------------------------------------------------------------------------------------
def _dr_problems(site: m.Site) -> Iterable[str]:
    park = dr_checks.DrPark.of(site)
    yield from (str(x) for x in dr_checks.events_problems(site.dr_events, park))


def load_dr_file(
    path: str | Path, tz: str = m.DEFAULT_TZ, site: m.Site | None = None
) -> tuple[m.DemandResponseEvent, ...]:
    """DR events of a scenario file (``dr_events: [...]``), checked as the park file's are.

    Parameters
    ----------
    path : the scenario YAML.
    tz : the zone of times without an offset (the park's, ``site.location.tz``).
    site : the park the events are for: kW are checked against its connection, windows
        against its dispatch step, and event ids against its own ``dr_events``; None checks
        what does not need a park.

    Raises
    ------
    ConfigError
        Every problem, as ``FILE: dr_events[i].field: message, got value``.
    """
    path = Path(path)
    label = _label(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("dr_events"), list):
        raise ConfigError([f"{label}: expected a mapping with a 'dr_events' list"])
    _check_keys(raw, {"dr_events"}, "", label)
    items = raw["dr_events"]
    try:
        zone = ZoneInfo(site.location.tz if site is not None else tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([f"{label}: unknown time zone {tz!r}"]) from None
    _localise({"dr_events": items}, zone)
    unknown = _unknown_keys(items, tuple[m.DemandResponseEvent, ...], "dr_events", label)
    try:
        events = TypeAdapter(tuple[m.DemandResponseEvent, ...]).validate_python(items)
    except ValidationError as exc:
        _raise_with(
            unknown,
            [_format_pydantic(label, {**e, "loc": ("dr_events", *e["loc"])}) for e in exc.errors()],
        )
    park = dr_checks.DrPark.of(site) if site is not None else None
    taken = {}
    if site is not None:
        where = Path(site.source_file).name or "the park file"
        taken = {e.event_id: f"{where} dr_events[{i}]" for i, e in enumerate(site.dr_events)}
    problems = dr_checks.events_problems(events, park, taken=taken)
    _raise_with(unknown, [f"{label}: {x}" for x in problems])
    return events
