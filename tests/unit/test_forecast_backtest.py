"""The backtest harness: no leakage, metrics that discriminate, known metric values."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from forecasts.backtest import BacktestConfig, metrics_by_lead, pinball_kw, rolling_origin
from forecasts.baselines import Persistence, SeasonalNaive
from forecasts.types import QuantileForecast, Series
from vpp.park.model import Horizon

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)


def _series(days: int = 20, seed: int = 0) -> Series:
    rng = np.random.default_rng(seed)
    t = np.arange(days * 96)
    values = 50 + 20 * np.sin(2 * np.pi * t / 96) + 5 * rng.standard_normal(len(t))
    return Series(Horizon(datetime(2024, 5, 6, tzinfo=TZ), STEP, len(t)), values)


CONFIG = BacktestConfig(horizon_steps=8, first_issue=14 * 96, issue_every=13, refit_every=96)


class Spy:
    """Records what the harness hands over and checks it ends before the issue time."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.fit_end: datetime | None = None

    def fit(self, history: Series) -> Spy:
        self.fit_end = history.end
        return self

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        assert recent.end <= horizon.start, "harness passed data from after the issue time"
        assert self.fit_end is not None and self.fit_end <= horizon.start
        assert not recent.values_kw.flags.writeable
        self.log.append((horizon.start, recent.end, self.fit_end))
        zeros = np.zeros(horizon.n)
        return QuantileForecast(horizon, zeros, zeros, zeros)


class Peeker:
    """A cheater: it tries to forecast by reading values at and after the issue time from
    whatever it is given. It can only succeed if the harness leaks the future."""

    def fit(self, history: Series) -> Peeker:
        self.history = history
        return self

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        k0 = round((horizon.start - recent.horizon.start) / STEP)
        future = recent.values_kw[k0 : k0 + horizon.n]  # empty unless the harness leaks
        p = np.zeros(horizon.n)
        p[: len(future)] = future
        return QuantileForecast(horizon, p, p, p)


class Oracle:
    """Forecasts from the truth it was built with (outside the harness): scores perfectly."""

    def __init__(self, truth: Series) -> None:
        self.truth = truth

    def fit(self, history: Series) -> Oracle:
        return self

    def predict(self, horizon: Horizon, recent: Series) -> QuantileForecast:
        k0 = round((horizon.start - self.truth.horizon.start) / STEP)
        p = self.truth.values_kw[k0 : k0 + horizon.n]
        return QuantileForecast(horizon, p, p, p)


def test_harness_only_passes_data_from_before_the_issue_time():
    log: list = []
    rolling_origin(_series(), {"spy": lambda: Spy(log)}, CONFIG)
    assert log, "the spy was never called"
    assert all(rec_end == issue for issue, rec_end, _ in log)  # all the past, nothing more


def test_peeking_forecaster_cannot_see_the_future_but_an_oracle_would_score_perfectly():
    series = _series()
    result = rolling_origin(
        series,
        {"peeker": Peeker, "oracle": lambda: Oracle(series), "naive": lambda: SeasonalNaive(96)},
        CONFIG,
    )
    rows = {(r.forecaster, r.bucket): r for r in metrics_by_lead(result, references=("naive",))}
    assert rows[("oracle", "all")].mae_kw == 0.0  # the metric would expose a leak ...
    assert rows[("oracle", "all")].skill["naive"] == 1.0
    assert rows[("peeker", "all")].mae_kw > 10.0  # ... and the peeker got nothing to leak


def test_a_history_that_reaches_past_the_issue_time_is_refused():
    series = _series()
    horizon = Horizon(series.horizon.start + 100 * STEP, STEP, 4)
    recent = Series(Horizon(series.horizon.start, STEP, 101), series.values_kw[:101])
    for fc in (Persistence(), SeasonalNaive(96)):
        with pytest.raises(ValueError, match="after the issue time"):
            fc.predict(horizon, recent)


def test_pinball_known_values():
    assert pinball_kw(np.array([10.0]), np.array([8.0]), 0.9)[0] == pytest.approx(1.8)
    assert pinball_kw(np.array([10.0]), np.array([12.0]), 0.9)[0] == pytest.approx(0.2)
    assert pinball_kw(np.array([10.0]), np.array([12.0]), 0.5)[0] == pytest.approx(1.0)


def test_metrics_of_a_known_forecast():
    series = _series()
    result = rolling_origin(series, {"oracle": lambda: Oracle(series)}, CONFIG)
    shifted = {k: v.copy() for k, v in result.quantiles_kw.items()}
    shifted["oracle"][1] += 2.0  # P50 2 kW high, band [truth, truth] misses above
    shifted["oracle"][2] += 4.0
    result = type(result)(result.issues, result.truth_kw, shifted, result.step_h)
    row = next(r for r in metrics_by_lead(result) if r.bucket == "all")
    assert row.mae_kw == pytest.approx(2.0)
    assert row.rmse_kw == pytest.approx(2.0)
    assert row.coverage_frac == 1.0
    assert row.pinball_kw == pytest.approx((0.0 + 0.5 * 2.0 + 0.1 * 4.0) / 3)
