"""Sweep files: axes combined as written, every problem named by file and field path, every
case resolved and keyed by what decides its figures (vpp.sweep.spec)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vpp.park.config import ConfigError
from vpp.sim.closed_loop import CONTROLLER_NAMES
from vpp.sweep.spec import base_from_config, base_from_scenario, load_spec, scaled_site

ROOT = Path(__file__).resolve().parents[2]
PARK = ROOT / "configs" / "parks" / "manufacturing.yaml"


@pytest.fixture(scope="module")
def base():
    return base_from_config(PARK)


def _spec(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweeps" / "s.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def _problems(path: Path, base) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_spec(path, base)
    return exc.value.problems


HEAD = "days: 0.25\nstart: 2026-07-20\n"


def test_product_with_references(tmp_path, base):
    p = _spec(tmp_path, HEAD + "axes:\n  controller: [mpc, rule]\n  seed: [1, 2, 3]\n"
              "  battery_scale: [1, 2]\n")  # fmt: skip
    sw = load_spec(p, base)
    cases = [r.case for r in sw.cases]
    # 2 x 3 x 2 controlled cases, and one uncontrolled reference per seed and battery size.
    assert len(sw) == 12 + 6
    refs = [c for c in cases if c.controller == "uncontrolled"]
    assert {(c.seed, c.battery_scale) for c in refs} == {(s, b) for s in (1, 2, 3) for b in (1, 2)}
    keys = {r.key: r for r in sw.cases}
    for r in sw.cases:
        if r.case.controller == "uncontrolled":
            assert r.reference_key is None
        else:
            ref = keys[r.reference_key].case
            assert (ref.controller, ref.seed, ref.battery_scale) == (
                "uncontrolled", r.case.seed, r.case.battery_scale
            )  # fmt: skip
    assert len(keys) == len(sw)  # one key per case


def test_zip_and_listed_cases(tmp_path, base):
    p = _spec(tmp_path, HEAD + "combine: zip\nbaseline: false\naxes:\n  seed: [1, 2, 3]\n"
              "  pv_scale: [1, 1.5, 2]\ncases:\n- {controller: rule, seed: 9}\n")  # fmt: skip
    sw = load_spec(p, base)
    got = [(r.case.controller, r.case.seed, r.case.pv_scale) for r in sw.cases]
    assert got == [("mpc", 1, 1.0), ("mpc", 2, 1.5), ("mpc", 3, 2.0), ("rule", 9, 1.0)]
    kwp = sum(a.kwp for a in base.site.assets.pv_arrays)
    assert sum(a.kwp for a in sw.cases[2].site.assets.pv_arrays) == pytest.approx(2 * kwp)


def test_bad_axis_values_name_their_field_path(tmp_path, base):
    tariffs = "[../../tariffs/a.yaml, ../../tariffs/b.yaml, nope.yaml]"
    (tmp_path / "tariffs").mkdir()
    for n in ("a", "b"):
        shutil.copy(
            ROOT / "configs" / "tariffs" / "guangdong_2024.yaml", tmp_path / "tariffs" / f"{n}.yaml"
        )
    p = _spec(tmp_path, HEAD + f"axes:\n  tariff: {tariffs.replace('../../', '../')}\n"
              "  controller: [mpc, best]\n  battery_scale: [0, 2]\n  colour: [red]\n"
              "cases:\n- {seed: -1, forecast: psychic}\n")  # fmt: skip
    probs = _problems(p, base)
    assert any(
        x.startswith("sweeps/s.yaml: axes.tariff[2]: no such file 'nope.yaml'") for x in probs
    )
    want = f"axes.controller[1]: must be one of {list(CONTROLLER_NAMES)}, got 'best'"
    assert f"sweeps/s.yaml: {want}" in probs
    assert "sweeps/s.yaml: axes.battery_scale[0]: must be in (0, 10], got 0" in probs
    assert any(x.startswith("sweeps/s.yaml: axes.colour: unknown axis") for x in probs)
    assert any(x.startswith("sweeps/s.yaml: cases[0].seed: expected a whole number") for x in probs)
    assert any(x.startswith("sweeps/s.yaml: cases[0].forecast: must be one of") for x in probs)


def test_zip_lengths_and_top_level_keys(tmp_path, base):
    p = _spec(tmp_path, "start: 2026-07-20\ncombine: zip\nspeed: 3\naxes:\n  seed: [1, 2]\n"
              "  risk_frac: [0, 1, 2]\n")  # fmt: skip
    probs = _problems(p, base)
    assert any("axes: combine: zip needs axes of one length" in x for x in probs)
    assert any(x.startswith("sweeps/s.yaml: speed: unknown key") for x in probs)
    assert any(x.startswith("sweeps/s.yaml: days: required") for x in probs)


def test_every_case_checked_against_its_days_before_running(tmp_path, base):
    # The Guangdong tariff is valid from 2024-01-01: a case in 2023 cannot be priced.
    p = _spec(tmp_path, "days: 0.25\naxes:\n  start: [2026-07-20, 2023-06-01]\n")
    probs = _problems(p, base)
    assert len(probs) == 2  # the mpc case of 2023 and its uncontrolled reference
    assert probs[0].startswith("sweeps/s.yaml: case 2 (controller=mpc, seed=0, start=2023-06-01")
    assert "start, days:" in probs[0] and "outside it" in probs[0]


def test_dr_file_checked_against_the_park_variant(tmp_path, base):
    bad = tmp_path / "dr_bad.yaml"
    bad.write_text("dr_events:\n- {event_id: X}\n", encoding="utf-8")
    p = _spec(tmp_path, HEAD + "axes:\n  dr: [null, ../dr_bad.yaml]\n")
    probs = _problems(p, base)
    # The mpc case and its reference; the cases without the file would run.
    assert {x.split(" (")[0] for x in probs} == {"sweeps/s.yaml: case 2", "sweeps/s.yaml: case 4"}
    for x in probs:
        assert "dr=dr_bad" in x and "dr (dr_bad.yaml): " in x
    assert any(
        "dr_bad.yaml: dr_events[0].requested_kw: required field is missing" in x for x in probs
    )


def test_keys_follow_what_decides_the_figures(tmp_path, base):
    text = HEAD + "axes:\n  seed: [1, 2]\n"
    p = _spec(tmp_path, text)
    a = [r.key for r in load_spec(p, base).cases]
    assert a == [r.key for r in load_spec(p, base).cases]  # stable across loads
    assert len(set(a)) == len(a)
    # The same park's content under another name: same content hash, same site but its path.
    park = tmp_path / "parks" / "m.yaml"
    park.parent.mkdir()
    for d in ("tariffs", "carbon"):
        (tmp_path / d).symlink_to(ROOT / "configs" / d)
    text_park = PARK.read_text(encoding="utf-8")
    park.write_text(text_park, encoding="utf-8")
    text_park2 = text_park.replace("\n", "\n# a comment\n", 1)
    (tmp_path / "parks" / "m2.yaml").write_text(text_park2, encoding="utf-8")
    k1 = [r.key for r in load_spec(p, base_from_config(park)).cases]
    k2 = [r.key for r in load_spec(p, base_from_config(tmp_path / "parks" / "m2.yaml")).cases]
    assert set(k1).isdisjoint(k2)  # the park file's content is in the key
    p2 = _spec(tmp_path, text.replace("days: 0.25", "days: 0.5"))
    assert set(a).isdisjoint(r.key for r in load_spec(p2, base).cases)


def test_scaled_site_scales_energy_and_power():
    site = base_from_config(ROOT / "configs" / "parks" / "demo.yaml").site
    s2 = scaled_site(site, 2.0, 0.5)
    for b0, b1 in zip(site.assets.batteries, s2.assets.batteries, strict=True):
        assert b1.e_kwh == pytest.approx(2 * b0.e_kwh)
        assert b1.p_discharge_max_kw == pytest.approx(2 * b0.p_discharge_max_kw)
        assert b1.soc_min_frac == b0.soc_min_frac
    for p0, p1 in zip(site.assets.pedf_buildings, s2.assets.pedf_buildings, strict=True):
        assert p1.battery.e_kwh == pytest.approx(2 * p0.battery.e_kwh)
        assert p1.pv.kwp == pytest.approx(0.5 * p0.pv.kwp)
    assert scaled_site(site, 1.0, 1.0) is site


def test_a_scenario_as_base_gives_its_days_dr_and_truth(tmp_path):
    base = base_from_scenario(ROOT / "configs" / "scenarios" / "manufacturing_dr_week.yaml")
    p = _spec(tmp_path, "baseline: false\naxes:\n  load_noise_frac: [0.2]\n  dr: [null]\n"
              "cases:\n- {seed: 3}\n")  # fmt: skip
    sw = load_spec(p, base)
    noisy, listed = sw.cases
    assert noisy.days == base.days and noisy.start.date() == base.start
    assert noisy.options.load_noise_frac == 0.2
    assert noisy.options.load_noise_rho == base.options.load_noise_rho  # the rest the scenario's
    assert len(noisy.events) == len(base.site.dr_events)  # dr: null drops the scenario's file
    assert len(listed.events) > len(base.site.dr_events)  # left out: the scenario's DR calls
    assert listed.options == base.options


def test_example_sweeps_load(base):
    sw = load_spec(ROOT / "configs" / "sweeps" / "example.yaml", base)
    assert len(sw) == 6
    sc = base_from_scenario(ROOT / "configs" / "scenarios" / "manufacturing_dr_week.yaml")
    sw = load_spec(ROOT / "configs" / "sweeps" / "manufacturing_dr.yaml", sc)
    assert len(sw) == 2 * 5 * 3 * 2 * 2 + 5 * 3 * 2 * 2  # and one reference per variant
