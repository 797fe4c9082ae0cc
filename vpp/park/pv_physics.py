"""Physical PV model with pvlib: clear-sky irradiance to AC power for one array.

Pure computation (pvlib's shipped Linke turbidity table, no network). Powers in kW, AC, after
the inverter limit, as positive numbers (the array's generation; the dispatch applies the
load-convention sign).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib

from vpp.park.model import Location, PvArray


def solar_position(times: pd.DatetimeIndex, location: Location) -> pd.DataFrame:
    """Apparent zenith, zenith and azimuth (deg) at the interval mid-points given by ``times``."""
    return pvlib.solarposition.get_solarposition(
        times, location.latitude_deg, location.longitude_deg, altitude=location.altitude_m
    )


def clear_sky_irradiance(
    times: pd.DatetimeIndex, location: Location, solpos: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Ineichen clear-sky GHI, DNI, DHI (W/m2) with pvlib's monthly Linke turbidity."""
    site = pvlib.location.Location(
        location.latitude_deg, location.longitude_deg, location.tz, location.altitude_m
    )
    if solpos is None:
        solpos = solar_position(times, location)
    return site.get_clearsky(times, model="ineichen", solar_position=solpos)


def ac_power_kw(
    pv: PvArray,
    solpos: pd.DataFrame,
    irradiance: pd.DataFrame,
    temp_air_c: np.ndarray | float = 25.0,
    wind_m_per_s: np.ndarray | float = 1.0,
) -> np.ndarray:
    """AC power (kW) of ``pv`` for given irradiance (columns ghi, dni, dhi in W/m2).

    Transposition (Hay-Davies), SAPM cell temperature (open rack glass/polymer), PVWatts DC
    with ``pv.losses_frac`` system losses, and the inverter's AC limit.
    """
    extra = pvlib.irradiance.get_extra_radiation(solpos.index)
    poa = pvlib.irradiance.get_total_irradiance(
        pv.tilt_deg,
        pv.azimuth_deg,
        solpos["apparent_zenith"],
        solpos["azimuth"],
        irradiance["dni"],
        irradiance["ghi"],
        irradiance["dhi"],
        dni_extra=extra,
        model="haydavies",
    )
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float)).clip(min=0.0)
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    t_cell = pvlib.temperature.sapm_cell(poa_global, temp_air_c, wind_m_per_s, **params)
    pdc_kw = pvlib.pvsystem.pvwatts_dc(poa_global, t_cell, pv.kwp, pv.gamma_pdc_per_c)
    pdc_kw = np.asarray(pdc_kw, dtype=float) * (1.0 - pv.losses_frac)
    return np.clip(pdc_kw, 0.0, pv.inverter_kw)


def clear_sky_ac_kw(times: pd.DatetimeIndex, location: Location, pv: PvArray) -> np.ndarray:
    """AC power (kW) of ``pv`` under clear sky at ``times`` (tz-aware; use interval mid-points)."""
    solpos = solar_position(times, location)
    cs = clear_sky_irradiance(times, location, solpos)
    return ac_power_kw(pv, solpos, cs)
