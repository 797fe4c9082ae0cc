"""The YAML loaders under hostile edits: any value at any place of the demo park, a tariff
or a DR scenario file gives a Site (or events) or a ConfigError naming the file, never
another exception (hypothesis)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp.park.config import ConfigError, load_dr_file, load_site, load_tariff

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "configs/parks/demo.yaml").read_text(encoding="utf-8"))
TARIFF = yaml.safe_load((ROOT / "configs/tariffs/zhejiang_2026.yaml").read_text(encoding="utf-8"))
SCENARIO = yaml.safe_load(
    (ROOT / "configs/scenarios/demo_dr_july.yaml").read_text(encoding="utf-8")
)

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["22:00", "2026-07-15T14:00:00", "9999-12-31T00:00:00", "simbench:NOPE"]),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(node, prefix=()):
    """Every place of a parsed YAML document (mapping keys and list items)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):  # the first items stand for the rest
            yield from _paths(v, (*prefix, i))


def _set(doc, path, value):
    out = copy.deepcopy(doc)
    if not path:
        return value
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _write(tmp: Path, name: str, doc) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _tree(tmp: Path) -> Path:
    parks = tmp / "parks"
    parks.mkdir(exist_ok=True)
    for d in ("tariffs", "carbon"):
        link = tmp / d
        if not link.exists():
            link.symlink_to(ROOT / "configs" / d)
    return parks


PARK_PATHS = list(_paths(DEMO))
TARIFF_PATHS = list(_paths(TARIFF))
SCENARIO_PATHS = list(_paths(SCENARIO))
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _refused_or_loaded(fn, path: Path) -> None:
    try:
        fn(path)
    except ConfigError as exc:
        assert exc.problems and all(path.name in p for p in exc.problems), exc.problems


@FUZZ
@given(where=st.sampled_from(PARK_PATHS), value=VALUES)
def test_park_file(tmp_path, where, value):
    parks = _tree(tmp_path)
    doc = _set(DEMO, where, value)
    if isinstance(value, float) and not math.isfinite(value) and not where:
        doc = {"site": value}
    _refused_or_loaded(load_site, _write(parks, "fuzz.yaml", doc))


@FUZZ
@given(where=st.sampled_from(TARIFF_PATHS), value=VALUES)
def test_tariff_file(tmp_path, where, value):
    _refused_or_loaded(load_tariff, _write(tmp_path, "tariff.yaml", _set(TARIFF, where, value)))


@FUZZ
@given(where=st.sampled_from(SCENARIO_PATHS), value=VALUES)
def test_dr_scenario_file(tmp_path, where, value):
    path = _write(tmp_path, "dr.yaml", _set(SCENARIO, where, value))
    _refused_or_loaded(load_dr_file, path)
