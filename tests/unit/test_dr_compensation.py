"""DR settlement without double counting and DR compensation, on a scenario small enough to
check by hand: 1-hour intervals from 10:00, a flat 1,000 kW baseline.

* A: peak shaving, cleared 100 kW, 10:00-13:00, its own terms 2 CNY/kWh and 10 CNY/kW.
* B: peak shaving, requested 200 kW, 12:00-14:00, the park's defaults (1 CNY/kWh, penalty
  3 CNY/kWh). 12:00 is covered by both: B asks more (200 > 100 kW), so it is B's.
* C: cap-only, 950 kW, 14:00-18:00 (asks 50 kW an hour of the baseline).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from vpp.accounting import dr_baseline as drb
from vpp.park import dr_rules
from vpp.park.model import (
    DemandResponseEvent,
    DrDirection,
    DrStatus,
    DrTerms,
    DrWindow,
    Horizon,
    dr_terms,
)

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 7, 15, 10, tzinfo=TZ)
H = Horizon(T0, timedelta(hours=1), 8)
PARK = DrTerms(subsidy_cny_per_kwh=1.0, nonperformance_cny_per_kwh=3.0, source="test")


def _win(k0: int, k1: int) -> tuple[DrWindow, ...]:
    return (DrWindow(T0 + timedelta(hours=k0), T0 + timedelta(hours=k1)),)


def _ev(event_id, k0, k1, requested_kw=100.0, direction=DrDirection.PEAK_SHAVING, **kw):
    return DemandResponseEvent(event_id, direction, _win(k0, k1), requested_kw, **kw)


A = _ev("A", 0, 3, cleared_kw=100.0, subsidy_cny_per_kwh=2.0, subsidy_cny_per_kw=10.0)
B = _ev("B", 2, 4, requested_kw=200.0)
C = _ev("C", 4, 8, requested_kw=50.0, import_cap_kw=950.0)
BASE = np.full(8, 1000.0)
REAL = np.array([900.0, 900.0, 800.0, 800.0, 950.0, 940.0, 970.0, 1000.0])


def test_an_overlapping_interval_counts_once_for_the_stricter_event() -> None:
    a, b, c = drb.settle_run([B, C, A], H, REAL, BASE, PARK)
    assert [s.event_id for s in (a, b, c)] == ["A", "B", "C"]  # first window, then id
    assert a.owned.tolist() == [True, True, False] and a.shared_with == ("B",)
    assert b.owned.tolist() == [True, True] and b.shared_with == ()
    # A: 10:00 and 11:00 only, 2 x 100 kWh asked and delivered (counting 12:00 too would
    # give 600 of 300 kWh, 200 %, "not effective").
    assert a.delivery.requested_kwh == pytest.approx(200.0)
    assert a.delivery.delivered_kwh == pytest.approx(200.0)
    assert a.delivery.ratio == pytest.approx(1.0) and a.delivery.effective
    assert b.delivery.requested_kwh == pytest.approx(400.0)
    assert b.delivery.delivered_kwh == pytest.approx(400.0)
    total = a.delivery.delivered_kwh + b.delivery.delivered_kwh
    assert total == pytest.approx(float(np.sum(BASE[:4] - REAL[:4])))  # each hour once


def test_ties_go_to_the_earlier_event_and_a_covered_event_can_be_absorbed() -> None:
    inner = _ev("Z-inner", 1, 2, requested_kw=100.0)
    outer = _ev("A-outer", 0, 3, requested_kw=100.0)
    o, i = drb.settle_run([inner, outer], H, REAL, BASE)
    assert o.owned.tolist() == [True, True, True] and i.owned.tolist() == [False]
    assert i.delivery.ratio is None and not i.delivery.effective
    s = drb.summary([o, i])
    assert s["events"] == 1 and s["absorbed"] == 1


def test_a_cap_is_stricter_than_a_target_only_where_it_asks_more() -> None:
    # the cap of 850 kW asks 150 kW of the 1,000 kW baseline: more than a 100 kW target
    cap = _ev("cap", 0, 2, import_cap_kw=850.0)
    tgt = _ev("tgt", 0, 2, requested_kw=100.0)
    covered = np.array([[True, True], [True, True]])
    strict = np.array([dr_rules.strictness_kw(e, BASE[:2]) for e in (cap, tgt)])
    assert dr_rules.attribute(covered, strict).tolist() == [0, 0]
    high_cap = _ev("cap", 0, 2, import_cap_kw=1200.0)  # baseline under the cap: asks nothing
    strict = np.array([dr_rules.strictness_kw(e, BASE[:2]) for e in (high_cap, tgt)])
    assert dr_rules.attribute(covered, strict).tolist() == [1, 1]


def test_a_cap_only_event_is_settled_as_compliance() -> None:
    (c,) = drb.settle_run([C], H, REAL, BASE, PARK)
    d = c.delivery
    # 14:00-18:00 at 950, 940, 970, 1000 kW under a 950 kW cap: 16:00 and 17:00 are over
    # it, by 20 and 50 kWh.
    assert d.compliance.intervals == 4 and d.compliance.intervals_over == 2
    assert d.compliance.e_over_kwh == pytest.approx(70.0)
    assert d.compliance.compliant_frac == pytest.approx(0.5)
    assert d.requested_kwh == pytest.approx(4 * 50.0)
    assert d.delivered_kwh == pytest.approx(4000.0 - 3860.0)
    assert not d.effective
    # the penalty falls on the energy above the cap: 3 CNY/kWh x 70 kWh
    assert c.compensation.shortfall_kwh == pytest.approx(70.0)
    assert c.compensation.penalty_cny == pytest.approx(210.0)
    assert c.compensation.total_cny == pytest.approx(-210.0)


def test_a_cap_the_park_stays_under_asks_nothing_and_is_effective_with_a_null_ratio() -> None:
    """The bug: 0 kWh requested, 2,498 kWh "delivered", ratio 0.0, "not effective"."""
    e = _ev("high-cap", 0, 4, import_cap_kw=1200.0)
    d = drb.delivery(e, BASE[:4], np.full(4, 375.5), 1.0)
    assert d.requested_kwh == 0.0 and d.delivered_kwh == pytest.approx(2498.0)
    assert d.ratio is None
    assert d.compliance.intervals_over == 0 and d.compliance.compliant_frac == 1.0
    assert d.effective
    c = drb.compensation(d, dr_terms(e, PARK))
    assert c.paid_kwh == 0.0 and c.total_cny == 0.0  # nothing asked, nothing paid


def test_a_ratio_with_nothing_requested_is_null() -> None:
    e = _ev("zero", 0, 2, requested_kw=0.0)
    d = drb.delivery(e, BASE[:2], np.full(2, 900.0), 1.0)
    assert d.requested_kwh == 0.0 and d.ratio is None and not d.effective


def test_compensation_per_kwh_and_per_kw_on_an_effective_event() -> None:
    a, b, _ = drb.settle_run([A, B, C], H, REAL, BASE, PARK)
    # A's own terms: 200 kWh x 2 CNY/kWh; mean response 200 kWh / 2 h = 100 kW x 10 CNY/kW
    assert a.terms.subsidy_cny_per_kwh == 2.0 and a.terms.nonperformance_cny_per_kwh == 3.0
    assert a.compensation.paid_kwh == pytest.approx(200.0)
    assert a.compensation.paid_kw == pytest.approx(100.0)
    assert a.compensation.subsidy_energy_cny == pytest.approx(400.0)
    assert a.compensation.subsidy_capacity_cny == pytest.approx(1000.0)
    assert a.compensation.total_cny == pytest.approx(1400.0)
    # B on the park's defaults: 400 kWh x 1 CNY/kWh
    assert b.compensation.total_cny == pytest.approx(400.0)


def test_a_short_response_pays_the_penalty_on_the_shortfall_to_the_band() -> None:
    e = _ev("fill", 0, 2, requested_kw=100.0, direction=DrDirection.VALLEY_FILLING)
    d = drb.delivery(e, BASE[:2], np.full(2, 1050.0), 1.0)  # 100 of 200 kWh: 50 %
    assert d.ratio == pytest.approx(0.5) and not d.effective
    c = drb.compensation(d, dr_terms(e, PARK))
    # shortfall to 80 % of 200 kWh: 160 - 100 = 60 kWh x 3 CNY/kWh; no subsidy
    assert c.shortfall_kwh == pytest.approx(60.0) and c.penalty_cny == pytest.approx(180.0)
    assert c.subsidy_energy_cny == 0.0 and c.total_cny == pytest.approx(-180.0)
    over = drb.delivery(e, BASE[:2], np.full(2, 1150.0), 1.0)  # 150 %: over the band
    assert drb.compensation(over, dr_terms(e, PARK)).total_cny == 0.0


def test_the_run_headline_is_per_event() -> None:
    s = drb.summary(drb.settle_run([A, B, C], H, REAL, BASE, PARK))
    assert s["events"] == 3 and s["effective"] == 2 and s["cap_only"] == 1
    assert s["subsidy_cny"] == pytest.approx(1800.0)
    assert s["penalty_cny"] == pytest.approx(210.0)
    assert s["compensation_cny"] == pytest.approx(1590.0)


def test_declined_events_and_events_outside_the_run_are_left_out() -> None:
    declined = _ev("D", 2, 3, requested_kw=500.0, status=DrStatus.DECLINED)
    late = DemandResponseEvent(
        "L", DrDirection.PEAK_SHAVING, (DrWindow(T0, T0 + timedelta(hours=9)),), 10.0
    )
    (a,) = drb.settle_run([A, declined, late], H, REAL, BASE)
    assert a.owned.all()  # the declined event takes nothing from A


def test_the_service_settlement_attributes_overlaps_alike_for_both_events() -> None:
    """Settled one at a time on the meter (the service's path), the two events share
    their overlapping interval exactly once."""
    step = timedelta(minutes=15)
    meter_start = datetime(2026, 7, 15, tzinfo=TZ)
    kw = np.full(96, np.nan)
    kw[36:40] = 2000.0  # 09:00-10:00, the pre-event baseline
    kw[40:44] = [1900.0, 1900.0, 1700.0, 1700.0]
    t = datetime(2026, 7, 15, 10, tzinfo=TZ)
    e1 = DemandResponseEvent("e1", DrDirection.PEAK_SHAVING, (DrWindow(t, t + 3 * step),), 100.0)
    e2 = DemandResponseEvent(
        "e2", DrDirection.PEAK_SHAVING, (DrWindow(t + 2 * step, t + 4 * step),), 300.0
    )
    s1 = drb.settle(e1, meter_start, step, kw, lambda d: True, others=[e2])
    s2 = drb.settle(e2, meter_start, step, kw, lambda d: True, others=[e1])
    assert s1.owned.tolist() == [True, True, False] and s1.shared_with == ("e2",)
    assert s2.owned.tolist() == [True, True] and s2.shared_with == ()
    assert s1.delivery.delivered_kwh == pytest.approx(2 * 100.0 * 0.25)
    # e2's hour before its window (09:30-10:30) averages 1,950 kW
    assert s2.method == "pre_event_mean_1h"
    assert s2.delivery.delivered_kwh == pytest.approx(2 * (1950.0 - 1700.0) * 0.25)
    assert s1.delivery.ratio == pytest.approx(1.0)
    assert s2.delivery.ratio == pytest.approx(125.0 / 150.0)
