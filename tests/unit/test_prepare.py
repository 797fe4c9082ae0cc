"""Prepare: timestamps become indices once; DR, sessions and windows map onto the horizon."""

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from vpp.park.config import load_site
from vpp.park.model import (
    DemandResponseEvent,
    DrDirection,
    DrStatus,
    DrWindow,
    EvCharger,
    EvSession,
    Horizon,
    ShiftableLoad,
)
from vpp.park.state import DrProgress, Forecasts, PlantState, ShiftableState
from vpp.plan.dr_targets import dr_targets
from vpp.plan.prepare import _ev_inputs, _shiftable, build_problem, horizon_for

TZ = ZoneInfo("Asia/Shanghai")
H = Horizon(datetime(2026, 7, 15, 8, 0, tzinfo=TZ), timedelta(minutes=15), 96)


def at(h: int, m: int = 0, day: int = 15) -> datetime:
    return datetime(2026, 7, day, h, m, tzinfo=TZ)


def dr_limits(events, horizon, base, margin_kw=0.0, reserve_kw=0.0, progress=None):
    t = dr_targets(events, horizon, base, margin_kw, reserve_kw, progress)
    return t.import_max_kw, t.import_min_kw


def test_peak_shaving_aims_at_the_band_middle_and_a_cap_only_event_stays_a_cap():
    """800 kW asked for an hour against 5000 kW: the plan aims at 100 % (the middle of
    80-120 %) with a corridor of +-10 % of the request; a cap-only event keeps its cap and
    an over-delivery floor at 120 % of what the cap takes off the baseline."""
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
    assert np.all(hi[k18 : k18 + 4] == 4280.0) and np.isinf(hi[:k18]).all()
    assert np.all(lo[k18 : k18 + 4] == 4120.0) and np.isinf(lo[:k18]).all()
    capped = DemandResponseEvent(
        "e2",
        DrDirection.PEAK_SHAVING,
        (DrWindow(at(18), at(19)),),
        800.0,
        import_cap_kw=3000.0,
        status=DrStatus.CONFIRMED,
    )
    hi, lo = dr_limits([capped], H, base)
    assert np.all(hi[k18 : k18 + 4] == 3000.0)
    assert np.all(lo[k18 : k18 + 4] == 5000.0 - 1.2 * 2000.0)  # request = baseline - cap
    # Both at once: each interval is the stricter event's (the cap takes 2000 kW off the
    # baseline, more than 800), with its corridor; the other has no interval of its own.
    t = dr_targets([ev, capped], H, base)
    assert np.all(t.import_max_kw[k18 : k18 + 4] == 3000.0)
    assert np.all(t.import_min_kw[k18 : k18 + 4] == 2600.0)
    assert [r.event_id for r in t.rows] == ["e2"] and t.rows[0].cap_kw == 3000.0


def test_unconfirmed_events_are_not_honoured_and_valley_filling_mirrors_peak_shaving():
    base = np.full(96, 1000.0)
    announced = DemandResponseEvent("a", DrDirection.PEAK_SHAVING, (DrWindow(at(9), at(10)),), 100)
    fill = DemandResponseEvent(
        "f", DrDirection.VALLEY_FILLING, (DrWindow(at(12), at(13)),), 300, status=DrStatus.ACTIVE
    )
    hi, lo = dr_limits([announced, fill], H, base)
    assert np.all(lo[16:20] == 1270.0)  # the request side: the floor, 300 - 30 kW above
    assert np.all(hi[16:20] == 1330.0)
    assert np.isinf(hi[:16]).all() and np.isinf(hi[20:]).all()


def test_the_corridor_is_as_wide_as_the_forecast_error_and_never_a_point():
    """The corridor's half width is the interval's forecast error (at least 10 % of the
    request): a wide error widens it and tightens the energy row to the aim, instead of
    pinning the import at one value (the old clip made cap == floor)."""
    base = np.full(96, 5000.0)
    ev = DemandResponseEvent(
        "e1", DrDirection.PEAK_SHAVING, (DrWindow(at(18), at(19)),), 800.0,
        status=DrStatus.CONFIRMED,
    )  # fmt: skip
    k = slice((18 - 8) * 4, (18 - 8) * 4 + 4)
    hi, lo = dr_limits([ev], H, base, margin_kw=50.0)
    assert np.all(hi[k] == 4280.0) and np.all(lo[k] == 4120.0)
    t = dr_targets([ev], H, base, margin_kw=np.full(96, 2000.0))
    assert np.all(t.import_max_kw[k] == 6200.0) and np.all(t.import_min_kw[k] == 2200.0)
    (row,) = t.rows
    assert row.e_min_kwh == row.e_max_kwh == 800.0  # one interval's error exceeds the band
    assert np.isinf(t.import_max_kw[: k.start]).all()
    fill = DemandResponseEvent(
        "f", DrDirection.VALLEY_FILLING, (DrWindow(at(12), at(13)),), 300, status=DrStatus.ACTIVE
    )
    hi, lo = dr_limits([fill], H, np.full(96, 1000.0), margin_kw=40.0)
    assert np.all(lo[16:20] == 1260.0) and np.all(hi[16:20] == 1340.0)


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


def test_dr_margin_counts_the_loads_forecast_errors_as_independent():
    from tests.unit.test_sim_site import tiny_site
    from vpp.park.state import Forecasts
    from vpp.plan.prepare import _net_spread_kw

    n = 4
    p50 = {x: np.full(n, 100.0) for x in ("base", "hvac", "P1-base", "PV1", "P1-pv")}
    p90 = {"base": np.full(n, 130.0), "hvac": np.full(n, 140.0), "P1-base": np.full(n, 100.0)}
    p10 = {"PV1": np.full(n, 90.0), "P1-pv": np.full(n, 80.0)}
    fc = Forecasts(p50, p10, p90)
    site = tiny_site()
    # Connection and peak limits: every spread summed, 30 + 40 + 0 + 10 + 20.
    np.testing.assert_allclose(_net_spread_kw(site, fc, n), 100.0)
    # DR settlement: loads root-sum-square (50), PV summed (30), the two in quadrature.
    np.testing.assert_allclose(_net_spread_kw(site, fc, n, diversified=True), np.hypot(50, 30))
    assert _net_spread_kw(site, Forecasts(p50), n, diversified=True).tolist() == [0.0] * n


def test_reserve_is_held_for_a_window_ahead_and_dropped_once_it_has_begun():
    base = np.full(96, 5000.0)
    ahead = DemandResponseEvent(
        "a", DrDirection.PEAK_SHAVING, (DrWindow(at(18), at(19)),), 800.0,
        status=DrStatus.CONFIRMED,
    )  # fmt: skip
    k = slice((18 - 8) * 4, (18 - 8) * 4 + 4)
    t = dr_targets([ahead], H, base, margin_kw=50.0, reserve_kw=600.0)
    # planned for a worse forecast: the request side 600 kW further (a soft margin, on the
    # row: DrEventRow.reserve_kw), the row's top 600 kWh higher; the corridor stays at aim
    assert np.all(t.import_max_kw[k] == 5000.0 - 720.0)
    assert np.all(t.import_min_kw[k] == 5000.0 - 880.0)
    (row,) = t.rows
    assert (row.e_min_kwh, row.e_max_kwh, row.e_aim_kwh) == (720.0, 1480.0, 800.0)
    assert np.all(row.reserve_kw[k] == 600.0) and not row.reserve_kw[: k.start].any()
    begun = DemandResponseEvent(
        "b", DrDirection.PEAK_SHAVING, (DrWindow(at(7), at(9)),), 800.0,
        status=DrStatus.ACTIVE,
    )  # fmt: skip
    t = dr_targets([begun], H, base, margin_kw=50.0, reserve_kw=600.0)
    assert np.all(t.import_max_kw[:4] == 4280.0) and np.all(t.import_min_kw[:4] == 4120.0)
    assert np.isinf(t.import_max_kw[4:]).all() and t.rows[0].reserve_kw is None


def test_the_rest_of_a_window_is_re_aimed_from_what_was_delivered_so_far():
    """07:00-09:00 at 800 kW, planned at 08:00: the first hour delivered 1000 kWh of its
    800 (125 %). The event should end at 100 % of 1600 kWh: 600 kWh are left for the four
    intervals ahead, 600 kW each (the old limits asked 800 kW again and ended at 112 %)."""
    base = np.full(96, 5000.0)
    begun = DemandResponseEvent(
        "b", DrDirection.PEAK_SHAVING, (DrWindow(at(7), at(9)),), 800.0,
        status=DrStatus.ACTIVE,
    )  # fmt: skip
    done = {"b": DrProgress(delivered_kwh=1000.0, requested_kwh=800.0, intervals_done=4)}
    t = dr_targets([begun], H, base, progress=done)
    assert np.all(t.import_max_kw[:4] == 5000.0 - 600.0 + 80.0)
    assert np.all(t.import_min_kw[:4] == 5000.0 - 600.0 - 80.0)
    (row,) = t.rows
    assert row.requested_kwh == 1600.0 and row.e_aim_kwh == 600.0
    assert "1,000.0 of 800.0 kWh delivered so far over 4 own intervals" in row.note


def test_a_tail_below_one_interval_at_minimum_power_is_planned_as_that_interval():
    """A DC charger may not run below 6 kW: 0.55 kWh left would be planned at 2.3 kW, which
    the safety layer sends as 0 (the car leaves short); it is planned as one interval at 6 kW
    instead (1.425 kWh into the car at most: the car stops when full)."""
    dc = EvCharger("dc", "b", 60.0, p_min_kw=6.0, eta=0.95)
    tail = EvSession("t", "dc", at(8), at(9), 86.05, e_delivered_kwh=85.5)
    more = EvSession("m", "dc", at(10), at(12), 20.0)
    (ci,) = _ev_inputs((dc,), (tail, more), H)
    assert ci.sessions[0].e_needed_kwh == 6.0 * 0.95 * 0.25
    assert ci.sessions[1].e_needed_kwh == 20.0
    ac = EvCharger("ac", "b", 7.0)  # no minimum power: the tail stays as it is
    (ci,) = _ev_inputs((ac,), (EvSession("a", "ac", at(8), at(9), 3.0, e_delivered_kwh=2.9),), H)
    assert abs(ci.sessions[0].e_needed_kwh - 0.1) < 1e-9


def test_a_negative_forecast_is_planned_as_zero_and_said_so():
    """Loads and PV available are >= 0: a forecaster's value below 0 is planned as 0 (the
    stated rule), and the plan's notes name the asset, the count and the lowest value."""
    site = load_site(Path(__file__).resolve().parents[2] / "configs/parks/flat_offpeak.yaml")
    h = horizon_for(site, at(8))
    names = [b.name for b in site.assets.base_loads] + [p.name for p in site.assets.pv_arrays]
    p50 = {x: np.full(h.n, 100.0) for x in names}
    p50["B1-pv"][:3] = [-2.0, -0.5, 10.0]
    p = build_problem(site, h, PlantState(at=h.start), Forecasts(p50))
    pv = next(x for x in p.pv if x.spec.name == "B1-pv")
    assert pv.p_available_kw[:3].tolist() == [0.0, 0.0, 10.0]
    assert p.notes == ("forecast for 'B1-pv': 2 of 96 values below 0 (lowest -2 kW) planned as 0",)
