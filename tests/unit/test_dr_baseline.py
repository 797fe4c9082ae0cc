"""GB/T 37016-style baselines and delivery ratios, by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from vpp import dr_baseline as drb
from vpp.model import DemandResponseEvent, DrDirection, DrWindow

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
