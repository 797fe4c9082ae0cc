"""Forecast bands calibrated on the measured error (forecasts.error_bands,
vpp.plan.calibrated): a biased forecast gets a band that covers its bias, an honest one a
band as wide as its error, and too few samples keep the forecaster's own band."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasts.error_bands import LEAD_EDGES, ErrorBands, lead_group
from vpp.park.state import Forecasts

STEP_S = 900.0
N = 96


def _run(bands: ErrorBands, truth_fn, forecast_fn, cycles: int, name: str = "load") -> None:
    """``cycles`` cycles: each issues a forecast of N intervals from its start, then the
    interval just started is measured."""
    for c in range(cycles):
        start = c * STEP_S
        t = start + np.arange(N) * STEP_S
        bands.issue(start, {name: forecast_fn(t)})
        bands.observe(name, start, float(truth_fn(np.array([start]))[0]))


def test_lead_groups_cover_the_horizon():
    assert lead_group(0) == 0
    assert lead_group(LEAD_EDGES[0]) == 1
    assert lead_group(10_000) == len(LEAD_EDGES)


def test_a_forecast_biased_low_gets_a_band_that_covers_the_bias():
    bands = ErrorBands(STEP_S, min_samples=24)
    # the truth is 20 % above the forecast, always
    _run(bands, lambda t: np.full(len(t), 120.0), lambda t: np.full(len(t), 100.0), 400)
    fc = bands.calibrate(Forecasts({"load": np.full(N, 100.0)}))
    assert fc.source.endswith("+calibrated")
    # every lead group has been measured (400 cycles > the longest lead of 96)
    np.testing.assert_allclose(fc.p90["load"], 120.0, rtol=1e-9)
    # the P10 sits at or above the P50: the forecast never ran high
    assert np.all(fc.p10["load"] >= 100.0 - 1e-9)


def test_too_few_samples_keep_the_forecasters_own_band():
    bands = ErrorBands(STEP_S, min_samples=1000)
    _run(bands, lambda t: np.full(len(t), 120.0), lambda t: np.full(len(t), 100.0), 50)
    own = Forecasts(
        {"load": np.full(N, 100.0)}, {"load": np.full(N, 90.0)}, {"load": np.full(N, 110.0)}
    )
    assert bands.calibrate(own) is own


def test_pv_band_is_zero_where_the_forecast_is_zero():
    bands = ErrorBands(STEP_S, min_samples=10, nonneg_zero=frozenset({"pv"}))

    def sun(t):  # a day's half-sine, zero at night
        h = (t / 3600.0) % 24
        return np.where((h > 6) & (h < 18), 500 * np.sin(np.pi * (h - 6) / 12), 0.0)

    _run(bands, lambda t: 0.8 * sun(t), sun, 600, name="pv")
    start = 600 * STEP_S
    p50 = sun(start + np.arange(N) * STEP_S)
    fc = bands.calibrate(Forecasts({"pv": p50}))
    dark = p50 <= 0
    assert dark.any()
    assert np.all(fc.p10["pv"][dark] == 0) and np.all(fc.p90["pv"][dark] == 0)
    # by day the PV ran 20 % under its forecast: the P10 is about 0.8 x P50 at midday
    noon = np.argmax(p50)
    assert 0.7 * p50[noon] < fc.p10["pv"][noon] < 0.85 * p50[noon]


def test_a_rerun_of_the_same_interval_does_not_count_twice():
    bands = ErrorBands(STEP_S, min_samples=1)
    bands.issue(0.0, {"load": np.full(N, 100.0)})
    bands.observe("load", 0.0, 150.0)
    bands.observe("load", 0.0, 150.0)
    assert bands.samples("load") == 1


@settings(max_examples=40, deadline=None)
@given(
    bias=st.floats(-0.3, 0.3),
    spread=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**16),
)
def test_the_calibrated_p90_covers_about_ninety_percent_of_fresh_errors(bias, spread, seed):
    """Errors drawn from one distribution: the band calibrated on a week of them covers
    about 90 % of the next day's (and the P10 about 10 %), at every lead."""
    rng = np.random.default_rng(seed)
    level = 200.0
    bands = ErrorBands(STEP_S, min_samples=50)
    draws = rng.uniform(bias - spread, bias + spread, size=800)
    for c in range(700):
        start = c * STEP_S
        bands.issue(start, {"load": np.full(N, level)})
        bands.observe("load", start, level * (1 + draws[c]))
    fc = bands.calibrate(Forecasts({"load": np.full(N, level)}))
    floor = 0.05 * level
    fresh = level * (1 + draws[700:])
    for k in (0, 2, 8, 30, 90):
        hi, lo = fc.p90["load"][k], fc.p10["load"][k]
        # the relative error is against p50 + floor: the band is a little wider than the error
        assert np.mean(fresh <= hi + 1e-6) >= 0.75
        assert np.mean(fresh >= lo - 1e-6) >= 0.75
        assert hi <= level * (1 + bias + spread) * (1 + floor / level) + 1e-6


def test_the_calibrated_forecaster_reads_only_the_past():
    """In the closed loop the wrapper reads the measured history up to the decision time and
    never after it (the history raises LeakError on a read of the future)."""
    from vpp.park.model import Horizon
    from vpp.park.state import PlantState
    from vpp.plan.calibrated import CalibratedForecaster, history_measured
    from vpp.plan.history_forecasters import MeasuredHistory

    class Flat:
        source = "flat"

        def forecast(self, site, horizon, state):
            return Forecasts({"load": np.full(horizon.n, 100.0)}, source="flat")

    step = timedelta(minutes=15)
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    hist = MeasuredHistory(t0, step, ["load"])
    fc = CalibratedForecaster(Flat(), history_measured(hist), step, [], ["load"])
    fc.bands.min_samples = 5
    for c in range(200):
        at = t0 + c * step
        out = fc.forecast(None, Horizon(at, step, 8), PlantState(at=at))
        hist.append(at, {"load": 130.0})
    assert hist.now == at
    assert out.source == "flat+calibrated"
    np.testing.assert_allclose(out.p90["load"][0], 130.0, rtol=1e-6)


def test_many_samples_of_a_few_intervals_keep_the_forecasters_own_band():
    """Every cycle's forecast covers a measured interval: 48 samples of the long leads can be
    one afternoon's. Until a day's distinct intervals are measured in a lead group, the group
    keeps the forecaster's own band; after it, the measured error counts."""
    bands = ErrorBands(STEP_S, min_samples=48)  # min_intervals: a day (96 at 15 minutes)
    own = Forecasts(
        {"load": np.full(N, 100.0)}, {"load": np.full(N, 90.0)}, {"load": np.full(N, 110.0)}
    )
    # 80 cycles of a forecast eight times too low: hundreds of samples, but no lead group has
    # a day of distinct intervals (80 for the next interval, 32 for the leads of 48 and more).
    _run(bands, lambda t: np.full(len(t), 800.0), lambda t: np.full(len(t), 100.0), 80)
    assert bands.samples("load") > 48 * 4
    assert bands.calibrate(own) is own
    # a day and a bit later every group has a day of distinct intervals: calibrated
    _run_from(bands, 80, 300)
    fc = bands.calibrate(own)
    assert fc is not own
    np.testing.assert_allclose(fc.p90["load"], 800.0, rtol=1e-9)


def _run_from(bands: ErrorBands, first: int, last: int) -> None:
    for c in range(first, last):
        start = c * STEP_S
        bands.issue(start, {"load": np.full(N, 100.0)})
        bands.observe("load", start, 800.0)
