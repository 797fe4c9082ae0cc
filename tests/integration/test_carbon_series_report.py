"""``vpp carbon report`` on an emission-factor series (SQLite and PostgreSQL): the park
file's series and the rows posted to the service move the CO2 figure by the hand-computed
amount, and the report says which factor it used (series, kind, intervals covered)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.integration.test_carbon_store import (
    DAY,
    EF,
    MIDNIGHT,
    _engine,
    hand_day,
    pv_battery_site,
)
from vpp.commands.carbon import report, text
from vpp.park.price_series import Row
from vpp.park.series import EmissionFactorSeries, IntervalSeries
from vpp.store import repo
from vpp.store import series as store_series
from vpp.store.metered import read_period


def _site_with_series():
    site = pv_battery_site()
    noon = [MIDNIGHT + timedelta(hours=h) for h in (12, 13)]
    pts = IntervalSeries("grid-mef", 60, tuple(noon), (0.9, 0.9), (None, None), kind="marginal")
    spec = EmissionFactorSeries(file="mef.csv", name="grid-mef", kind="marginal", points=pts)
    ef = dataclasses.replace(site.carbon.emission_factor, series=spec)
    return dataclasses.replace(site, carbon=dataclasses.replace(site.carbon, emission_factor=ef))


def test_series_and_posted_rows_move_the_co2_by_hand(db_url) -> None:
    engine = _engine(db_url)
    with engine.begin() as conn:
        repo.ingest_telemetry(conn, hand_day())
        # Posted: 00:00-01:00 at 0.7 (kg/kWh), cleared.
        rows = [Row(f"points[{k}]", MIDNIGHT + k * timedelta(minutes=15), 0.7) for k in range(4)]
        store_series.save_points(conn, "ef", "grid-mef", "marginal", 15, rows, "test")
    site = _site_with_series()
    with engine.connect() as conn:
        m = read_period(conn, site, DAY, DAY)
        h = m.horizon
        posted = store_series.series_between(conn, "ef", h.start, h.start + h.n * h.step)
    assert posted is not None and posted.step_minutes == 15
    doc_file = report(site, DAY, DAY, metered=m)
    imp_kwh = 92 * 100 * 0.25
    # 12:00-14:00 at 0.9: k 48..51 export (import 0), k 52..55 import 100 kW.
    by_hand = (imp_kwh * EF + 4 * 100 * 0.25 * (0.9 - EF)) / 1000.0
    assert doc_file["runs"]["metered"]["co2_t"] == pytest.approx(by_hand, abs=1e-12)
    used = doc_file["factors"]["used"]
    assert used.startswith("series 'grid-mef' (marginal) on 8 of 96 intervals (cleared 8")
    assert "annual 0.5000 kg/kWh" in used and "on 88" in used
    assert doc_file["factors"]["series"]["fallback"] == 88
    out = text(site, doc_file)
    assert "factor used: series 'grid-mef' (marginal)" in out
    # Last year (52 weeks earlier) has no series: its CO2 is on the annual factor; said.
    assert "last year on another factor (test 2022 annual" in out
    plain = dataclasses.replace(
        site,
        carbon=dataclasses.replace(
            site.carbon, emission_factor=pv_battery_site().carbon.emission_factor
        ),
    )
    doc_posted = report(plain, DAY, DAY, metered=m, posted_ef=posted)
    by_hand = (imp_kwh * EF + 4 * 100 * 0.25 * (0.7 - EF)) / 1000.0  # 00:00-01:00 at 0.7
    assert doc_posted["runs"]["metered"]["co2_t"] == pytest.approx(by_hand, abs=1e-12)
    assert doc_posted["factors"]["series"]["cleared"] == 4
    # Both: the file's hourly noon rows and the posted 15-minute night rows (merged on 15 min).
    doc_both = report(site, DAY, DAY, metered=m, posted_ef=posted)
    by_hand = (imp_kwh * EF + 100 * 0.25 * (4 * (0.7 - EF) + 4 * (0.9 - EF))) / 1000.0
    assert doc_both["runs"]["metered"]["co2_t"] == pytest.approx(by_hand, abs=1e-12)
    assert doc_both["factors"]["series"]["cleared"] == 12  # 4 at night, 8 at noon
    doc_none = report(plain, DAY, DAY, metered=m)
    assert doc_none["factors"]["series"] is None
    assert doc_none["runs"]["metered"]["co2_t"] == pytest.approx(imp_kwh * EF / 1000.0)
