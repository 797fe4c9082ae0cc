"""The closed loop's DR feedback (:meth:`vpp.sim.dr_calls.DrCalls.progress`) attributes each
past interval among every event the park took, those whose windows are over included.

Two pre-agreed peak-shaving calls overlap as on the manufacturing DR week: DA 14:00-17:00
asking 300 kW, ID 15:30-18:00 asking 200 kW (DA, the stricter, owns the shared 15:30-17:00).
The park imports 1,600 kW against a flat 2,000 kW baseline all afternoon: DA delivers 400 kW
in each of its 12 intervals. At 17:00 DA's window is over and the plan sees only ID. Before
the fix ID was credited with DA's 6 shared intervals (600 kWh "delivered" of the 300 kWh it
had asked so far), so the plan aimed ID's remaining hour at a *negative* response and the
settlement found ID at -83 % (seed 0 of the DR week)."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.accounting.dr_history import DailyBaselines
from vpp.park.model import (
    DemandResponseEvent,
    DrContractType,
    DrDirection,
    DrWindow,
)
from vpp.sim.dr_calls import DrCalls, visible_events

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)
DAY = datetime(2026, 7, 22, tzinfo=TZ)


def _event(event_id: str, start_h: float, end_h: float, kw: float) -> DemandResponseEvent:
    return DemandResponseEvent(
        event_id,
        DrDirection.PEAK_SHAVING,
        (DrWindow(DAY + timedelta(hours=start_h), DAY + timedelta(hours=end_h)),),
        kw,
        cleared_kw=kw,
        contract_type=DrContractType.PRE_AGREED,
        announce_time=DAY - timedelta(days=1),
    )


@pytest.fixture
def calls() -> DrCalls:
    events = (_event("DA", 14.0, 17.0, 300.0), _event("ID", 15.5, 18.0, 200.0))
    base = DailyBaselines("Asia/Shanghai", STEP, events, lambda d: d.weekday() < 5)
    for k in range(1, 15):  # two weeks of flat 2,000 kW days before the calls
        base.add_day(date(2026, 7, 22) - timedelta(days=k), np.full(96, 2000.0))
    c = DrCalls(events, base, DAY, STEP)
    for k in range(96):  # the run's realised import: 1,600 kW from 14:00
        c.meter(1600.0 if k >= 56 else 2000.0)
    return c


def test_an_ended_overlapping_event_keeps_its_intervals(calls) -> None:
    at = DAY + timedelta(hours=17)
    seen = visible_events(calls.events, at, calls.decided)
    assert [e.event_id for e in seen] == ["ID"]  # DA's window is over
    # ID owns no interval before 17:00 (DA owned the shared 15:30-17:00): nothing metered
    # for it yet, and DA, over, is not the plan's any more.
    assert calls.progress(at, seen) == {}


def test_while_both_run_the_shared_intervals_are_the_stricter_events(calls) -> None:
    at = DAY + timedelta(hours=16, minutes=30)
    seen = visible_events(calls.events, at, calls.decided)
    got = calls.progress(at, seen)
    assert got["DA"].intervals_done == 10  # 14:00-16:30
    assert got["DA"].delivered_kwh == pytest.approx(10 * 400.0 * 0.25)
    assert "ID" not in got  # no interval of its own yet


def test_after_17_the_event_still_running_counts_only_its_own_intervals(calls) -> None:
    at = DAY + timedelta(hours=17, minutes=30)
    got = calls.progress(at, visible_events(calls.events, at, calls.decided))
    assert got["ID"].intervals_done == 2  # 17:00 and 17:15
    assert got["ID"].delivered_kwh == pytest.approx(2 * 400.0 * 0.25)
