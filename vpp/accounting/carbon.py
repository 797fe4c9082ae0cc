"""Carbon and energy accounting: pure functions on metered energy and configured factors.

Factors come from configuration (``configs/carbon/``, dated and sourced; see
``shared/DOMAIN.md``); the factor on a horizon is :func:`vpp.park.carbon_factors.
emission_factor_kg_per_kwh`. Nothing here holds a number of its own except unit conversions.

* CO2: location-based, grid import x the provincial annual factor (or the hourly series when
  one is configured). Exports are not credited.
* Standard coal: electricity x ``equivalent_kgce_per_kwh`` (equivalent-value / calorific
  method, GB/T 2589: 0.1229) and x ``equal_value_kgce_per_kwh`` (equal-value method, the
  year's coal use of thermal supply). Both are reported; they differ by about 2.4x.
* Comprehensive energy use counts all electricity the park consumes: grid import plus the
  PV it uses itself (new renewables still count for intensity).
* Intensity: tce per 10,000 CNY of value added; year-on-year change of intensity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vpp.park.model import EnergyFactors

INTENSITY_TARGET_TCE_PER_10K_CNY = 0.4  # national high-tech zones, 2025 (DOMAIN.md)
YOY_REDUCTION_TARGET_FRAC = 0.04  # CO2 per unit of value added, at least 4 % a year


def co2_kg(import_kw: np.ndarray, ef_kg_per_kwh: np.ndarray | float, dt_h: float) -> float:
    """Location-based CO2 (kg) of grid import (kW per interval) with the factor per interval."""
    imp = np.maximum(np.asarray(import_kw, dtype=float), 0.0)
    return float(np.sum(imp * np.asarray(ef_kg_per_kwh, dtype=float)) * dt_h)


def tce(kwh: float, factors: EnergyFactors) -> tuple[float, float]:
    """Tonnes of standard coal of ``kwh`` of electricity: (equivalent value, equal value)."""
    return (
        kwh * factors.equivalent_kgce_per_kwh / 1000.0,
        kwh * factors.equal_value_kgce_per_kwh / 1000.0,
    )


def intensity_tce_per_10k_cny(tce_t: float, value_added_10k_cny: float) -> float:
    """Energy intensity: tce per 10,000 CNY of value added (over the same period)."""
    if value_added_10k_cny <= 0:
        raise ValueError("value added must be positive")
    return tce_t / value_added_10k_cny


def value_added_for_period(value_added_10k_cny_per_year: float, days: float) -> float:
    """The share of a year's value added that falls in ``days`` (pro rata)."""
    return value_added_10k_cny_per_year * days / 365.0


def yoy_change_frac(this: float, last: float) -> float:
    """Relative change against last year (-0.05 = 5 % lower)."""
    if last == 0:
        return 0.0
    return (this - last) / last


@dataclass(frozen=True)
class Accounts:
    """Carbon and energy figures of one period."""

    days: float
    import_kwh: float
    export_kwh: float
    pv_used_kwh: float
    consumption_kwh: float
    co2_t: float
    tce_equivalent: float
    tce_equal_value: float
    value_added_10k_cny: float | None
    intensity_tce_per_10k_cny: float | None
    co2_t_per_10k_cny: float | None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def accounts(
    import_kw: np.ndarray,
    export_kw: np.ndarray,
    pv_used_kw: np.ndarray,
    ef_kg_per_kwh: np.ndarray | float,
    dt_h: float,
    factors: EnergyFactors,
    value_added_10k_cny_per_year: float | None = None,
) -> Accounts:
    """Carbon and energy accounts of a metered period (all arrays kW per interval)."""
    imp = float(np.sum(import_kw) * dt_h)
    exp = float(np.sum(export_kw) * dt_h)
    pv = float(np.sum(pv_used_kw) * dt_h)
    consumption = imp - exp + pv
    eq, ev = tce(consumption, factors)
    co2 = co2_kg(import_kw, ef_kg_per_kwh, dt_h) / 1000.0
    days = len(np.asarray(import_kw)) * dt_h / 24.0
    va = intensity = co2_va = None
    if value_added_10k_cny_per_year:
        va = value_added_for_period(value_added_10k_cny_per_year, days)
        intensity = intensity_tce_per_10k_cny(eq, va)
        co2_va = co2 / va
    return Accounts(days, imp, exp, pv, consumption, co2, eq, ev, va, intensity, co2_va)
