"""Prepare: timestamps become indices once; DR, sessions and windows map onto the horizon."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from vpp.model import (
    DemandResponseEvent,
    DrDirection,
    DrStatus,
    DrWindow,
    EvCharger,
    EvSession,
    Horizon,
    ShiftableLoad,
)
from vpp.prepare import _ev_inputs, _shiftable, dr_limits
from vpp.state import ShiftableState

TZ = ZoneInfo("Asia/Shanghai")
H = Horizon(datetime(2026, 7, 15, 8, 0, tzinfo=TZ), timedelta(minutes=15), 96)


def at(h: int, m: int = 0, day: int = 15) -> datetime:
    return datetime(2026, 7, day, h, m, tzinfo=TZ)


def test_peak_shaving_against_baseline_and_cap():
    base = np.full(96, 5000.0)
    ev = DemandResponseEvent(
        "e1",
        DrDirection.PEAK_SHAVING,
        (DrWindow(at(18), at(19)),),
        800.0,
        status=DrStatus.CONFIRMED,
    )
    hi, lo = dr_limits([ev], H, base)
    k18 = (18 - 8) * 4
    assert np.all(hi[k18 : k18 + 4] == 4200.0) and np.isinf(hi[:k18]).all()
    assert np.isinf(lo).all()
    capped = DemandResponseEvent(
        "e2",
        DrDirection.PEAK_SHAVING,
        (DrWindow(at(18), at(19)),),
        800.0,
        import_cap_kw=3000.0,
        status=DrStatus.CONFIRMED,
    )
    hi, _ = dr_limits([ev, capped], H, base)
    assert np.all(hi[k18 : k18 + 4] == 3000.0)


def test_unconfirmed_events_are_not_honoured_and_valley_filling_sets_a_floor():
    base = np.full(96, 1000.0)
    announced = DemandResponseEvent("a", DrDirection.PEAK_SHAVING, (DrWindow(at(9), at(10)),), 100)
    fill = DemandResponseEvent(
        "f", DrDirection.VALLEY_FILLING, (DrWindow(at(12), at(13)),), 300, status=DrStatus.ACTIVE
    )
    hi, lo = dr_limits([announced, fill], H, base)
    assert np.isinf(hi).all()
    assert np.all(lo[16:20] == 1300.0)


def test_ev_session_indices_and_need_beyond_the_horizon():
    c = EvCharger("c1", "b", 10.0, eta=1.0)
    inside = EvSession("s1", "c1", at(9), at(12), 20.0)
    late = EvSession("s2", "c1", at(6, day=16), at(10, day=16), 30.0)  # leaves 2 h after horizon
    (ci,) = _ev_inputs((c,), (inside, late), H)
    s1, s2 = ci.sessions
    assert (s1.arrival_k, s1.departure_k, s1.e_needed_kwh) == (4, 16, 20.0)
    assert s2.departure_k == 96 and s2.departs_after_horizon
    assert s2.e_needed_kwh == 10.0  # 30 kWh minus the 20 kWh that fit in the 2 h after


def test_shiftable_window_across_midnight_with_energy_done():
    s = ShiftableLoad("r", "b", 100.0, time(22), time(6), 20.0)
    inp = _shiftable(s, ShiftableState(e_done_kwh=0.0), H)
    (w,) = inp.windows  # 22:00 today to 06:00 tomorrow
    assert (w.start_k, w.end_k, w.e_kwh) == (56, 88, 100.0)
    h2 = Horizon(at(23), timedelta(minutes=15), 96)
    inp = _shiftable(s, ShiftableState(e_done_kwh=40.0, running_steps=3), h2)
    assert inp.windows[0].start_k == 0 and inp.windows[0].e_kwh == 60.0
    assert inp.running_steps == 3
