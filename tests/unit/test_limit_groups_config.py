"""Limit groups, phases and pilot steps in the park file (vpp.park.limit_groups, config)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from vpp.park import limit_groups
from vpp.park.config import ConfigError, site_from_dict
from vpp.park.model import charger_steps_kw, kw_per_a

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"
LABEL = "parks/demo.yaml"


def _demo() -> dict:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    doc["assets"]["ev_chargers"] = [
        {
            "name": f"POD-{i}",
            "bus": "B01-LV",
            "p_max_kw": 7.4,
            "phase": ["AB", "BC", "CA"][i % 3],
            "voltage_v": 400,
            "pilot": {"min_a": 6, "max_a": 32, "step_a": 1},
        }
        for i in range(8)
    ]
    doc["assets"]["ev_chargers"].append(
        {"name": "WALL-1", "bus": "B01-LV", "p_max_kw": 22, "pilot": {"values_a": [8, 16, 32]}}
    )
    doc["limit_groups"] = [
        {
            "name": "pod",
            "assets": [f"POD-{i}" for i in range(8)],
            "current_max_a": 80,
            "voltage_v": 400,
            "phase_current_max_a": 80,
        },
        {"name": "garage", "groups": ["pod"], "assets": ["WALL-1"], "import_max_kw": 60},
        {
            "name": "b01",
            "buses": ["B01-LV"],
            "groups": ["garage"],
            "import_max_kw": 900,
            "export_max_kw": 300,
            "element": "T-B01",
        },
    ]
    return doc


def _load(doc: dict):
    return site_from_dict(copy.deepcopy(doc), ROOT / "configs" / "parks" / "demo.yaml")


def _problems(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        _load(doc)
    return exc.value.problems


def test_nested_groups_with_phases_and_pilot_steps_parse():
    site = _load(_demo())
    g = {x.name: x for x in site.limit_groups}
    assert g["pod"].import_limit_kw() == pytest.approx(math.sqrt(3) * 400 * 80 / 1000)  # 55.4
    assert g["b01"].element == "T-B01"
    assert limit_groups.members(site, "garage") == tuple(
        sorted([f"POD-{i}" for i in range(8)] + ["WALL-1"])
    )
    # A bus stands for every asset on it; nested groups add nothing twice.
    on_bus = {a for a, b in limit_groups.top_assets(site).items() if b == "B01-LV"}
    assert set(limit_groups.members(site, "b01")) == on_bus
    pod = next(c for c in site.assets.ev_chargers if c.name == "POD-1")
    assert pod.phase == "BC"
    steps = charger_steps_kw(pod)
    # 6-32 A on a 400 V line pair: 2.4 .. 12.8 kW, capped by p_max_kw 7.4 (18 A = 7.2 kW).
    assert steps[0] == 0.0 and steps[1] == pytest.approx(2.4) and steps[-1] == pytest.approx(7.2)
    assert len(steps) == 1 + 13
    wall = next(c for c in site.assets.ev_chargers if c.name == "WALL-1")
    k = kw_per_a("three_phase", 400)
    assert charger_steps_kw(wall) == pytest.approx((0.0, 8 * k, 16 * k))  # 32 A > 22 kW


def test_demo_without_groups_is_unchanged():
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    site = _load(doc)
    assert site.limit_groups == ()
    assert all(c.pilot is None and c.phase == "three_phase" for c in site.assets.ev_chargers)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["limit_groups"][0]["assets"].append("NOPE"),
            "limit_groups[0].assets[8]: unknown asset 'NOPE'",
        ),
        (
            lambda d: d["limit_groups"][2]["buses"].append("B99"),
            "limit_groups[2].buses[1]: unknown bus 'B99'",
        ),
        (
            lambda d: d["limit_groups"][1]["groups"].append("pod-9"),
            "limit_groups[1].groups[1]: unknown group 'pod-9'",
        ),
        (
            lambda d: d["limit_groups"][0].update(groups=["b01"]),
            "limit_groups[0].groups: cycle in nesting: pod -> b01 -> garage -> pod",
        ),
        (
            lambda d: d["limit_groups"][1].update(name="pod"),
            "limit_groups[1].name: 'pod' is already used by limit_groups[0]",
        ),
        (
            lambda d: d["limit_groups"][0].pop("voltage_v"),
            "limit_groups[0].voltage_v: required with current_max_a or phase_current_max_a",
        ),
        (
            lambda d: d["limit_groups"][1].pop("import_max_kw"),
            "limit_groups[1]: group 'garage' has no limit",
        ),
        (
            lambda d: d["limit_groups"][1].update(import_max_kw=-5),
            "limit_groups[1].import_max_kw: must be >= 0, got -5",
        ),
        (
            lambda d: d["limit_groups"][0].update(power_factor=1.2),
            "limit_groups[0].power_factor: must be in (0, 1], got 1.2",
        ),
        (lambda d: d["limit_groups"][0].update(amps=3), "limit_groups[0].amps: unknown key"),
        (
            lambda d: d["assets"]["ev_chargers"][0].update(phase="D"),
            "assets.ev_chargers[0].phase: must be one of",
        ),
        (
            lambda d: d["assets"]["ev_chargers"][0]["pilot"].update(min_a=40),
            "assets.ev_chargers[0].pilot.max_a: must be >= min_a (40), got 32",
        ),
        (
            lambda d: d["assets"]["ev_chargers"][0].update(p_min_kw=7.3),
            "assets.ev_chargers[0].pilot: no pilot current gives a power in [p_min_kw, p_max_kw]",
        ),
        # A phase on an asset that is three-phase only: the key does not exist there.
        (
            lambda d: d["assets"]["batteries"][0].update(phase="A"),
            "assets.batteries[0].phase: unknown key",
        ),
    ],
)
def test_bad_groups_and_phases_name_the_field(edit, expected):
    doc = _demo()
    edit(doc)
    problems = _problems(doc)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(LABEL) for p in problems)


def test_child_above_its_parent_is_allowed():
    doc = _demo()
    doc["limit_groups"][1]["import_max_kw"] = 2000  # above b01's 900 kW: the parent binds
    assert _load(doc).limit_groups[1].import_max_kw == 2000
