"""A price series from a file drives the closed loop: a midday spike the TOU tariff does not
have makes the battery discharge in it, and the realised energy is billed at the file's
prices (plus the tariff's adders), checked against the bill computed by hand from the
realised import; a carbon series changes the CO2 figure by the hand-computed amount."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.park.model import EnergySeries
from vpp.park.price_series import read_series_csv
from vpp.park.series import EmissionFactorSeries
from vpp.sim import closed_loop as sim

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 8, 0, tzinfo=TZ)
DAYS = 8 / 24  # 08:00-16:00, 32 intervals
SPIKE = (16, 24)  # 12:00-14:00: intervals 16..23 of the run
NETWORK, FUND = 0.10, 0.02


def _price(k: int) -> float:
    return 4.0 if SPIKE[0] <= k < SPIKE[1] else 0.6


def _write(tmp: Path) -> tuple[Path, Path]:
    prices = tmp / "spot.csv"
    rows = [
        f"{(START + timedelta(minutes=15 * k)).isoformat()},{_price(k):.2f}," for k in range(32)
    ]
    prices.write_text("interval_start,price_cny_per_kwh,issued_at\n" + "\n".join(rows) + "\n")
    ef = tmp / "mef.csv"
    hours = [f"{(START + timedelta(hours=h)).isoformat()},0.90" for h in (4, 5)]  # 12-14
    ef.write_text("interval_start,ef_kg_per_kwh\n" + "\n".join(hours) + "\n")
    return prices, ef


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("series")
    p_file, ef_file = _write(tmp)
    base = tiny_site()
    spot = EnergySeries(
        file=str(p_file),
        name="spot",
        network_cny_per_kwh=NETWORK,
        fund_cny_per_kwh=FUND,
        points=read_series_csv(p_file, "energy", 15, "spot"),
    )
    mef = EmissionFactorSeries(
        name="mef", kind="marginal", points=read_series_csv(ef_file, "marginal", 60, "mef")
    )
    ef = dataclasses.replace(base.carbon.emission_factor, series=mef)
    site = dataclasses.replace(
        base,
        tariff=dataclasses.replace(base.tariff, energy_series=spot),
        carbon=dataclasses.replace(base.carbon, emission_factor=ef),
    )
    kw = {"seed": 5, "history_days": 3}
    return (
        sim.simulate(base, START, DAYS, "mpc", "naive", **kw),
        sim.simulate(site, START, DAYS, "mpc", "naive", **kw),
    )


def test_the_battery_discharges_in_the_spike_the_tou_does_not_have(runs):
    tou, spot = runs
    k0, k1 = SPIKE
    b_spot = spot.series["battery_kw"][k0:k1]
    b_tou = tou.series["battery_kw"][k0:k1]
    # The plain TOU is flat (peak 1.0) from 08:00 to 22:00: nothing to gain at noon.
    assert b_spot.mean() < -30.0, b_spot  # discharging, kW (battery 50 kW)
    assert b_spot.mean() < b_tou.mean() - 20.0
    # Cheap before the spike: it charges there (mean over 08:00-12:00 above zero).
    assert spot.series["battery_kw"][:k0].mean() > 0.0


def test_the_realised_energy_is_billed_at_the_file_prices(runs):
    _, spot = runs
    s, dt = spot.series, spot.horizon.dt_h
    price = np.array([_price(k) for k in range(32)]) + NETWORK + FUND
    by_hand = float(np.sum(s["import_kw"] * price - s["export_kw"] * 0.4) * dt)
    assert spot.kpis["energy_cost_cny"] == pytest.approx(by_hand, abs=1e-6)
    np.testing.assert_allclose(s["price_cny_per_kwh"], price, atol=1e-12)
    assert s["price_from_series"].sum() == 32
    assert (
        "series 'spot' + network 0.1 + funds 0.02 CNY/kWh on 32 of 32"
        in (spot.kpis["notes"]["prices"])
    )


def test_the_carbon_series_changes_the_co2_by_the_hand_computed_amount(runs):
    tou, spot = runs
    s, dt = spot.series, spot.horizon.dt_h
    ef = np.full(32, 0.5)  # tiny_site's annual factor
    ef[SPIKE[0] : SPIKE[1]] = 0.9  # the series covers 12:00-14:00
    by_hand_t = float(np.sum(s["import_kw"] * ef) * dt) / 1000.0
    assert spot.kpis["co2_t"] == pytest.approx(by_hand_t, abs=1e-9)
    annual_t = float(np.sum(s["import_kw"]) * 0.5 * dt) / 1000.0
    delta = float(np.sum(s["import_kw"][SPIKE[0] : SPIKE[1]]) * 0.4 * dt) / 1000.0
    assert spot.kpis["co2_t"] - annual_t == pytest.approx(delta, abs=1e-9)
    assert tou.kpis["co2_t"] == pytest.approx(
        float(np.sum(tou.series["import_kw"]) * 0.5 * dt) / 1000.0, abs=1e-9
    )
    assert "series 'mef' (marginal) on 8 of 32 intervals" in spot.kpis["notes"]["co2"]
