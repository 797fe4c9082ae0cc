"""A cold start that knows what it does not know, and relaxations that work as an alarm.

Cars plugged in hours before the service existed: what the driver assumes (and says it
assumes), what prepare leaves out of the problem because no decision can deliver it any more,
and the penalty the plan carries for the past (none).
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from controllers import costs
from controllers.baselines import UncontrolledController
from controllers.mpc import MpcController
from controllers.problem import Relaxation
from controllers.relaxations import SMALL_KWH, alarm_lines, unavoidable
from tests.unit import factory as f
from vpp.accounting.counterfactual import uncontrolled_shiftable_state
from vpp.park.model import EvCharger, EvSession, Horizon, ShiftableLoad
from vpp.park.state import Assumption, PlantState, ShiftableState
from vpp.plan.prepare import _ev_inputs, _shiftable, assumption_notes

TZ = ZoneInfo("Asia/Shanghai")
H17 = Horizon(datetime(2026, 7, 15, 17, 0, tzinfo=TZ), timedelta(minutes=15), 96)


def at(h: int, m: int = 0) -> datetime:
    return datetime(2026, 7, 15, h, m, tzinfo=TZ)


AC = EvCharger("ac", "b1", 7.0, eta=0.95)


def test_energy_no_decision_can_deliver_is_left_out_and_said_why():
    """A car plugged in at 08:00 that wants 30 kWh and leaves at 17:30, seen first at 17:00
    with nothing delivered: 30 minutes at 7 kW give 3.325 kWh; the rest is no decision's."""
    (ci,) = _ev_inputs((AC,), (EvSession("s", "ac", at(8), at(17, 30), 30.0),), H17)
    (s,) = ci.sessions
    assert s.e_needed_kwh == pytest.approx(7.0 * 0.95 * 0.5)
    assert s.e_unreachable_kwh == pytest.approx(30.0 - 7.0 * 0.95 * 0.5)
    # What can still be delivered is untouched.
    (ci,) = _ev_inputs((AC,), (EvSession("s", "ac", at(8), at(21), 20.0),), H17)
    assert ci.sessions[0].e_needed_kwh == 20.0 and ci.sessions[0].e_unreachable_kwh == 0.0


def test_a_shiftable_window_closing_too_soon_is_capped_at_full_power():
    rig = ShiftableLoad("rig", "b1", 300.0, time(8), time(18), 120.0)
    sh = _shiftable(rig, ShiftableState(), H17)
    (w,) = [w for w in sh.windows if w.start_k == 0]
    assert w.e_kwh == pytest.approx(120.0) and w.e_unreachable_kwh == pytest.approx(180.0)
    sh = _shiftable(rig, ShiftableState(e_done_kwh=250.0), H17)
    (w,) = [w for w in sh.windows if w.start_k == 0]
    assert w.e_kwh == pytest.approx(50.0) and w.e_unreachable_kwh == 0.0


def test_cold_start_with_cars_that_arrived_hours_earlier_has_no_penalty_for_the_past():
    """Before: every car's whole need was a hard target within the horizon and the plan paid
    2,000 per kWh for energy that could only have been delivered before it existed. Now the
    unreachable part is reported (unavoidable, with its reason) and costs nothing."""
    c = f.charger("ev1", p_max=10.0)
    late = [f.session("late", 0, 1, 25.0, e_unreachable_kwh=15.0)]  # 10 kWh reachable
    p = f.problem(n=4, evs=[(c, [f.session("late", 0, 1, 10.0, e_unreachable_kwh=15.0)])])
    for ctl in (MpcController(), UncontrolledController()):
        r = ctl.dispatch(p)
        assert r.ok
        assert r.objective_penalty == pytest.approx(0.0, abs=1e-6)
        assert r.objective_cost_cny + r.objective_penalty + r.objective_preference == (
            pytest.approx(r.objective_cny)
        )
        (rel,) = r.relaxed
        assert not rel.avoidable and rel.amount == pytest.approx(15.0)
        assert "departs at" in rel.reason and "before the energy can be delivered" in rel.reason
        assert costs.evaluate(p, r)["penalties"] == pytest.approx(0.0, abs=1e-6)
    # The same car with its whole need kept (the old prepare) pays for the past.
    old = f.problem(n=4, evs=[(c, late)])
    assert MpcController().dispatch(old).objective_penalty > 1000.0


def test_uncontrolled_shiftable_state():
    rig = ShiftableLoad("rig", "b1", 300.0, time(8), time(18), 120.0)
    st = uncontrolled_shiftable_state(rig, at(9), "Asia/Shanghai", 0.25)
    assert st == ShiftableState(120.0, 4)  # an hour at full power, still running
    st = uncontrolled_shiftable_state(rig, at(17), "Asia/Shanghai", 0.25)
    assert st == ShiftableState(300.0, 0)  # done by 10:30
    assert uncontrolled_shiftable_state(rig, at(19), "Asia/Shanghai", 0.25) is None


def test_assumption_notes_say_what_was_assumed():
    notes = assumption_notes(
        [
            Assumption("a", "e_delivered_kwh", 2.0, "uncontrolled"),
            Assumption("b", "e_delivered_kwh", 3.0, "uncontrolled"),
        ]
    )
    assert notes == ["assumed, not measured: e_delivered_kwh of 2 (total 5.0) on uncontrolled"]
    assert PlantState(at(17)).assumptions == ()


def test_small_relaxations_are_one_line_with_a_count():
    """About 300 shortfalls under 0.1 kWh a day in a garage: one line, not 300."""
    tiny = [Relaxation("ev_energy", f"s{i}", (), 0.05, "kWh") for i in range(300)]
    big = Relaxation("import_limit", "connection", (3, 4), 12.5, "kW")
    fate = Relaxation("ev_energy", "gone", (), 9.0, "kWh", "departs at 17:15", avoidable=False)
    lines = alarm_lines([*tiny, fate, big])
    assert [x.count for x in lines] == [1, 1, 300]
    assert lines[0].text == "import_limit on connection: over by 12.500 kW (steps 3-4)"
    assert lines[1].text == "ev_energy on gone: short by 9.000 kWh: departs at 17:15"
    assert not lines[1].avoidable
    assert lines[2].amount == pytest.approx(15.0) and lines[2].unit == "kWh"
    assert f"300 shortfalls under {SMALL_KWH:g} kWh each" in lines[2].text
    assert alarm_lines([]) == []


def test_unavoidable_reads_the_problem():
    c = f.charger("ev1", p_max=10.0)
    p = f.problem(n=4, evs=[(c, [f.session("s", 0, 2, 20.0, e_unreachable_kwh=4.0)])])
    (r,) = unavoidable(p)
    assert (r.constraint, r.asset, r.amount, r.unit) == ("ev_energy", "s", 4.0, "kWh")
    assert "departs at 02:00" in r.reason and "20.0 kWh" in r.reason
    assert unavoidable(f.problem(n=4)) == []
