"""The park file's JSON Schema (``vpp.park.schema``) against the validator that reads the
file (``vpp.park.config.load_site``), so the two cannot drift:

- differential: for every bound of ``vpp.park.schema.BOUNDS`` and every place its object sits
  in the demo park, the demo written with the field just outside the bound is refused with an
  error naming that field, and written just inside it is accepted;
- every shipped park and tariff validates against the schema (``jsonschema_rs`` when
  installed, and a small validator of our own);
- ``docs/park.schema.json``, ``docs/tariff.schema.json`` and ``docs/configuration.md`` are what
  the commands generate today.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpp.commands.config import reference_text, schema_text
from vpp.park import config, schema
from vpp.park.config import ConfigError, load_site
from vpp.park.model import Penalties

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"
LABEL = "parks/park.yaml"
SCHEMA = schema.park_schema()
CHARGER_FIELDS = ("bus", "p_max_kw", "p_min_kw", "v2g", "eta")


def _json(x: Any) -> Any:
    """A parsed YAML document as JSON sees it: dates and times as ISO strings."""
    if isinstance(x, dict):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json(v) for v in x]
    if isinstance(x, (dt.date, dt.datetime, dt.time)):
        return x.isoformat()
    return x


# --------------------------------------------------------------------------------------------
# The demo park, completed with one of each optional object
# --------------------------------------------------------------------------------------------
def _demo() -> dict[str, Any]:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    doc["assets"]["ev_chargers"] = [
        {"name": "X-EV-1", "bus": "B01-LV", "p_max_kw": 22},
        {"name": "X-EV-2", "bus": "B01-LV", "p_max_kw": 22, "pilot": {"values_a": [8, 16]}},
    ]
    doc["limit_groups"] = [
        {
            "name": "X-pod",
            "assets": ["X-EV-1"],
            "import_max_kw": 20,
            "export_max_kw": 5,
            "current_max_a": 32,
            "phase_current_max_a": 32,
            "voltage_v": 400,
            "power_factor": 0.95,
        }
    ]
    doc["ev_fleets"] = [{"name": "X-fleet", "chargers": ["X-EV-1"]}]
    doc["ev_sessions"] = [
        {
            "session_id": "S1",
            "charger": "X-EV-1",
            "arrival": "2026-07-15T08:00:00",
            "departure": "2026-07-15T17:00:00",
            "e_needed_kwh": 20,
        }
    ]
    doc["dr_events"] = [
        {
            "event_id": "DR-1",
            "direction": "peak_shaving",
            "windows": [{"start": "2026-07-15T14:00:00", "end": "2026-07-15T16:00:00"}],
            "requested_kw": 500,
            "cleared_kw": 500,
            "subsidy_cny_per_kwh": 4.0,
            "subsidy_cny_per_kw": 1.0,
            "nonperformance_cny_per_kwh": 1.0,
            "effective_band_frac": [0.8, 1.2],
        }
    ]
    doc["dr_policy"] = {"auto_confirm": "when_covered", "margin_frac": 0.1}
    doc["metering"] = {
        "billing": "per_meter",
        "meters": [{"name": "X-tenant", "buses": ["B01-LV"], "value_added_10k_cny_per_year": 100}],
    }
    doc["penalties"] = {f.name: f.default for f in dataclasses.fields(Penalties)}
    # The optional battery detail (one segment: two would tie their bounds to each other).
    battery = doc["assets"]["batteries"][0]
    battery["taper"] = {"soc_start_frac": 0.8, "floor_frac": 0.2}
    battery["efficiency_segments"] = [
        {"p_max_frac": 1.0, "eta_charge": 0.96, "eta_discharge": 0.96}
    ]
    return doc


def _base_inline_tariff() -> dict[str, Any]:
    """The demo with its tariff inline and 24 hourly factors on its catalogue entry."""
    doc = _demo()
    tariff = ROOT / "configs" / "tariffs" / "zhejiang_2026.yaml"
    doc["tariff"] = yaml.safe_load(tariff.read_text(encoding="utf-8"))
    doc["carbon"]["hourly_ef_kg_per_kwh"] = [0.5] * 24
    # A spot-price series posted to the service only (no file), with its adders.
    doc["tariff"]["energy_series"] = {
        "name": "spot",
        "network_cny_per_kwh": 0.16,
        "fund_cny_per_kwh": 0.03,
    }
    return doc


def _base_inline_carbon() -> dict[str, Any]:
    """The demo with its emission factor inline."""
    doc = _demo()
    doc["carbon"] = {
        "emission_factor": {
            "ef_kg_per_kwh": 0.5366,
            "year": 2022,
            "region": "national",
            "source": "test",
            "hourly_ef_kg_per_kwh": [0.5] * 24,
            "series": {"name": "mef", "kind": "marginal"},
        },
        "carbon_price_cny_per_t": 50.0,
    }
    return doc


BASES = {"tariff-inline": _base_inline_tariff(), "carbon-inline": _base_inline_carbon()}


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    park = tmp_path / "parks" / "park.yaml"
    park.parent.mkdir(exist_ok=True)
    for data in ("tariffs", "carbon"):
        if not (tmp_path / data).exists():
            (tmp_path / data).symlink_to(ROOT / "configs" / data)
    park.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return park


def _problems(tmp_path: Path, doc: dict[str, Any]) -> list[str]:
    try:
        load_site(_write(tmp_path, doc))
    except ConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("base", sorted(BASES))
def test_completed_demo_loads(tmp_path, base):
    assert _problems(tmp_path, BASES[base]) == []


# --------------------------------------------------------------------------------------------
# Cases: every bound, at every place its object sits
# --------------------------------------------------------------------------------------------
def _occurrences() -> dict[str, list[tuple[str, str]]]:
    """Object name -> [(base, concrete path of its first instance at each pattern)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for base, doc in BASES.items():
        for path, pattern, name, _ in schema.instances(SCHEMA, _json(doc)):
            if (name, pattern) not in seen:
                seen.add((name, pattern))
                out.setdefault(name, []).append((base, path))
    return out


OCCURRENCES = _occurrences()


def _field_kind(name: str, field: str) -> str:
    prop = SCHEMA["$defs"][name]["properties"][field]
    kinds = [b.get("type") for b in prop.get("anyOf", [prop])]
    if prop.get("type") == "array":
        item = prop.get("prefixItems", [prop.get("items", {})])[0]
        kinds = [item.get("type")]
    return "integer" if "integer" in kinds else "number" if "number" in kinds else "other"


def _edges(name: str, field: str, b: schema.Bound) -> list[tuple[str, bool, Any]]:
    """``(edge, inside, value)`` for the bound; list values replace a list, a callable
    transforms the current value."""
    step = 1 if _field_kind(name, field) == "integer" else 0.01
    out: list[tuple[str, bool, Any]] = []
    if b.minimum is not None:
        out += [("below-min", False, b.minimum - step), ("at-min", True, b.minimum)]
    if b.exclusive_minimum is not None:
        lo = b.exclusive_minimum
        out += [("at-exclusive-min", False, lo), ("above-exclusive-min", True, lo + step)]
    if b.maximum is not None:
        out += [("above-max", False, b.maximum + step), ("at-max", True, b.maximum)]
    if b.divisor_of is not None:
        bad = next(k for k in range(2, b.divisor_of) if b.divisor_of % k)
        out += [("not-a-divisor", False, bad), ("a-divisor", True, 30)]
    if b.min_items is not None:
        out += [("too-few", False, ("items", b.min_items - 1))]
        out += [("fewest", True, ("items", b.min_items))]
    if b.max_items is not None:
        out += [("too-many", False, ("items", b.max_items + 1))]
    if b.min_length is not None:
        out += [("too-short", False, "x" * (b.min_length - 1))]
        out += [("shortest", True, "x" * max(b.min_length, 1))]
    if b.max_length is not None:
        out += [
            ("too-long", False, "x" * (b.max_length + 1)),
            ("longest", True, "x" * b.max_length),
        ]
    if b.pattern is not None:
        out += [("off-pattern", False, "bad id!"), ("on-pattern", True, "ok.id_1:2-3")]
    if b.one_of is not None:
        out += [("not-one-of", False, "no-such-value"), ("one-of", True, b.one_of[0])]
    return out


def _cases() -> list[Any]:
    cases = []
    for (name, field), bound in schema.BOUNDS.items():
        for base, path in OCCURRENCES.get(name, []):
            for edge, inside, value in _edges(name, field, bound):
                case_id = f"{name}.{field}@{path}:{edge}"
                args = (base, name, path, field, bound, edge, inside, value)
                cases.append(pytest.param(*args, id=case_id))
    return cases


def _parts(path: str) -> list[str | int]:
    out: list[str | int] = []
    for chunk in path.replace("]", "").split("."):
        key, *idx = chunk.split("[")
        out += [key] + [int(i) for i in idx]
    return out


def _get(doc: Any, path: str) -> Any:
    for part in _parts(path):
        doc = doc[part]
    return doc


def _set_value(obj: dict[str, Any], field: str, bound: schema.Bound, value: Any, edge: str):
    """Set ``obj[field]`` to ``value``; returns the suffix the error path gets (``.key``)."""
    current = obj.get(field)
    if isinstance(value, tuple) and value[0] == "items":
        n = value[1]
        items = list(current or [])
        obj[field] = (items * (n // max(len(items), 1) + 1))[:n]
        return ""
    if bound.each and isinstance(current, dict):
        key = next(iter(current))
        current[key] = value
        return f".{key}"
    if bound.each and isinstance(current, list):
        current[-1 if "max" in edge else 0] = value
        return ""
    if bound.each:
        pytest.fail(f"{field}: the test park has no list or mapping to set an item of")
    obj[field] = value
    return ""


def _companions(obj: dict[str, Any], name: str, field: str, value: Any) -> None:
    """Keep a value inside its bound from breaking a relation with another field."""
    if name == "Battery" and field == "soc_min_frac" and value == 1:
        obj["soc_max_frac"] = 1
    if name == "Battery" and field == "soc_max_frac" and value == 0:
        obj["soc_min_frac"] = 0
    if field == "p_max_kw" and "p_min_kw" in obj:
        obj["p_min_kw"] = 0


def _reported(doc: dict[str, Any], path: str, name: str, field: str) -> str:
    """The path the validator names: the YAML's conveniences report where they expand to."""
    group = re.match(r"assets\.ev_charger_groups\[(\d+)\]", path)
    if group and name == "EvChargerGroup" and field in CHARGER_FIELDS:
        j = int(group.group(1))
        groups = doc["assets"]["ev_charger_groups"]
        k = len(doc["assets"].get("ev_chargers") or []) + sum(g["count"] for g in groups[:j])
        return f"assets.ev_chargers[{k}].{field}"
    if group and name == "EvChargerGroupFleet":
        j = int(group.group(1))
        before = [g for g in doc["assets"]["ev_charger_groups"][:j] if g.get("fleet")]
        return f"ev_fleets[{len(doc.get('ev_fleets') or []) + len(before)}].{field}"
    if name == "CarbonFactorsRef" and field == "hourly_ef_kg_per_kwh":
        return "carbon.emission_factor.hourly_ef_kg_per_kwh"
    return f"{path}.{field}"


@pytest.mark.parametrize("base, name, path, field, bound, edge, inside, value", _cases())
def test_validator_enforces_the_schema_bound(
    tmp_path, base, name, path, field, bound, edge, inside, value
):
    doc = copy.deepcopy(BASES[base])
    obj = _get(doc, path)
    suffix = _set_value(obj, field, bound, value, edge)
    if inside:
        _companions(obj, name, field, value)
    problems = _problems(tmp_path, doc)
    expected = f"{LABEL}: {_reported(doc, path, name, field)}{suffix}:"
    if inside:
        assert problems == [], f"{field}={value!r} is inside {bound.text()} but refused"
    else:
        assert any(p.startswith(expected) for p in problems), (
            f"{field}={value!r} is outside {bound.text()}: expected an error starting "
            f"{expected!r}, got {problems}"
        )


def test_every_bound_is_exercised():
    missing = [key for key in schema.BOUNDS if key[0] not in OCCURRENCES]
    assert not missing, f"no instance in the test parks for {missing}"


def test_schema_keys_are_the_loaders():
    assert set(SCHEMA["properties"]) == config._PARK_KEYS
    group = SCHEMA["$defs"]["EvChargerGroup"]["properties"]
    assert set(group) == config._GROUP_KEYS
    for node in [SCHEMA, *SCHEMA["$defs"].values()]:
        if "properties" in node:
            assert node["additionalProperties"] is False


# --------------------------------------------------------------------------------------------
# Shipped files validate against the schema
# --------------------------------------------------------------------------------------------
def _errors(root: dict[str, Any], node: dict[str, Any], x: Any, at: str = "") -> list[str]:
    """A small draft 2020-12 validator for the keywords the schema uses."""
    if "$ref" in node:
        return _errors(root, root["$defs"][node["$ref"].rsplit("/", 1)[1]], x, at)
    if "anyOf" in node:
        branches = [_errors(root, b, x, at) for b in node["anyOf"]]
        return [] if any(not b for b in branches) else min(branches, key=len)
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = node.get("type")
    if kind in ("number", "integer"):
        ok = isinstance(x, (int, float)) and not isinstance(x, bool)
        ok = ok and (kind == "number" or float(x).is_integer())
    else:
        ok = kind is None or isinstance(x, types[kind])
    if not ok:
        return [f"{at}: expected {kind}, got {x!r}"]
    out: list[str] = []
    if "enum" in node and x not in node["enum"]:
        out.append(f"{at}: {x!r} not in {node['enum']}")
    for key, test in (
        ("minimum", lambda b: x >= b),
        ("exclusiveMinimum", lambda b: x > b),
        ("maximum", lambda b: x <= b),
        ("minItems", lambda b: len(x) >= b),
        ("maxItems", lambda b: len(x) <= b),
        ("minLength", lambda b: len(x) >= b),
        ("maxLength", lambda b: len(x) <= b),
        ("pattern", lambda b: re.search(b, x) is not None),
    ):
        if key in node and not test(node[key]):
            out.append(f"{at}: {x!r} fails {key} {node[key]!r}")
    if isinstance(x, dict):
        props = node.get("properties", {})
        out += [f"{at}.{k}: required" for k in node.get("required", []) if k not in x]
        for k, v in x.items():
            sub = props.get(k, node.get("additionalProperties", True))
            if sub is False:
                out.append(f"{at}.{k}: unknown key")
            elif isinstance(sub, dict):
                out += _errors(root, sub, v, f"{at}.{k}")
            if "propertyNames" in node:
                out += _errors(root, node["propertyNames"], k, f"{at}.{k}")
    if isinstance(x, list):
        prefix = node.get("prefixItems", [])
        for i, v in enumerate(x):
            sub = prefix[i] if i < len(prefix) else node.get("items")
            if isinstance(sub, dict):
                out += _errors(root, sub, v, f"{at}[{i}]")
    return out


def _validators(root: dict[str, Any]):
    yield "own", lambda doc: _errors(root, root, doc)
    try:
        import jsonschema_rs
    except ImportError:
        return
    v = jsonschema_rs.Draft202012Validator(root)
    yield (
        "jsonschema_rs",
        lambda doc: [f"{e.instance_path}: {e.message}" for e in v.iter_errors(doc)],
    )


PARKS = sorted((ROOT / "configs" / "parks").glob("*.yaml"))
TARIFFS = sorted((ROOT / "configs" / "tariffs").glob("*.yaml"))


@pytest.mark.parametrize("path", PARKS + TARIFFS, ids=lambda p: p.name)
def test_shipped_files_validate(path):
    root = SCHEMA if path.parent.name == "parks" else schema.tariff_schema()
    doc = _json(yaml.safe_load(path.read_text(encoding="utf-8")))
    for who, errors in _validators(root):
        assert errors(doc) == [], f"{path.name} against the schema ({who})"


@pytest.mark.parametrize(
    "mutate, what",
    [
        (lambda d: d["assets"]["batteries"][0].update(capacity=5), "unknown key"),
        (lambda d: d["assets"]["batteries"][0].update(soc_min_frac=1.4), "maximum"),
        (lambda d: d["assets"]["shiftable_loads"][0].update(window_start=1320), "string"),
        (lambda d: d["dispatch"].update(step_minutes=7), "enum"),
    ],
    ids=["unknown-key", "bound", "unquoted-time", "step"],
)
def test_schema_refuses_what_the_validator_refuses(mutate, what):
    doc = _json(yaml.safe_load(DEMO.read_text(encoding="utf-8")))
    mutate(doc)
    for who, errors in _validators(SCHEMA):
        assert errors(doc), f"{who} accepted a park with a bad {what}"


# --------------------------------------------------------------------------------------------
# The generated files in the repository are current
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, make, command",
    [
        (
            "park.schema.json",
            lambda: schema_text("park"),
            "vpp config schema --out docs/park.schema.json",
        ),
        (
            "tariff.schema.json",
            lambda: schema_text("tariff"),
            "vpp config schema --of tariff --out docs/tariff.schema.json",
        ),
        ("configuration.md", reference_text, "vpp config reference --out docs/configuration.md"),
    ],
)
def test_generated_docs_are_current(name, make, command):
    path = ROOT / "docs" / name
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    assert make() == current, f"docs/{name} is stale; regenerate it: .venv/bin/{command}"
