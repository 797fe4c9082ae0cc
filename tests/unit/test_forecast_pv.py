"""PV forecaster: golden physics values, and invariants of the quantile forecasts."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasts.baselines import SmartPersistence
from forecasts.pv import PvForecaster, Weather, clear_sky_ac_on_grid
from forecasts.types import Series
from vpp.park.model import Horizon, Location, PvArray
from vpp.park.pv_physics import solar_position

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)
HANGZHOU = Location(30.25, 120.17, 10.0)
PV = PvArray("pv", "bus", kwp=100.0, inverter_kw=90.0)


def test_solar_zenith_at_solstice_noon_matches_geometry():
    # Solar noon at 120.17 E on 2024-06-21 is about 12:01 local; zenith = lat - declination.
    t = pd.DatetimeIndex([pd.Timestamp("2024-06-21 12:01", tz=TZ)])
    zenith = float(solar_position(t, HANGZHOU)["zenith"].iloc[0])
    assert zenith == pytest.approx(30.25 - 23.44, abs=0.3)


@pytest.mark.parametrize(
    ("day", "peak_kw", "energy_kwh", "first_slot", "last_slot"),
    [
        # Golden values of this physical chain (Ineichen + pvlib Linke turbidity, Hay-Davies,
        # SAPM open rack, PVWatts, 14 % losses), checked for plausibility: 5.7 kWh/kWp on a
        # clear midsummer day, 4.2 at midwinter; sunrise 04:58 / 06:50, sunset 19:03 / 17:03.
        ("2024-06-21", 72.34, 567.4, 20, 75),
        ("2024-12-21", 65.52, 424.1, 28, 67),
    ],
)
def test_clear_sky_ac_golden_day(day, peak_kw, energy_kwh, first_slot, last_slot):
    h = Horizon(datetime.fromisoformat(day).replace(tzinfo=TZ), STEP, 96)
    cs = clear_sky_ac_on_grid(PV, HANGZHOU, h)
    assert cs.max() == pytest.approx(peak_kw, rel=0.01)
    assert cs.sum() * h.dt_h == pytest.approx(energy_kwh, rel=0.01)
    lit = np.nonzero(cs)[0]
    assert (lit[0], lit[-1]) == (first_slot, last_slot)
    assert 47 <= int(cs.argmax()) <= 48  # around solar noon (12:01)
    assert cs.max() <= PV.inverter_kw


def _synthetic_history(days: int, seed: int = 0) -> tuple[Series, np.ndarray]:
    """Clear-sky AC times a persistent random cloudiness (AR(1) on the index)."""
    h = Horizon(datetime(2024, 3, 1, tzinfo=TZ), STEP, days * 96)
    cs = clear_sky_ac_on_grid(PV, HANGZHOU, h)
    rng = np.random.default_rng(seed)
    k = np.empty(h.n)
    level = 0.7
    for i in range(h.n):
        level = 0.97 * level + 0.03 * 0.7 + 0.05 * rng.standard_normal()
        k[i] = level
    k = np.clip(k, 0.05, 1.0)
    return Series(h, cs * k), k


@pytest.fixture(scope="module")
def fitted():
    history, _k = _synthetic_history(40)
    fc = PvForecaster.one(PV, HANGZHOU, rows_per_series=6000).fit(history.tail(30 * 96))
    return fc, history


@settings(max_examples=15, deadline=None)
@given(offset=st.integers(min_value=0, max_value=10 * 96 - 96), n=st.integers(1, 192))
def test_quantiles_ordered_within_clear_sky_and_zero_at_night(fitted, offset, n):
    fc, history = fitted
    issue = 30 * 96 + offset
    recent = Series(Horizon(history.horizon.start, STEP, issue), history.values_kw[:issue]).tail(
        3 * 96
    )
    horizon = Horizon(history.horizon.start + issue * STEP, STEP, n)
    q = fc.predict(horizon, recent)
    cs = fc.clear_sky_kw(0, horizon)
    assert np.all(q.p10_kw <= q.p50_kw) and np.all(q.p50_kw <= q.p90_kw)
    assert np.all(q.p10_kw >= 0.0)
    assert np.all(q.p90_kw <= cs + 1e-9)
    assert np.all(q.p90_kw[cs == 0.0] == 0.0)
    assert np.all(q.p90_kw <= PV.inverter_kw + 1e-9)


def test_short_lead_is_close_to_smart_persistence(fitted):
    """At one hour ahead, persistence of the cloudiness is hard to beat: the model must stay
    close to it (it learns the blend), and far better than the climatology alone."""
    fc, history = fitted
    model_err, sp_err = [], []
    for day in range(31, 39):
        issue = day * 96 + 44  # 11:00
        recent = Series(Horizon(history.horizon.start, STEP, issue), history.values_kw[:issue])
        horizon = Horizon(history.horizon.start + issue * STEP, STEP, 4)
        truth = history.values_kw[issue : issue + 4]
        model_err.append(np.abs(fc.predict(horizon, recent.tail(192)).p50_kw - truth).mean())
        sp = SmartPersistence(PV, HANGZHOU).predict(horizon, recent.tail(192)).p50_kw
        sp_err.append(np.abs(sp - truth).mean())
    assert np.mean(model_err) < 1.5 * np.mean(sp_err) + 1.0


def test_predict_refuses_history_that_reaches_the_future(fitted):
    fc, history = fitted
    recent = history.tail(96)
    with pytest.raises(ValueError, match="after the issue time"):
        fc.predict(Horizon(recent.end - STEP, STEP, 4), recent)


def test_weather_feed_is_used_when_configured():
    """With archived forecasts that carry information (the true GHI, noisy), the forecast of
    the next day beats the same model without them."""
    history, k = _synthetic_history(40, seed=3)
    h = history.horizon
    times = pd.date_range(h.start, periods=h.n, freq=STEP) + STEP / 2
    ghi_clear = (
        __import__("vpp.park.pv_physics", fromlist=["x"])
        .clear_sky_irradiance(times, HANGZHOU)["ghi"]
        .to_numpy()
    )
    rng = np.random.default_rng(1)
    ghi_fc = ghi_clear * np.clip(k + 0.05 * rng.standard_normal(h.n), 0, 1)
    weather = Weather(h, ghi_w_per_m2=ghi_fc, temp_air_c=np.full(h.n, 20.0))
    cut = 32 * 96
    train = Series(Horizon(h.start, STEP, cut), history.values_kw[:cut])
    w_train = Weather(Horizon(h.start, STEP, cut), ghi_w_per_m2=ghi_fc[:cut])
    with_feed = PvForecaster.one(PV, HANGZHOU, rows_per_series=6000).fit(train, w_train)
    without = PvForecaster.one(PV, HANGZHOU, rows_per_series=6000).fit(train)
    err_with, err_without = [], []
    for day in range(32, 39):
        i0 = day * 96
        recent = Series(Horizon(h.start, STEP, i0), history.values_kw[:i0]).tail(192)
        hz = Horizon(h.start + i0 * STEP, STEP, 96)
        w = Weather(hz, ghi_w_per_m2=ghi_fc[i0 : i0 + 96], temp_air_c=weather.temp_air_c[:96])
        truth = history.values_kw[i0 : i0 + 96]
        err_with.append(np.abs(with_feed.predict(hz, recent, w).p50_kw - truth).mean())
        err_without.append(np.abs(without.predict(hz, recent).p50_kw - truth).mean())
    assert np.mean(err_with) < 0.7 * np.mean(err_without)
