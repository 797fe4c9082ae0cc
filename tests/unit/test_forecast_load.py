"""Load forecaster: calendar features, invariants, skill on a synthetic park, fallback."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasts.calendar_features import (
    KIND_HOLIDAY,
    KIND_WEEKEND,
    KIND_WORKDAY,
    KIND_WORKING_WEEKEND,
    Grid,
    day_kind,
)
from forecasts.load import FEATURES, LoadForecaster
from forecasts.types import Series
from vpp.park.calendar import is_workday
from vpp.park.model import Horizon

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)
START = datetime(2024, 7, 1, tzinfo=TZ)


def test_day_kinds_follow_the_official_calendar():
    assert day_kind(date(2024, 10, 1)) == KIND_HOLIDAY  # National Day
    assert day_kind(date(2024, 9, 29)) == KIND_WORKING_WEEKEND  # a Sunday worked for it
    assert day_kind(date(2024, 10, 12)) == KIND_WORKING_WEEKEND  # a Saturday worked for it
    assert day_kind(date(2024, 10, 19)) == KIND_WEEKEND
    assert day_kind(date(2024, 10, 21)) == KIND_WORKDAY


def _park_load(days: int, seed: int = 0) -> Series:
    """An office-like load: a daytime block on working days (official calendar, so the
    National Day week rests and its working weekends work), noise, slow drift."""
    rng = np.random.default_rng(seed)
    grid = Grid(START, STEP)
    pos = np.arange(days * 96)
    slot = grid.slot(pos)
    day = grid.day_index(pos)
    work = np.array([is_workday(START.date() + timedelta(days=int(d))) for d in range(days)])
    office = ((slot >= 32) & (slot < 72)).astype(float)
    drift = 1.0 + 0.2 * np.sin(2 * np.pi * day / 60)
    values = drift * (30 + 70 * office * work[day]) + 4 * rng.standard_normal(len(pos))
    return Series(Horizon(START, STEP, len(pos)), values)


@pytest.fixture(scope="module")
def fitted():
    series = _park_load(130)
    cut = 85 * 96
    fc = LoadForecaster(rows_per_series=8000).fit(
        Series(Horizon(START, STEP, cut), series.values_kw[:cut])
    )
    return fc, series


def _recent(series: Series, issue: int) -> Series:
    return Series(Horizon(START, STEP, issue), series.values_kw[:issue]).tail(10 * 96)


def test_beats_weekly_seasonal_naive_over_the_national_day_holiday(fitted):
    fc, series = fitted
    model, naive = [], []
    for day in range(88, 129):  # 2024-09-27 .. 2024-11-06, includes Oct 1-7 and its 调休
        issue = day * 96
        horizon = Horizon(START + issue * STEP, STEP, 96)
        truth = series.values_kw[issue : issue + 96]
        model.append(np.abs(fc.predict(horizon, _recent(series, issue)).p50_kw - truth).mean())
        naive.append(np.abs(series.values_kw[issue - 672 : issue - 576] - truth).mean())
    assert np.mean(model) < 0.8 * np.mean(naive)


@settings(max_examples=15, deadline=None)
@given(offset=st.integers(0, 40 * 96), n=st.integers(1, 192))
def test_quantiles_are_ordered_and_finite(fitted, offset, n):
    fc, series = fitted
    issue = 86 * 96 + offset
    q = fc.predict(Horizon(START + issue * STEP, STEP, n), _recent(series, issue))
    assert np.all(q.p10_kw <= q.p50_kw) and np.all(q.p50_kw <= q.p90_kw)
    assert np.all(np.isfinite(q.p90_kw))


def test_predict_many_equals_predict_for_each_series():
    a, b = _park_load(40, seed=1), _park_load(40, seed=2)
    b = Series(b.horizon, 3.0 * b.values_kw)
    cut = 35 * 96
    hist = [Series(Horizon(START, STEP, cut), s.values_kw[:cut]) for s in (a, b)]
    fc = LoadForecaster(rows_per_series=4000).fit_many(hist)
    horizon = Horizon(START + cut * STEP, STEP, 96)
    both = fc.predict_many(horizon, hist)
    assert both[1].p50_kw.mean() == pytest.approx(3.0 * both[0].p50_kw.mean(), rel=0.15)
    single = LoadForecaster(rows_per_series=4000).fit(hist[0])
    assert np.all(np.isfinite(single.predict(horizon, hist[0]).p50_kw))


def test_short_history_falls_back_to_seasonal_naive():
    series = _park_load(5)
    cut = 4 * 96
    fc = LoadForecaster().fit(Series(Horizon(START, STEP, cut), series.values_kw[:cut]))
    assert fc.model is None and fc.uses_model == [False]
    horizon = Horizon(START + cut * STEP, STEP, 96)
    q = fc.predict(horizon, Series(Horizon(START, STEP, cut), series.values_kw[:cut]))
    assert np.all(q.p10_kw <= q.p50_kw) and np.all(q.p50_kw <= q.p90_kw)
    truth = series.values_kw[cut : cut + 96]
    assert np.abs(q.p50_kw - truth).mean() < 15.0


def test_temperature_is_used_when_given():
    rng = np.random.default_rng(5)
    base = _park_load(60, seed=4)
    temp = 25 + 8 * rng.standard_normal(base.horizon.n // 96).repeat(96)
    values = base.values_kw + 3.0 * np.maximum(temp - 25, 0)  # cooling load
    cut = 50 * 96
    hist = Series(Horizon(START, STEP, cut), values[:cut], temp[:cut])
    with_t = LoadForecaster(rows_per_series=8000).fit(hist)
    without = LoadForecaster(rows_per_series=8000).fit(Series(hist.horizon, hist.values_kw))
    err_t, err = [], []
    for day in range(50, 59):
        i0 = day * 96
        hz = Horizon(START + i0 * STEP, STEP, 96)
        # measured temperature, then the (here perfect) temperature forecast for the day
        rec_t = Series(Horizon(START, STEP, i0), values[:i0], temp[: i0 + 96]).tail(960)
        rec = Series(rec_t.horizon, rec_t.values_kw)
        truth = values[i0 : i0 + 96]
        q_t = with_t.predict(hz, rec_t)
        err_t.append(np.abs(q_t.p50_kw - truth).mean())
        err.append(np.abs(without.predict(hz, rec).p50_kw - truth).mean())
    assert np.mean(err_t) < np.mean(err)


def test_a_short_fit_can_leave_the_day_of_the_year_out():
    """``season_min_days``: below that span of history the day-of-year columns are zero in
    the rows fitted and in those predicted (the model cannot read them); at 0 (the default)
    they are kept."""
    rng = np.random.default_rng(0)
    start = datetime(2026, 5, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    n = 20 * 96
    y = 100 + 30 * np.sin(np.arange(n) * 2 * np.pi / 96) + rng.normal(0, 2, n)
    hist = Series(Horizon(start, timedelta(minutes=15), n), y)
    cols = [FEATURES.index("doy_sin"), FEATURES.index("doy_cos")]
    short = LoadForecaster(min_history_days=14, max_rows=3000, season_min_days=365).fit(hist)
    kept = LoadForecaster(min_history_days=14, max_rows=3000).fit(hist)
    assert short.seasonal is False and kept.seasonal is True
    grid = Grid(start, timedelta(minutes=15))
    target = np.arange(n - 96, n)
    known = np.full(96, n - 96)
    assert np.all(short._features(y / short.scales[0], None, grid, known, target)[:, cols] == 0)
    assert np.any(kept._features(y / kept.scales[0], None, grid, known, target)[:, cols] != 0)
