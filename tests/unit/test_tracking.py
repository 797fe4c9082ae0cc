"""Grid-point tracking (controllers.tracking): the local loop between cycles holds the park
meter in the plan's corridor, at the plan's import in a followed DR interval, and never
sends a battery outside its room."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers import tracking
from controllers.mpc import MpcController
from controllers.problem import DrEventRow
from controllers.safety import limits_kw
from controllers.tracking import BatteryRoom, TrackingTarget, correct, target
from tests.unit import factory as f


def _target(cap=math.inf, floor=-math.inf, aim=None, rooms=((0.0, -100.0, 100.0),)):
    return TrackingTarget(
        f.T0,
        f.T0 + f.horizon(1).step,
        500.0,
        cap,
        floor,
        aim,
        tuple(BatteryRoom(f"b{i}", p, lo, hi) for i, (p, lo, hi) in enumerate(rooms)),
    )


def test_inside_the_corridor_and_without_an_aim_nothing_moves() -> None:
    t = _target(cap=600.0, floor=0.0)
    assert correct(t, 550.0) == {"b0": 0.0}


def test_a_reading_over_the_cap_discharges_the_batteries_down_to_it() -> None:
    t = _target(cap=600.0)
    assert correct(t, 650.0) == {"b0": pytest.approx(-50.0)}
    # more than the room: the whole room, no further
    assert correct(t, 900.0) == {"b0": pytest.approx(-100.0)}


def test_an_aim_is_held_both_ways_and_the_change_is_shared_by_room() -> None:
    t = _target(aim=500.0, rooms=((0.0, -30.0, 10.0), (20.0, -70.0, 50.0)))
    down = correct(t, 560.0)  # 60 kW too much import: discharge 60 over 120 kW of room
    assert down["b0"] == pytest.approx(-15.0)
    assert down["b1"] == pytest.approx(20.0 - 45.0)
    up = correct(t, 460.0)  # 40 kW too little (valley filling): charge over 40 kW of room
    assert up["b0"] == pytest.approx(10.0)
    assert up["b1"] == pytest.approx(50.0)


def test_a_reading_taken_after_a_correction_is_not_corrected_twice() -> None:
    t = _target(cap=600.0)
    first = correct(t, 650.0)
    again = correct(t, 600.0, first)  # the meter now reads the cap, with b0 at -50
    assert again == pytest.approx(first)


def test_a_deviation_inside_the_deadband_is_left_alone() -> None:
    t = _target(aim=500.0)
    assert correct(t, 500.0 + tracking.DEADBAND_KW / 2) == {"b0": 0.0}


@settings(max_examples=300, deadline=None)
@given(
    rooms=st.lists(
        st.tuples(st.floats(-200, 200), st.floats(0, 300), st.floats(0, 300)).map(
            lambda x: (x[0], x[0] - x[1], x[0] + x[2])
        ),
        min_size=1,
        max_size=4,
    ),
    cap=st.one_of(st.just(math.inf), st.floats(-500, 2000)),
    floor_gap=st.one_of(st.just(math.inf), st.floats(0, 1000)),
    aim=st.one_of(st.none(), st.floats(-500, 2000)),
    meter=st.floats(-3000, 3000),
)
def test_the_loop_never_leaves_a_room_and_never_moves_the_meter_the_wrong_way(
    rooms, cap, floor_gap, aim, meter
) -> None:
    floor = cap - floor_gap if math.isfinite(cap) else -floor_gap
    t = _target(cap=cap, floor=floor, aim=aim, rooms=rooms)
    out = correct(t, meter)
    for b in t.batteries:
        assert b.lo_kw - 1e-9 <= out[b.name] <= b.hi_kw + 1e-9
    moved = sum(out[b.name] - b.planned_kw for b in t.batteries)
    want = tracking.wanted_change_kw(t, meter)
    # the meter moves toward the goal, never past it
    assert moved * want >= -1e-9
    assert abs(moved) <= abs(want) + 1e-6
    # with room enough the goal is reached
    room = sum(
        (b.hi_kw - b.planned_kw) if want > 0 else (b.planned_kw - b.lo_kw) for b in t.batteries
    )
    if room >= abs(want):
        assert moved == pytest.approx(want, abs=1e-6)


def _plan_problem(**kw):
    bat = f.battery(e_kwh=400, p_kw=200, eta=1.0, soc_min=0.1, soc_max=0.9)
    return f.problem(n=4, step_h=0.25, batteries=[(bat, 200.0)], base_kw=[300.0] * 4, **kw)


def test_the_target_of_a_plan_takes_its_corridor_and_the_rooms_soc_and_bus() -> None:
    p = _plan_problem(import_max_kw=450.0, demand_charge=30.0, month_peak=420.0)
    p = replace(
        p,
        bus_import_max_kw=np.array([380.0]),
        export_max_kw=np.full(4, 100.0),
    )
    r = MpcController().dispatch(p)
    assert r.ok
    sp = {"bat": float(r.assets["bat"].p_kw[0])}
    t = target(p, r, sp, limits_kw(p, 0))
    assert t is not None
    planned = float(r.p_net_kw[0])
    assert t.cap_kw == pytest.approx(min(450.0, max(420.0, planned)))
    assert t.floor_kw == pytest.approx(-100.0)
    assert t.aim_kw is None
    (room,) = t.batteries
    lo, hi = limits_kw(p, 0)["bat"]
    # discharging more may not make the bus export beyond the same limit
    bus_plan = float(r.bus_p_kw["b1"][0])
    assert room.lo_kw == pytest.approx(max(lo, sp["bat"] - max(380.0 + bus_plan, 0.0)))
    # charging more may not take the bus over its 380 kW limit
    assert room.hi_kw == pytest.approx(min(hi, sp["bat"] + max(380.0 - bus_plan, 0.0)))
    # a stale battery is not moved: no target
    assert target(p, r, sp, limits_kw(p, 0), frozenset({"bat"})) is None


def test_inside_a_followed_dr_interval_the_aim_is_the_plans_import() -> None:
    p = _plan_problem(dr_max=np.array([250.0, 250.0, np.inf, np.inf]))
    row = DrEventRow("E1", 1.0, np.array([True, True, False, False]))
    p = replace(p, dr_rows=(row,))
    r = MpcController().dispatch(p)
    sp = {"bat": float(r.assets["bat"].p_kw[0])}
    t = target(p, r, sp, limits_kw(p, 0))
    assert t.aim_kw == pytest.approx(float(r.p_net_kw[0]))
    assert t.cap_kw <= 250.0 + 1e-6
    assert any("E1" in w for w in t.why)
    declined = replace(p, dr_rows=(replace(row, follow=False),), dr_import_max_kw=None)
    r2 = MpcController().dispatch(declined)
    assert target(declined, r2, sp, limits_kw(declined, 0)).aim_kw is None
