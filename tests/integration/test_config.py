"""Park configuration: the demo loads; every error names the file, the field path and what
was expected; unknown keys are errors."""

from pathlib import Path

import pytest
import yaml

from vpp.park.config import ConfigError, load_site

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"


def test_demo_park_is_what_the_issue_asks_for():
    site = load_site(DEMO)
    a = site.assets
    buildings = {b.building for b in site.buses if b.building}
    assert len(buildings) >= 10
    assert len(a.pedf_buildings) >= 2
    assert len(a.ev_chargers) >= 100
    e_kwh = sum(b.e_kwh for b in a.batteries)
    assert 2000 <= e_kwh <= 10000
    kwp = sum(p.kwp for p in a.pv_arrays) + sum(p.pv.kwp for p in a.pedf_buildings)
    assert 2000 <= kwp <= 10000
    assert site.connection.vn_kv == 10.0
    assert len(site.network.transformers) >= 10
    assert site.tariff.name == "zhejiang-ci-2026"
    assert site.carbon.emission_factor.source


def _write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(DEMO.read_text())
    mutate(doc)
    # keep relative includes working
    park = tmp_path / "parks" / "bad.yaml"
    park.parent.mkdir()
    (tmp_path / "tariffs").symlink_to(ROOT / "configs" / "tariffs")
    (tmp_path / "carbon").symlink_to(ROOT / "configs" / "carbon")
    park.write_text(yaml.safe_dump(doc))
    return park


def _error(tmp_path, mutate) -> str:
    with pytest.raises(ConfigError) as exc:
        load_site(_write(tmp_path, mutate))
    return str(exc.value)


def test_out_of_range_names_file_path_and_expectation(tmp_path):
    def bad(doc):
        doc["assets"]["batteries"][2]["soc_min_frac"] = 1.4

    msg = _error(tmp_path, bad)
    assert "parks/bad.yaml: assets.batteries[2].soc_min_frac: must be in [0, 1], got 1.4" in msg


def test_unknown_key_is_an_error_not_dropped(tmp_path):
    def bad(doc):
        doc["assets"]["batteries"][0]["capacity"] = 5

    msg = _error(tmp_path, bad)
    assert "assets.batteries[0].capacity: unknown key" in msg
    assert "e_kwh" in msg  # says what was expected


def test_wrong_type_names_the_field(tmp_path):
    def bad(doc):
        doc["connection"]["import_max_kw"] = "lots"

    msg = _error(tmp_path, bad)
    assert "connection.import_max_kw" in msg and "'lots'" in msg


def test_missing_field(tmp_path):
    def bad(doc):
        del doc["assets"]["pv_arrays"][0]["kwp"]

    assert "assets.pv_arrays[0].kwp: required field is missing" in _error(tmp_path, bad)


def test_unknown_bus_and_profile(tmp_path):
    def bad(doc):
        doc["assets"]["base_loads"][0]["bus"] = "nowhere"
        doc["assets"]["base_loads"][1]["profile"]["source"] = "simbench:XX-9"

    msg = _error(tmp_path, bad)
    assert "assets.base_loads[0].bus: unknown bus 'nowhere'" in msg
    assert "assets.base_loads[1].profile.source" in msg and "XX-9" in msg


def test_unknown_top_level_key(tmp_path):
    def bad(doc):
        doc["asets"] = {}

    assert "asets: unknown key" in _error(tmp_path, bad)


def test_bad_charger_group_count(tmp_path):
    def bad(doc):
        doc["assets"]["ev_charger_groups"][0]["count"] = 0

    assert "assets.ev_charger_groups[0].count: must be a whole number >= 1" in _error(tmp_path, bad)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_site(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("site: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_site(bad)


def test_tariff_months_must_be_covered(tmp_path):
    tariff = yaml.safe_load((ROOT / "configs" / "tariffs" / "zhejiang_2026.yaml").read_text())
    tariff["seasons"][0]["months"] = [1, 7, 8]  # December belongs to no season now

    def bad(doc):
        doc["tariff"] = tariff

    assert "tariff.seasons: months [12] belong to no season" in _error(tmp_path, bad)


def test_naive_datetimes_take_the_site_zone(tmp_path):
    def add(doc):
        doc["ev_sessions"] = [
            {
                "session_id": "x",
                "charger": "B01-EV-01",
                "arrival": "2026-07-15T08:00",
                "departure": "2026-07-15T17:00",
                "e_needed_kwh": 20,
            }
        ]

    site = load_site(_write(tmp_path, add))
    assert str(site.ev_sessions[0].arrival.tzinfo) == "Asia/Shanghai"


def test_dr_defaults_load_and_an_event_overrides_them(tmp_path):
    from vpp.park.model import DemandResponseEvent, DrDirection, dr_terms

    site = load_site(DEMO)
    assert site.dr_defaults.subsidy_cny_per_kwh == 0.25 and site.dr_defaults.source
    ev = DemandResponseEvent("e", DrDirection.PEAK_SHAVING, (), 1.0, subsidy_cny_per_kw=8.0)
    t = dr_terms(ev, site.dr_defaults)
    assert (t.subsidy_cny_per_kwh, t.subsidy_cny_per_kw, t.nonperformance_cny_per_kwh) == (
        0.25,
        8.0,
        0.0,
    )


def test_dr_defaults_errors_name_the_field(tmp_path):
    def negative(d):
        d["dr_defaults"]["nonperformance_cny_per_kwh"] = -1

    msg = _error(tmp_path, negative)
    assert "bad.yaml: dr_defaults.nonperformance_cny_per_kwh: must be >= 0, got -1" in msg

    def unknown(d):
        d["dr_defaults"]["subsidy_cny_per_mwh"] = 1

    other = tmp_path / "2"
    other.mkdir()
    assert "dr_defaults.subsidy_cny_per_mwh" in _error(other, unknown)


def test_an_unquoted_time_is_refused_not_read_as_minutes(tmp_path):
    """YAML 1.1 reads ``window_start: 22:00`` as the number 1320; before, the load quietly
    ran from 00:22."""

    def unquote(doc):
        doc["assets"]["shiftable_loads"][0]["window_start"] = 1320  # what YAML made of 22:00

    msg = _error(tmp_path, unquote)
    assert "assets.shiftable_loads[0].window_start: must be a quoted time 'HH:MM'" in msg
    assert "an unquoted 22:00 reads as the number 1320" in msg


@pytest.mark.parametrize("number", [float("inf"), float("nan"), 1e9])
def test_a_number_far_from_any_time_is_refused_plainly(tmp_path, number):
    """``.inf`` (or ``.nan``, or a huge number) where a time belongs: a field-path error, not
    an OverflowError from reading it as minutes (found by the config fuzz test)."""

    def bad(doc):
        doc["assets"]["shiftable_loads"][0]["window_start"] = number

    msg = _error(tmp_path, bad)
    assert "assets.shiftable_loads[0].window_start: must be a quoted time 'HH:MM'" in msg
    assert "unquoted" not in msg


def test_every_problem_is_listed_not_only_the_first_stage(tmp_path):
    """An unknown key no longer hides the other problems of the file."""

    def two(doc):
        doc["assets"]["batteries"][0]["capacity"] = 1
        doc["assets"]["batteries"][1]["soc_min_frac"] = 1.4

    msg = _error(tmp_path, two)
    assert "assets.batteries[0].capacity: unknown key" in msg
    assert "assets.batteries[1].soc_min_frac: must be in [0, 1], got 1.4" in msg
