"""The measured history refuses the future; the naive forecaster uses only the past."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.park.model import Horizon
from vpp.park.state import PlantState
from vpp.plan.history_forecasters import HistoryForecaster, LeakError, MeasuredHistory, NaiveModel

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)


def history(days: int, start: datetime, names: list[str]) -> MeasuredHistory:
    h = MeasuredHistory(start, STEP, names)
    n = days * 96
    h.extend({x: np.arange(n, dtype=float) % 96 for x in names})
    return h


def test_reading_at_or_after_the_decision_time_raises() -> None:
    t0 = datetime(2026, 7, 1, tzinfo=TZ)
    h = history(3, t0, ["a"])
    h.now = t0 + timedelta(days=2)
    assert h.window("a", h.now - STEP, 1)[0] == 95.0
    with pytest.raises(LeakError):
        h.window("a", h.now - STEP, 2)
    with pytest.raises(LeakError):
        h.window("a", h.now, 1)
    assert h.series("a", 1).values_kw[-1] == 95.0  # the last day, ending at now
    with pytest.raises(ValueError):
        h.append(t0, {"a": 1.0})  # not the next interval


def test_naive_forecast_reads_only_the_past() -> None:
    site = tiny_site(horizon_steps=96)
    from vpp.plan.history_forecasters import asset_names

    pv, loads = asset_names(site)
    t0 = datetime(2026, 7, 1, tzinfo=TZ)
    h = history(14, t0, [*pv, *loads])
    at = t0 + timedelta(days=14)
    fc = HistoryForecaster(NaiveModel(site), h)
    f = fc.forecast(site, Horizon(at, STEP, 96), PlantState(at=at))
    assert h.now == at
    for name in loads:
        # Yesterday's pattern (same kind of day), corrected towards the last value.
        assert f.p50[name].shape == (96,)
        assert np.all(f.p10[name] <= f.p50[name] + 1e-9)
        assert np.all(f.p50[name] <= f.p90[name] + 1e-9)
    for name in pv:
        assert np.all(f.p50[name] >= 0)


def test_the_first_workday_after_spring_festival_is_forecast_from_a_workday() -> None:
    """After the nine-day 2026 holiday (15-23 February) the last workday is more than a week
    back: the seasonal lag must reach it, not take the holiday a week earlier."""
    from vpp.park.calendar import is_workday

    model = NaiveModel(tiny_site())
    first = datetime(2026, 2, 24, 9, 0, tzinfo=TZ)
    assert is_workday(first.date()) and not is_workday((first - timedelta(days=7)).date())
    lags = model._lags(Horizon(first, STEP, 4), now=first)
    back = next(d for d in range(1, 14) if is_workday((first - timedelta(days=d)).date()))
    assert back > 7 and lags[0, 0] == back
    # An ordinary Wednesday still looks at yesterday first.
    wed = datetime(2026, 7, 15, 9, 0, tzinfo=TZ)
    assert model._lags(Horizon(wed, STEP, 4), now=wed)[0].tolist() == [1, 7, 14]
