"""Series files: the shipped example park loads its price and factor days; a bad file is
refused naming the file, the line and the column (missing column, unparsable time, duplicate
interval, negative or NaN price, a start off the step), reported at the park field that
names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpp.cli import main
from vpp.park.config import ConfigError, load_site
from vpp.park.price_series import SeriesFileError, read_series_csv

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
HEAD = "interval_start,price_cny_per_kwh,issued_at\n"
R0 = "2026-07-15T00:00:00+08:00"
R1 = "2026-07-15T00:15:00+08:00"


def _csv(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    p = tmp_path / "day.csv"
    p.write_text("# a comment line\n" + head + body, encoding="utf-8")
    return p


def _problems(path: Path, kind: str = "energy", step: int = 15, **kw) -> list[str]:
    with pytest.raises(SeriesFileError) as exc:
        read_series_csv(path, kind, step, label="prices/day.csv", **kw)
    return exc.value.problems


def test_the_example_park_loads_both_series():
    site = load_site(CONFIGS / "parks" / "manufacturing_spot.yaml")
    es = site.tariff.energy_series
    assert es.name == "guangdong-da" and es.step_minutes == 15
    assert len(es.points.start) == 96 and all(i is None for i in es.points.issued)
    assert (es.network_cny_per_kwh, es.fund_cny_per_kwh) == (0.16, 0.03)
    ef = site.carbon.emission_factor.series
    assert ef.kind == "marginal" and len(ef.points.start) == 24
    assert min(ef.points.value) > 0.6 and max(ef.points.value) < 0.95


def test_a_good_file_with_forecast_rows_and_an_export_column(tmp_path):
    head = "interval_start,price_cny_per_kwh,issued_at,export_price_cny_per_kwh\n"
    body = f"{R0},0.30,,0.25\n{R0},0.35,2026-07-14T10:00:00+08:00,\n{R1},0.31,,\n"
    s = read_series_csv(_csv(tmp_path, body, head), "energy", 15)
    assert s.value == (0.30, 0.35, 0.31) and s.export_value == (0.25, None, None)
    assert s.issued[0] is None and s.issued[1].isoformat() == "2026-07-14T10:00:00+08:00"
    assert s.name == "day"


def test_missing_and_unknown_columns_name_the_header_line(tmp_path):
    p = _csv(tmp_path, f"{R0},0.3\n", head="interval_start,price\n")
    (a, b) = _problems(p)
    assert a.startswith("prices/day.csv: line 2: missing column 'price_cny_per_kwh'")
    assert "unknown column 'price'" in b


def test_bad_rows_name_the_line_and_the_column(tmp_path):
    body = (
        f"2026-07-15 00:00,0.3,\n"  # no offset
        f"{R1},abc,\n"  # not a number
        f"2026-07-15T00:30:00+08:00,nan,\n"  # NaN
        f"2026-07-15T00:45:00+08:00,-0.2,\n"  # negative
        f"2026-07-15T00:20:00+08:00,0.3,\n"  # off the 15-minute step
        f"{R0},0.3,\n"
        f"{R0},0.4,\n"  # the same interval twice (cleared)
        f"{R0},0.4,yesterday\n"  # unparsable issue time
    )
    got = _problems(_csv(tmp_path, body))
    want = [
        "line 3: interval_start: not a time with offset",
        "line 4: price_cny_per_kwh: expected a number, got 'abc'",
        "line 10: issued_at: not a time with offset, got 'yesterday'",
        "line 5: price_cny_per_kwh: expected a finite number",
        "line 6: price_cny_per_kwh: expected 0 .. 100, got -0.2 (allow_negative is false)",
        "line 7: interval_start: 2026-07-15T00:20:00+08:00 is not on the 15-minute step",
        "line 9: interval_start: interval 2026-07-15T00:00:00+08:00 (cleared) appears twice "
        "(also line 8)",
    ]
    assert len(got) == len(want), got
    for w in want:
        assert any(g.startswith("prices/day.csv: " + w) for g in got), (w, got)
    # A market whose prices go below zero says so, and the row passes.
    ok = read_series_csv(_csv(tmp_path, f"{R1},-0.2,\n"), "energy", 15, allow_negative=True)
    assert ok.value == (-0.2,)


def test_a_step_the_series_cannot_have_and_an_empty_file(tmp_path):
    assert _problems(_csv(tmp_path, f"{R0},0.3,\n"), step=7) == [
        "prices/day.csv: step_minutes: expected one of [5, 15, 30, 60], got 7"
    ]
    assert _problems(_csv(tmp_path, "")) == ["prices/day.csv: no rows"]


def test_a_bad_series_file_is_reported_at_the_park_field_that_names_it(tmp_path):
    (tmp_path / "tariffs").mkdir()
    (tmp_path / "parks").mkdir()
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "day.csv").write_text(HEAD + f"{R0},0.3,\n{R0},0.3,\n")
    tariff = (CONFIGS / "tariffs" / "guangdong_spot_2026.yaml").read_text()
    (tmp_path / "tariffs" / "t.yaml").write_text(
        tariff.replace("guangdong_da_2026-07-15.csv", "day.csv")
    )
    park = (CONFIGS / "parks" / "manufacturing_spot.yaml").read_text()
    park = park.replace("../tariffs/guangdong_spot_2026.yaml", "../tariffs/t.yaml")
    park = park.replace("../carbon/", str(CONFIGS / "carbon") + "/")
    (tmp_path / "parks" / "p.yaml").write_text(park)
    with pytest.raises(ConfigError) as exc:
        load_site(tmp_path / "parks" / "p.yaml")
    (msg,) = exc.value.problems
    assert msg.startswith("parks/p.yaml: tariff (../tariffs/t.yaml): tariffs/t.yaml: ")
    assert "energy_series.file (../prices/day.csv): prices/day.csv: line 3: interval_start" in msg
    assert "appears twice (also line 2)" in msg


def test_a_series_file_is_read_relative_to_the_file_that_names_it(tmp_path):
    # The park two folders below the tariff's parent: the tariff's '../prices/day.csv' is
    # relative to the tariff file, never to the park file.
    (tmp_path / "tariffs").mkdir()
    (tmp_path / "prices").mkdir()
    deep = tmp_path / "sites" / "foshan"
    deep.mkdir(parents=True)
    (tmp_path / "prices" / "day.csv").write_text(HEAD + f"{R0},0.3,\n{R1},0.4,\n")
    tariff = (CONFIGS / "tariffs" / "guangdong_spot_2026.yaml").read_text()
    (tmp_path / "tariffs" / "t.yaml").write_text(
        tariff.replace("guangdong_da_2026-07-15.csv", "day.csv")
    )
    park = (CONFIGS / "parks" / "manufacturing_spot.yaml").read_text()
    park = park.replace("../tariffs/guangdong_spot_2026.yaml", "../../tariffs/t.yaml")
    park = park.replace("../carbon/", str(CONFIGS / "carbon") + "/")
    (deep / "p.yaml").write_text(park)
    site = load_site(deep / "p.yaml")
    assert site.tariff.energy_series.points.value == (0.3, 0.4)
    # Inline in the park file, the series is relative to the park file.
    inline = park.replace(
        "tariff: ../../tariffs/t.yaml",
        "tariff:\n"
        + "".join(
            f"  {line}\n"
            for line in tariff.replace(
                "../prices/guangdong_da_2026-07-15.csv", "../../prices/day.csv"
            ).splitlines()
            if line and not line.startswith("#")
        ),
    )
    (deep / "inline.yaml").write_text(inline)
    assert load_site(deep / "inline.yaml").tariff.energy_series.points.value == (0.3, 0.4)


def test_simulate_refuses_a_run_a_required_series_does_not_cover(tmp_path, capsys):
    (tmp_path / "tariffs").mkdir()
    (tmp_path / "parks").mkdir()
    tariff = (CONFIGS / "tariffs" / "guangdong_spot_2026.yaml").read_text()
    tariff = tariff.replace("required: false", "required: true")
    tariff = tariff.replace("../prices/", str(CONFIGS / "prices") + "/")
    (tmp_path / "tariffs" / "t.yaml").write_text(tariff)
    park = (CONFIGS / "parks" / "manufacturing_spot.yaml").read_text()
    park = park.replace("../tariffs/guangdong_spot_2026.yaml", "../tariffs/t.yaml")
    park = park.replace("../carbon/", str(CONFIGS / "carbon") + "/")
    (tmp_path / "parks" / "p.yaml").write_text(park)
    argv = ["simulate", "--config", str(tmp_path / "parks" / "p.yaml"), "--start"]
    rc = main([*argv, "2026-07-15", "--days", "1", "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    # The file covers 2026-07-15 only; the last plan looks a day ahead into the 16th.
    assert "series 'guangdong-da' is required but does not cover 96 of 192 intervals" in err
    assert "(first 2026-07-16T00:00:00+08:00" in err
    assert not (tmp_path / "out").exists()
