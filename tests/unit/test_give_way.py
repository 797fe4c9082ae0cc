"""Who gives way, named: priorities (``give_way``) set the order in which EV sessions,
shiftable loads and curtailable loads give way to a DR call or a limit, and every plan names
who gave way, by how much, and to which limit (:mod:`controllers.give_way`).

The scenes: two cars of different priorities on one park whose connection or DR cap leaves
room for only one; the same with the cars swapped (the priority decides, not the order); a
bus import limit, a network row and a PEDF converter as the binding limit; the weight rule
and its defaults (no priority configured keeps today's weights)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controllers import costs, give_way
from controllers.mpc import MpcController, _key
from controllers.problem import NetworkConstraint, PedfInput, ShiftableWindow
from tests.unit import factory as f
from vpp.park.model import BaseLoad, GiveWay, PedfBuilding, Penalties, Profile

FIRST, NORMAL, LAST = GiveWay.FIRST, GiveWay.NORMAL, GiveWay.LAST


def _two_cars(van: GiveWay, staff: GiveWay, **kw):
    """Two 10 kW cars needing 30 kWh each over 4 h beside a 100 kW base load."""
    cars = [
        (f.charger("van-ev"), [f.session("van@1", 0, 4, 30.0, give_way=van)]),
        (f.charger("staff-ev"), [f.session("staff@1", 0, 4, 30.0, give_way=staff)]),
    ]
    return f.problem(n=4, price=[0.5] * 4, evs=cars, **kw)


def _ev_short(result) -> dict[str, float]:
    return {r.asset: r.amount for r in result.relaxed if r.constraint == "ev_energy"}


@pytest.mark.parametrize("aggregate", [False, True], ids=["per-slot", "virtual-evs"])
def test_under_a_tight_connection_the_car_that_gives_way_first_is_short_and_named(aggregate):
    # 112.5 kW at the connection leaves 12.5 kW for the cars: 50 of the 60 kWh they need.
    p = _two_cars(van=LAST, staff=FIRST, import_max_kw=112.5)
    r = give_way.explain(p, MpcController(ev_aggregate=aggregate).dispatch(p))
    assert _ev_short(r) == {"staff@1": pytest.approx(10.0, abs=1e-3)}
    assert r.assets["van-ev"].p_kw.sum() == pytest.approx(30.0, abs=1e-3)
    (rel,) = [x for x in r.relaxed if x.constraint == "ev_energy"]
    assert rel.reason.startswith("give_way first; gave way to the connection import limit in ")
    (note,) = give_way.give_way(p, r)
    assert (note.asset, note.device, note.give_way) == ("staff@1", "staff-ev", "first")
    assert note.amount_kwh == pytest.approx(10.0, abs=1e-3) and note.avoidable
    assert [c.limit for c in note.causes] == ["import_limit"]


def test_the_priority_decides_not_the_order_of_the_chargers():
    p = _two_cars(van=FIRST, staff=LAST, import_max_kw=112.5)
    r = MpcController().dispatch(p)
    assert _ev_short(r) == {"van@1": pytest.approx(10.0, abs=1e-3)}


@pytest.mark.parametrize("aggregate", [False, True], ids=["per-slot", "virtual-evs"])
def test_under_a_dr_cap_the_relaxation_names_the_session_its_kwh_and_the_event(aggregate):
    # Both cars charge at full power in hours 0-1 (20 kWh each); the cap leaves 5 kW for
    # them in hours 2-3: the van takes its last 10 kWh, the staff car is 10 kWh short.
    cap = np.array([np.inf, np.inf, 105.0, 105.0])
    p = _two_cars(van=LAST, staff=FIRST, dr_max=cap)
    r = MpcController(ev_aggregate=aggregate).dispatch(p)
    r = give_way.explain(p, r, dr_event_at=["", "", "DR-7", "DR-7"])
    assert _ev_short(r) == {"staff@1": pytest.approx(10.0, abs=1e-3)}
    (rel,) = [x for x in r.relaxed if x.constraint == "ev_energy"]
    assert rel.describe() == (
        "ev_energy on staff@1: short by 10.000 kWh: give_way first; gave way to the DR cap "
        "of event DR-7 in 02:00-04:00"
    )
    # Without the plan layer's event names the cap is named generically.
    generic = give_way.give_way(p, MpcController(ev_aggregate=aggregate).dispatch(p))
    assert generic[0].causes[0].label == "the DR cap"


def test_with_no_priority_configured_the_weights_are_todays():
    pen = Penalties()
    assert pen.give_way_cny_per_kwh("ev_energy", NORMAL) == pen.ev_energy_cny_per_kwh == 2000.0
    assert pen.give_way_cny_per_kwh("shiftable_energy", NORMAL) == 2000.0
    # A curtailable load gives way first by default: its own cost, no penalty (today's).
    assert f.curtailable().give_way is FIRST
    assert pen.give_way_cny_per_kwh("comfort", FIRST) == 0.0
    assert f.session("s", 0, 4, 1.0).give_way is NORMAL
    assert f.shiftable().give_way is NORMAL
    # One 10 kW car needing 30 kWh with 5 kW of room: 10 kWh short at 2,000 per kWh.
    p = f.problem(n=4, price=[0.5] * 4, import_max_kw=105.0,
                  evs=[(f.charger(), [f.session("s", 0, 4, 30.0)])])  # fmt: skip
    r = MpcController().dispatch(p)
    assert r.objective_penalty == pytest.approx(2000.0 * 10.0, rel=1e-6)


def test_the_weight_rule_keeps_the_global_order():
    pen = Penalties()
    ladder = [pen.give_way_cny_per_kwh("ev_energy", x) for x in (FIRST, NORMAL, LAST)]
    assert ladder == [1000.0, 2000.0, 4000.0]
    assert ladder[-1] < pen.dr_cny_per_kwh < pen.soc_bounds_cny_per_kwh
    assert pen.soc_bounds_cny_per_kwh < pen.connection_cny_per_kwh
    comfort = [pen.give_way_cny_per_kwh("comfort", x) for x in (FIRST, NORMAL, LAST)]
    assert comfort == [0.0, 2000.0, 4000.0]
    # The operator may say otherwise: a last factor of 3 puts the vans above DR.
    bold = Penalties(give_way_last_factor=3.0)
    assert bold.give_way_cny_per_kwh("ev_energy", LAST) > bold.dr_cny_per_kwh


def test_an_operator_who_puts_last_above_dr_keeps_the_van_full_and_the_dr_cap_gives_way():
    cap = np.array([np.inf, np.inf, 105.0, 105.0])
    p = _two_cars(van=LAST, staff=LAST, dr_max=cap)
    p = dataclasses.replace(p, penalties=Penalties(give_way_last_factor=3.0))
    r = MpcController().dispatch(p)
    assert _ev_short(r) == {}
    assert {x.constraint for x in r.relaxed} == {"dr_import_cap"}


def test_shiftable_loads_give_way_by_priority():
    quick = dataclasses.replace(f.shiftable("wash", e=20.0), give_way=FIRST)
    slow = dataclasses.replace(f.shiftable("kiln", e=20.0), give_way=LAST)
    win = [ShiftableWindow(0, 4, 20.0)]
    # 5 kW of room for 40 kWh over 4 h: the wash gives way (20 kWh short, all of it).
    p = f.problem(n=4, price=[0.5] * 4, import_max_kw=105.0,
                  shiftables=[(quick, win), (slow, win)])  # fmt: skip
    r = give_way.explain(p, MpcController().dispatch(p))
    short = {x.asset: x.amount for x in r.relaxed if x.constraint == "shiftable_energy"}
    assert short == {"wash": pytest.approx(20.0, abs=1e-3)}
    (rel,) = [x for x in r.relaxed if x.constraint == "shiftable_energy"]
    assert "give_way first; gave way to the connection import limit" in rel.reason


def test_comfort_ranked_normal_outlasts_a_car_that_gives_way_first():
    """Under a DR cap a curtailable load at give_way first is shed for its cost before any
    car; one at normal only after the car that gives way first, and is then named."""
    cap = np.array([np.inf, np.inf, 100.0, 100.0])
    hvac = dataclasses.replace(f.curtailable("hvac", frac=0.5, cost=0.5), give_way=NORMAL)
    cars = [(f.charger("staff-ev"), [f.session("staff@1", 0, 4, 30.0, give_way=FIRST)])]
    # 80 kW base + 20 kW HVAC: the cap leaves nothing for the car in hours 2-3.
    p = f.problem(n=4, price=[0.5] * 4, base_kw=[80.0] * 4, dr_max=cap, evs=cars,
                  curtailables=[(hvac, np.full(4, 20.0))])  # fmt: skip
    r = give_way.explain(p, MpcController().dispatch(p), dr_event_at=["", "", "DR-1", "DR-1"])
    assert _ev_short(r) == {"staff@1": pytest.approx(10.0, abs=1e-3)}
    assert r.assets["hvac"].detail["curtail_kw"].max() < 1e-6
    # A tighter cap: the car has nothing left to give, so the HVAC gives way and is named.
    p = dataclasses.replace(p, dr_import_max_kw=np.array([np.inf, np.inf, 90.0, 90.0]))
    r = give_way.explain(p, MpcController().dispatch(p), dr_event_at=["", "", "DR-1", "DR-1"])
    (comfort,) = [x for x in r.relaxed if x.constraint == "comfort"]
    assert (comfort.asset, comfort.steps) == ("hvac", (2, 3))
    assert comfort.amount == pytest.approx(20.0, abs=1e-3)
    assert "gave way to the DR cap of event DR-1 in 02:00-04:00" in comfort.reason


def test_comfort_at_give_way_first_is_curtailed_for_its_cost_and_is_no_relaxation():
    cap = np.array([np.inf, np.inf, 100.0, 100.0])
    hvac = f.curtailable("hvac", frac=0.5, cost=0.5)
    p = f.problem(n=4, price=[0.5] * 4, base_kw=[90.0] * 4, dr_max=cap,
                  curtailables=[(hvac, np.full(4, 20.0))])  # fmt: skip
    r = MpcController().dispatch(p)
    assert r.relaxed == []
    assert r.assets["hvac"].detail["curtail_kw"][2:] == pytest.approx([10.0, 10.0], abs=1e-3)
    causes = give_way.curtailment_causes(p, r, 2, ["", "", "DR-1", "DR-1"])
    assert [c.label for c in causes["hvac"]] == ["the DR cap of event DR-1"]


def test_a_bus_limit_and_a_network_row_are_named():
    cars = [(dataclasses.replace(f.charger("ev"), bus="b2"), [f.session("s", 0, 4, 30.0)])]
    p = f.problem(n=4, price=[0.5] * 4, evs=cars, buses=("b1", "b2"))
    bus = dataclasses.replace(p, bus_import_max_kw=np.array([np.inf, 5.0]))
    (note,) = give_way.give_way(bus, MpcController().dispatch(bus))
    assert [c.label for c in note.causes] == ["the import limit of bus b2"]
    row = NetworkConstraint("T2 loading r1", "T2", np.array([0.0, 1.0]), np.full(4, 5.0))
    net = dataclasses.replace(p, network=(row,))
    (note,) = give_way.give_way(net, MpcController().dispatch(net))
    assert [(c.limit, c.label) for c in note.causes] == [("network", "the network limit of T2")]
    assert note.amount_kwh == pytest.approx(10.0, abs=1e-3)


def test_a_pedf_flexible_load_gives_way_to_its_converter():
    flex = dataclasses.replace(f.curtailable("pedf-flex", frac=0.5), give_way=NORMAL)
    spec = PedfBuilding(
        "pedf", "b1", converter_kw=50.0, pv=f.pv_array("pedf-pv", 40.0),
        battery=f.battery("pedf-bat", e_kwh=100, p_kw=40, eta=1.0),
        base_load=BaseLoad("pedf-base", "b1", Profile("simbench:G1-A", 80.0)),
        flexible_load=flex,
    )  # fmt: skip
    # 40 kW base + 20 kW flexible behind a 50 kW converter, the battery empty: 10 kW shed.
    pe = PedfInput(spec, np.zeros(4), np.full(4, 40.0), np.full(4, 20.0), 0.0, 0.0)
    p = dataclasses.replace(f.problem(n=4, price=[0.5] * 4), pedfs=(pe,))
    r = give_way.explain(p, MpcController().dispatch(p))
    (comfort,) = [x for x in r.relaxed if x.constraint == "comfort"]
    assert comfort.amount == pytest.approx(40.0, abs=1e-3)
    assert "the converter of PEDF building pedf" in comfort.reason


def test_an_unreachable_shortfall_stays_physically_impossible():
    # 5 kWh beyond full power, and 5 kW of room for the 20 kWh it can still get: 10 short.
    car = f.session("s", 0, 2, 20.0, e_unreachable_kwh=5.0)
    p = f.problem(n=4, price=[0.5] * 4, import_max_kw=105.0, evs=[(f.charger(), [car])])
    r = MpcController().dispatch(p)
    notes = give_way.give_way(p, r)
    (fate,) = [n for n in notes if not n.avoidable]
    assert fate.reason.startswith("physically impossible: departs at 02:00")
    assert fate.amount_kwh == pytest.approx(5.0)
    shown = {x.avoidable: x for x in give_way.explain(p, r).relaxed}
    assert shown[True].amount == pytest.approx(10.0, abs=1e-3)
    assert shown[True].reason.startswith("give_way normal; gave way to the connection import")
    assert shown[False].reason.startswith("departs at 02:00")  # kept as unavoidable() gave it


def test_session_priorities_are_values_shiftable_and_comfort_priorities_structure():
    ctrl = MpcController()
    for van, staff in ((LAST, FIRST), (FIRST, LAST), (NORMAL, NORMAL)):
        ctrl.dispatch(_two_cars(van=van, staff=staff, import_max_kw=112.5))
    assert ctrl.builds == 1  # an EV session's weight is a Parameter
    a = f.problem(shiftables=[(f.shiftable(), [ShiftableWindow(0, 4, 5.0)])])
    b = f.problem(
        shiftables=[
            (dataclasses.replace(f.shiftable(), give_way=LAST), [ShiftableWindow(0, 4, 5.0)])
        ]
    )
    c = dataclasses.replace(a, penalties=Penalties(give_way_first_factor=0.25))
    keys = {_key(x, True, False, 2, 2) for x in (a, b, c)}
    assert len(keys) == 3


def test_the_numpy_yardstick_prices_priorities_as_the_optimiser_does():
    cap = np.array([np.inf, np.inf, 90.0, 90.0])
    hvac = dataclasses.replace(f.curtailable("hvac", frac=0.5, cost=0.5), give_way=LAST)
    cars = [(f.charger("staff-ev"), [f.session("staff@1", 0, 4, 30.0, give_way=FIRST)])]
    p = f.problem(n=4, price=[0.5] * 4, base_kw=[80.0] * 4, dr_max=cap, evs=cars,
                  curtailables=[(hvac, np.full(4, 20.0))])  # fmt: skip
    r = MpcController().dispatch(p)
    terms = costs.evaluate(p, r)
    assert terms["penalties"] == pytest.approx(r.terms_cny["penalties"], rel=1e-6)
