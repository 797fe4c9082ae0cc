"""Carbon and energy accounting against hand-computed figures."""

from __future__ import annotations

import numpy as np
import pytest

from vpp.accounting import carbon
from vpp.park.model import EnergyFactors

F = EnergyFactors(equivalent_kgce_per_kwh=0.1229, equal_value_kgce_per_kwh=0.30)


def test_co2_with_annual_and_hourly_factor() -> None:
    imp = np.array([100.0, 200.0, -50.0, 0.0])  # a negative (export) interval counts 0
    assert carbon.co2_kg(imp, 0.5366, 0.25) == pytest.approx(300 * 0.25 * 0.5366)
    ef = np.array([0.5, 0.6, 0.7, 0.8])
    assert carbon.co2_kg(imp, ef, 0.25) == pytest.approx((50 + 120) * 0.25)


def test_tce_both_methods_and_intensity() -> None:
    eq, ev = carbon.tce(10_000.0, F)
    assert eq == pytest.approx(1.229)
    assert ev == pytest.approx(3.0)
    assert carbon.intensity_tce_per_10k_cny(1.229, 10.0) == pytest.approx(0.1229)
    with pytest.raises(ValueError):
        carbon.intensity_tce_per_10k_cny(1.0, 0.0)
    assert carbon.yoy_change_frac(0.96, 1.0) == pytest.approx(-0.04)


def test_accounts_of_one_day() -> None:
    n = 96
    imp = np.full(n, 100.0)  # 2,400 kWh
    exp = np.zeros(n)
    exp[48] = 40.0  # 10 kWh exported
    pv = np.full(n, 10.0)  # 240 kWh used
    a = carbon.accounts(imp, exp, pv, 0.5, 0.25, F, value_added_10k_cny_per_year=365.0)
    assert a.days == pytest.approx(1.0)
    assert a.import_kwh == pytest.approx(2400.0)
    assert a.consumption_kwh == pytest.approx(2400 - 10 + 240)
    assert a.co2_t == pytest.approx(1.2)
    assert a.tce_equivalent == pytest.approx(2630 * 0.1229 / 1000)
    assert a.tce_equal_value == pytest.approx(2630 * 0.30 / 1000)
    assert a.value_added_10k_cny == pytest.approx(1.0)
    assert a.intensity_tce_per_10k_cny == pytest.approx(a.tce_equivalent)
    assert a.co2_t_per_10k_cny == pytest.approx(1.2)
