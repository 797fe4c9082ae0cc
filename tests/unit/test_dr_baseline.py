"""GB/T 37016-style baselines and delivery ratios, by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from vpp.accounting import dr_baseline as drb
from vpp.park.model import DemandResponseEvent, DrDirection, DrWindow

TZ = timezone(timedelta(hours=8))


def weekday(d: date) -> bool:
    return d.weekday() < 5


def test_five_highest_of_ten_similar_days_excluding_event_days() -> None:
    event_day = date(2026, 7, 15)  # a Wednesday
    daily = {}
    for i in range(1, 22):
        d = event_day - timedelta(days=i)
        daily[d] = np.full(96, 1000.0 + 10 * i)  # older days are higher
    excluded = {event_day - timedelta(days=1)}
    win = slice(56, 64)
    b = drb.baseline_for_day(event_day, daily, win, weekday, excluded)
    cands = drb.similar_days(event_day, daily, weekday, excluded, 10)
    assert len(cands) == 10 and all(weekday(d) for d in cands)
    assert event_day - timedelta(days=1) not in cands
    top5 = sorted(cands)[:5]  # the oldest five have the highest load
    assert b.days_used == tuple(top5)
    expected = np.mean([1000.0 + 10 * (event_day - d).days for d in top5])
    np.testing.assert_allclose(b.p_kw, expected)
    assert b.method == "gbt37016_5of10"


def test_rest_days_use_three_of_five() -> None:
    sunday = date(2026, 7, 19)
    daily = {sunday - timedelta(days=i): np.full(96, float(i)) for i in range(1, 36)}
    b = drb.baseline_for_day(sunday, daily, slice(0, 96), weekday)
    assert len(b.days_used) == 3
    assert all(not weekday(d) for d in b.days_used)


def test_delivery_ratio_and_effective_band() -> None:
    t = datetime(2026, 7, 15, 14, tzinfo=TZ)
    e = DemandResponseEvent(
        "e1", DrDirection.PEAK_SHAVING, (DrWindow(t, t + timedelta(hours=2)),), 100.0
    )
    base = np.full(8, 1000.0)
    d = drb.delivery(e, base, np.full(8, 910.0), 0.25)
    assert d.requested_kwh == pytest.approx(200.0)
    assert d.delivered_kwh == pytest.approx(180.0)
    assert d.ratio == pytest.approx(0.9) and d.effective
    assert not drb.delivery(e, base, np.full(8, 950.0), 0.25).effective  # 50 %
    assert not drb.delivery(e, base, np.full(8, 850.0), 0.25).effective  # 150 %
    fill = DemandResponseEvent("e2", DrDirection.VALLEY_FILLING, e.windows, 100.0)
    assert drb.delivery(fill, base, np.full(8, 1100.0), 0.25).ratio == pytest.approx(1.0)


def test_no_similar_day_is_an_error() -> None:
    with pytest.raises(ValueError, match="similar day"):
        drb.baseline_for_day(date(2026, 7, 15), {}, slice(0, 4), weekday)


def _event(start: datetime, hours: float = 1.0, **kw) -> DemandResponseEvent:
    w = DrWindow(start, start + timedelta(hours=hours))
    return DemandResponseEvent("E-S", DrDirection.PEAK_SHAVING, (w,), 200.0, **kw)


def test_interval_means_average_readings_and_leave_gaps() -> None:
    start = datetime(2026, 7, 15, tzinfo=TZ).timestamp()
    ts = start + np.array([0.0, 60.0, 899.0, 900.0, 2700.0, -1.0, 3600.0])
    kw = np.array([10.0, 20.0, 30.0, 40.0, np.nan, 99.0, 99.0])
    got = drb.interval_means(ts, kw, start, 900.0, 4)
    np.testing.assert_allclose(got[:2], [20.0, 40.0])
    assert np.isnan(got[2]) and np.isnan(got[3])  # nothing, and only a NaN reading


def test_settle_against_five_of_ten_days_from_the_meter() -> None:
    step = timedelta(minutes=15)
    day = date(2026, 7, 15)  # Wednesday
    meter_start = datetime(2026, 7, 1, tzinfo=TZ)
    n_days = (day - meter_start.date()).days
    meter = []
    for i in range(n_days):
        d = meter_start.date() + timedelta(days=i)
        meter.append(np.full(96, 1000.0 + 10 * i if weekday(d) else 500.0))
    event_day = np.full(96, 1800.0)
    event_day[34:38] = 1500.0  # 08:30-09:30 shaved
    kw = np.concatenate([*meter, event_day])
    ev = _event(datetime(2026, 7, 15, 8, 30, tzinfo=TZ), cleared_kw=500.0)
    s = drb.settle(ev, meter_start, step, kw, weekday)
    # the five newest workdays before the 15th have the highest load (newer = higher here)
    top5 = [d for d in (day - timedelta(days=k) for k in range(1, 15)) if weekday(d)][:5]
    assert s.method == "gbt37016_5of10" and s.days_used == tuple(sorted(top5))
    base = np.mean([1000.0 + 10 * (d - meter_start.date()).days for d in top5])
    np.testing.assert_allclose(s.baseline_kw, base)
    np.testing.assert_allclose(s.realised_kw, 1500.0)
    assert s.delivery.delivered_kwh == pytest.approx(base - 1500.0)  # one hour
    assert s.delivery.requested_kwh == pytest.approx(500.0)
    assert s.intervals_metered == 4 and len(s.times) == 4 and s.step == step


def test_settle_without_history_uses_the_hour_before_and_counts_only_metered() -> None:
    step = timedelta(minutes=15)
    meter_start = datetime(2026, 7, 15, tzinfo=TZ)
    kw = np.full(96, np.nan)
    kw[30:34] = [2000.0, 2100.0, 1900.0, 2000.0]  # 07:30-08:30
    kw[34:37] = 1600.0  # the last window interval has no reading
    ev = _event(datetime(2026, 7, 15, 8, 30, tzinfo=TZ), import_cap_kw=1600.0)
    s = drb.settle(ev, meter_start, step, kw, weekday)
    assert s.method == "pre_event_mean_1h" and s.days_used == ()
    np.testing.assert_allclose(s.baseline_kw, 2000.0)
    assert s.intervals_metered == 3
    assert s.delivery.delivered_kwh == pytest.approx(3 * 400.0 * 0.25)
    assert s.delivery.requested_kwh == pytest.approx(3 * 400.0 * 0.25)  # baseline - cap
    assert s.delivery.ratio == pytest.approx(1.0) and s.delivery.effective
    with pytest.raises(ValueError, match="no baseline"):
        drb.settle(ev, meter_start, step, np.full(96, np.nan), weekday)
