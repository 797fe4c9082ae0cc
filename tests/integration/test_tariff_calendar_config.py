"""Tariff files with a gap or an overlap, days outside a tariff's validity and years the
holiday calendar does not know are stopped at the edge: by the configuration, and by the
commands that plan or simulate those days (one line naming the file, the days, the bound)."""

from datetime import date
from pathlib import Path

import pytest
import yaml

from vpp.cli import main
from vpp.park.config import ConfigError, load_site, load_tariff
from vpp.park.model import DayType

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"
ZHEJIANG = ROOT / "configs" / "tariffs" / "zhejiang_2026.yaml"

CALENDAR_2027 = {
    "holidays": [
        "2027-01-01",
        "2027-02-05..2027-02-13",
        "2027-04-05",
        "2027-05-01..2027-05-03",
        "2027-06-09",
        "2027-09-15",
        "2027-10-01..2027-10-07",
    ],
    "workdays": ["2027-02-20"],
}


def _tariff_file(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(ZHEJIANG.read_text())
    mutate(doc)
    path = tmp_path / "tariffs" / "bad.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _park(tmp_path: Path, mutate=lambda doc: None) -> Path:
    doc = yaml.safe_load(DEMO.read_text())
    mutate(doc)
    park = tmp_path / "parks" / "p.yaml"
    park.parent.mkdir(exist_ok=True)
    for d in ("tariffs", "carbon"):
        if not (tmp_path / d).exists():
            (tmp_path / d).symlink_to(ROOT / "configs" / d)
    park.write_text(yaml.safe_dump(doc))
    return park


def test_shipped_tariffs_and_parks_pass_the_checks():
    for f in sorted((ROOT / "configs" / "tariffs").glob("*.yaml")):
        assert load_tariff(f).valid_from is not None
    for f in sorted((ROOT / "configs" / "parks").glob("*.yaml")):
        load_site(f)


def test_a_night_without_its_valley_is_an_error(tmp_path):
    def gap(doc):
        doc["seasons"][0]["schedules"]["workday"].pop(0)  # 00:00-08:00 valley

    with pytest.raises(ConfigError) as exc:
        load_tariff(_tariff_file(tmp_path, gap))
    assert str(exc.value) == (
        "tariffs/bad.yaml: seasons[0].schedules.workday: season 'summer_winter', workday: "
        "00:00-08:00 covered by no period (every day type must cover the 24 hours exactly once)"
    )


def test_a_valley_over_a_peak_is_an_error_in_the_park_file_too(tmp_path):
    def overlap(doc):
        days = doc["seasons"][0]["schedules"]["workday"]
        days[3] = {"start": "11:00", "end": "15:00", "tier": "valley"}  # over 13:00-15:00 peak

    bad = _tariff_file(tmp_path, overlap)
    with pytest.raises(ConfigError) as exc:
        load_site(_park(tmp_path, lambda doc: doc.update(tariff="../tariffs/bad.yaml")))
    assert "tariffs/bad.yaml: seasons[0].schedules.workday: season 'summer_winter', " in str(
        exc.value
    )
    assert "13:00-15:00 covered by more than one period" in str(exc.value)
    assert bad.exists()


def test_valid_to_before_valid_from_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="valid_to: must not be before valid_from"):
        load_tariff(_tariff_file(tmp_path, lambda doc: doc.update(valid_to="2026-06-30")))


def test_park_calendar_in_yaml_with_blocks_of_days(tmp_path):
    site = load_site(_park(tmp_path, lambda doc: doc.update(calendar=CALENDAR_2027)))
    assert date(2027, 2, 8) in site.calendar.holidays and len(site.calendar.holidays) == 23
    assert site.calendar.workdays == (date(2027, 2, 20),)
    assert site.calendar.years() == {2027}
    from vpp.park.calendar import day_type

    assert day_type(date(2027, 2, 8), site.calendar) is DayType.HOLIDAY


def test_a_park_calendar_listing_part_of_a_year_is_an_error(tmp_path):
    cal = {"holidays": ["2027-02-05..2027-02-08"], "workdays": ["2027-02-10"]}
    with pytest.raises(ConfigError) as exc:
        load_site(_park(tmp_path, lambda doc: doc.update(calendar=cal)))
    msg = str(exc.value)
    assert "parks/p.yaml: calendar.workdays[0]: 2027-02-10 is a Wednesday" in msg
    assert "parks/p.yaml: calendar.holidays: 2027 lists 4 days" in msg
    with pytest.raises(ConfigError, match=r"calendar\.holidays\[0\]: a block must run forwards"):
        load_site(
            _park(
                tmp_path, lambda doc: doc.update(calendar={"holidays": ["2027-02-08..2027-02-01"]})
            )
        )


def test_dispatch_before_the_tariff_starts_stops_with_one_line(capsys):
    rc = main(["dispatch", "--config", str(DEMO), "--at", "2025-01-10T08:00"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == (
        "vpp dispatch: error: tariffs/zhejiang_2026.yaml: tariff 'zhejiang-ci-2026' is valid "
        "2026-07-01 .. (open-ended); the days planned (2025-01-10 .. 2025-01-11) include "
        "2025-01-10 .. 2025-01-11 outside it (pass --allow-outside-tariff to plan it anyway)"
    )


def test_simulate_into_an_unknown_year_stops_unless_the_park_supplies_it(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["simulate", "--config", str(DEMO), "--start", "2027-02-01", "--days", "1"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "parks/demo.yaml: calendar: no public holidays known for 2027" in err
    assert "--allow-unknown-calendar" in err and err.count("\n") == 1

    from vpp.cli import build_parser
    from vpp.commands.simulate import prepare

    park = _park(tmp_path, lambda doc: doc.update(calendar=CALENDAR_2027))
    args = build_parser().parse_args(
        ["simulate", "--config", str(park), "--start", "2027-02-01", "--days", "1", "--out", "x"]
    )
    site, start, _ = prepare(args)
    assert site.calendar.years() == {2027} and start.date() == date(2027, 2, 1)
    compare = build_parser().parse_args(
        ["compare", "--config", str(DEMO), "--start", "2027-02-01", "--days", "1", "--out", "x"]
    )
    compare.allow_unknown_calendar = True
    prepare(compare)  # allowed: a warning, not an error
    assert "warning: parks/demo.yaml: calendar" in capsys.readouterr().err


def test_carbon_report_checks_the_calendar(capsys):
    argv = ["carbon", "report", "--config", str(DEMO), "--from", "2027-01-01", "--to", "2027-01-31"]
    assert main(argv) == 2
    assert "no public holidays known for 2027" in capsys.readouterr().err
