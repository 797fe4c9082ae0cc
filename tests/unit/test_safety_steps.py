"""The safety layer's rounding of chargers to allowed powers (controllers.step_rounding).

Property (issue 16): for random nested limit groups (kW and per-phase current limits) and
chargers with pilot steps or a minimum power, and random plans (over-limit ones included),
the setpoints the safety layer sends never exceed any group, bus or connection limit, and
each charger is sent a power it can take.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.phase_rows import phase_currents_a
from controllers.problem import BaseLoadInput, EvChargerInput
from controllers.safety import clamp
from tests.unit import factory as f
from vpp.park.config import load_site
from vpp.park.model import (
    Assets,
    EvCharger,
    LimitGroup,
    PilotCurrents,
    charger_steps_kw,
)
from vpp.plan.group_rows import group_rows

ROOT = Path(__file__).resolve().parents[2]
DEMO = load_site(ROOT / "configs" / "parks" / "demo.yaml")
V = 400.0
CONNS = ("three_phase", "A", "B", "C", "AB", "BC", "CA")
TOL = 1e-6


@st.composite
def parks(draw):
    n_ch = draw(st.integers(2, 9))
    chargers = []
    for i in range(n_ch):
        conn = draw(st.sampled_from(CONNS))
        kind = draw(st.sampled_from(["range", "list", "continuous"]))
        pilot = None
        p_min = 0.0
        if kind == "range":
            pilot = PilotCurrents(6.0, draw(st.sampled_from([16.0, 32.0])), 1.0)
        elif kind == "list":
            pilot = PilotCurrents(values_a=(8.0, 16.0, 24.0, 32.0))
        else:
            p_min = draw(st.sampled_from([0.0, 1.4, 1.664, 4.1]))
        bus = draw(st.sampled_from(["b1", "b2"]))
        chargers.append(
            EvCharger(f"c{i}", bus, 22.0, p_min, eta=1.0, phase=conn, voltage_v=V, pilot=pilot)
        )
    names = [c.name for c in chargers]
    groups = []
    for j in range(draw(st.integers(1, 4))):
        own = tuple(draw(st.lists(st.sampled_from(names), max_size=4, unique=True)))
        kids = tuple(g.name for g in groups if draw(st.booleans()))
        if not own and not kids:
            own = (names[j % len(names)],)
        limit = draw(st.floats(0.0, 40.0))
        phase = draw(st.one_of(st.none(), st.floats(0.0, 60.0)))
        groups.append(
            LimitGroup(
                f"g{j}",
                assets=own,
                groups=kids,
                import_max_kw=limit,
                phase_current_max_a=phase,
                voltage_v=V,
            )
        )
    bus_max = np.array([draw(st.floats(3.0, 80.0)), draw(st.floats(3.0, 80.0))])
    conn_max = draw(st.floats(6.0, 120.0))
    plan = {c.name: draw(st.floats(-5.0, 30.0)) for c in chargers}
    needs = [draw(st.booleans()) for _ in chargers]
    return chargers, tuple(groups), bus_max, conn_max, plan, needs


def _problem(chargers, groups, bus_max, conn_max, needs):
    site = dataclasses.replace(
        DEMO, assets=Assets(ev_chargers=tuple(chargers)), limit_groups=groups
    )
    rows = group_rows(site, 2, lambda name: np.zeros(2))
    p = f.problem(n=2, step_h=0.25, base_kw=[1.0, 1.0], import_max_kw=conn_max, buses=("b1", "b2"))
    evs = tuple(
        EvChargerInput(
            c, (f.session(f"s{c.name}", 0, 2, 20.0 if need else 0.0, 22.0),), charger_steps_kw(c)
        )
        for c, need in zip(chargers, needs, strict=True)
    )
    # Base loads of 1 kW on each bus, outside the groups: within every bus and connection limit.
    base = (BaseLoadInput("base", "b1", np.ones(2)), BaseLoadInput("base2", "b2", np.ones(2)))
    return dataclasses.replace(
        p, ev_chargers=evs, group_rows=rows, bus_import_max_kw=bus_max, base_loads=base
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parks())
def test_sent_setpoints_keep_every_group_bus_and_connection_limit(park):
    chargers, groups, bus_max, conn_max, plan, needs = park
    p = _problem(chargers, groups, bus_max, conn_max, needs)
    sent, _ = clamp(p, dict(plan), plan_bus_kw={"b1": 0.0, "b2": 0.0}, plan_net_kw=0.0)
    spec = {c.name: c for c in chargers}
    # Each charger gets a power it can take.
    for c in p.ev_chargers:
        x = sent[c.spec.name]
        if c.steps_kw:
            assert min(abs(x - s) for s in c.steps_kw) < TOL, (c.spec.name, x, c.steps_kw)
        else:
            assert x == 0.0 or c.spec.p_min_kw - TOL <= x <= c.spec.p_max_kw + TOL
    # Independent oracle: sums and true phasor currents, not the rows.
    site = dataclasses.replace(
        DEMO, assets=Assets(ev_chargers=tuple(chargers)), limit_groups=groups
    )
    from vpp.park.limit_groups import members

    for g in groups:
        m = members(site, g)
        assert sum(sent[x] for x in m) <= g.import_max_kw + TOL
        if g.phase_current_max_a is not None:
            cur = phase_currents_a([(spec[x].phase, V, sent[x]) for x in m])
            assert max(abs(i) for i in cur.values()) <= g.phase_current_max_a + 1e-6
    for i, b in enumerate(("b1", "b2")):
        on = sum(sent[c.name] for c in chargers if c.bus == b) + 1.0
        assert on <= bus_max[i] + TOL
    assert sum(sent.values()) + 2.0 <= conn_max + TOL


def test_the_issues_two_chargers_on_a_1_kw_bus_get_nothing():
    """Two chargers at 1.664 kW minimum, a group capped at 1.0 kW, both cars needing energy:
    the plan {0, 1.0} is sent {0, 0}, not 1.664 kW."""
    chargers = [EvCharger(f"c{i}", "b1", 7.0, 1.664, eta=1.0) for i in range(2)]
    groups = (LimitGroup("g", assets=("c0", "c1"), import_max_kw=1.0),)
    p = _problem(chargers, groups, np.array([100.0, 100.0]), 200.0, [True, True])
    sent, events = clamp(p, {"c0": 0.0, "c1": 1.0})
    assert sent == {"c0": 0.0, "c1": 0.0}
    assert "would break group g/import" in next(e.reason for e in events if e.asset == "c1")
    # With room, the car that needs energy is lifted to its minimum, as before.
    roomy = (LimitGroup("g", assets=("c0", "c1"), import_max_kw=2.0),)
    p = _problem(chargers, roomy, np.array([100.0, 100.0]), 200.0, [True, True])
    sent, _ = clamp(p, {"c0": 0.0, "c1": 1.0})
    assert sent == pytest.approx({"c0": 0.0, "c1": 1.664})


def test_steps_round_to_the_nearest_within_limits_and_shed_the_last_priority():
    pilot = PilotCurrents(values_a=(8.0, 16.0, 24.0, 32.0))
    chargers = [EvCharger(f"c{i}", "b1", 22.2, eta=1.0, pilot=pilot) for i in range(3)]
    step = charger_steps_kw(chargers[0])[1]  # 8 A on three phases at 400 V: 5.54 kW
    groups = (LimitGroup("pod", assets=("c0", "c1", "c2"), import_max_kw=3.5 * step),)
    p = _problem(chargers, groups, np.array([100.0, 100.0]), 200.0, [True] * 3)
    # A plan over the pod's limit (4.9 steps; 4 rounded down): shed the last charger first.
    sent, events = clamp(p, {"c0": 2.0 * step, "c1": 1.6 * step, "c2": 1.3 * step})
    assert sum(sent.values()) <= 3.5 * step + TOL
    assert sent["c0"] == pytest.approx(2 * step)  # on a step: kept
    assert sent["c1"] == pytest.approx(step)  # 1.6 would round up, but that breaks the pod
    assert sent["c2"] == pytest.approx(0.0)  # stepped down: the pod was over
    why = {e.asset: e.reason for e in events}
    assert "would break group pod/import" in why["c1"]
    # Within the limit, a plan rounds to the nearest step where there is room.
    roomy = (LimitGroup("pod", assets=("c0", "c1", "c2"), import_max_kw=4.0 * step),)
    p = _problem(chargers, roomy, np.array([100.0, 100.0]), 200.0, [True] * 3)
    sent, _ = clamp(p, {"c0": 1.6 * step, "c1": 1.6 * step, "c2": 0.4 * step})
    assert [sent[c] / step for c in ("c0", "c1", "c2")] == pytest.approx([2.0, 2.0, 0.0])


def test_a_load_lifted_to_its_minimum_power_keeps_the_group_rows():
    """A shiftable load at 5 kW minimum planned at 3 kW (over half its minimum) in a group
    capped at 4 kW: sent 0, not 5 kW; with a 6 kW cap it is lifted, as before."""
    from controllers.problem import GroupRow, ShiftableInput, ShiftableWindow

    for cap, expect in ((4.0, 0.0), (6.0, 5.0)):
        sh = ShiftableInput(
            f.shiftable("pump", p_max=10.0, p_min=5.0), (ShiftableWindow(0, 2, 10.0),)
        )
        p = dataclasses.replace(
            f.problem(n=2, step_h=0.25, base_kw=[1.0, 1.0]),
            shiftables=(sh,),
            group_rows=(GroupRow("g", "import", ("pump",), (1.0,), cap),),
        )
        sent, events = clamp(p, {"pump": 3.0}, plan_bus_kw={"b1": 4.0}, plan_net_kw=4.0)
        assert sent["pump"] == pytest.approx(expect)
        if expect == 0.0:
            assert "group g/import" in next(e.reason for e in events if e.asset == "pump")


def _with_need(p, e_kwh: float, departure_k: int | None = None):
    """``p`` with each charger's session needing ``e_kwh`` (and leaving at ``departure_k``)."""
    out = []
    for ch in p.ev_chargers:
        s = dataclasses.replace(ch.sessions[0], e_needed_kwh=e_kwh)
        if departure_k is not None:
            s = dataclasses.replace(s, departure_k=departure_k)
        out.append(dataclasses.replace(ch, sessions=(s,)))
    return dataclasses.replace(p, ev_chargers=tuple(out))


def test_a_car_that_rounding_down_would_leave_short_goes_up_and_may_take_room_from_one_with_time():
    """Two intervals of 15 min left, a car that needs a little more than one step now and full
    power next: rounded down it could not finish, so it goes to the step above. In a pod with
    room for 3 steps, where another car planned at 2 steps needs little, that car gives a step:
    the late car gets 2 steps, the pod stays within its limit, and the car with time keeps
    enough to finish in the next interval."""
    pilot = PilotCurrents(values_a=(8.0, 16.0, 24.0, 32.0))
    c0 = EvCharger("c0", "b1", 22.2, eta=1.0, pilot=pilot)
    c1 = EvCharger("c1", "b1", 22.2, eta=1.0, pilot=pilot)
    step = charger_steps_kw(c0)[1]
    pod = (LimitGroup("pod", assets=("c0", "c1"), import_max_kw=3.0 * step + 1e-3),)
    p = _problem([c0, c1], pod, np.array([100.0, 100.0]), 200.0, [True, True])
    late_need = (1.2 * step + 4 * step) * 0.25  # 1.2 steps now, full power (4 steps) next
    evs = (
        _with_need(p, late_need).ev_chargers[0],
        _with_need(p, 0.5 * step * 0.25).ev_chargers[1],
    )
    p = dataclasses.replace(p, ev_chargers=evs)
    sent, events = clamp(p, {"c0": 1.2 * step, "c1": 2.0 * step})
    assert sent["c0"] == pytest.approx(2 * step)
    assert sent["c1"] == pytest.approx(step)
    assert sent["c0"] + sent["c1"] <= 3.0 * step + 1e-3
    why = {e.asset: e.reason for e in events}
    assert "give room to c0" in why["c1"]
    # With 1.2 steps of need left after this interval's full power later, not behind: nearest.
    easy = dataclasses.replace(
        p, ev_chargers=(_with_need(p, 1.2 * step * 0.25).ev_chargers[0], evs[1])
    )
    sent, _ = clamp(easy, {"c0": 1.2 * step, "c1": 2.0 * step})
    assert sent["c0"] == pytest.approx(step) and sent["c1"] == pytest.approx(2 * step)


def test_a_car_in_its_last_interval_is_rounded_up_where_there_is_room():
    """Rounding down takes energy no later interval gives back when the car leaves at the
    end of this one: it goes to the step above (within every limit), not the nearest."""
    pilot = PilotCurrents(values_a=(8.0, 16.0, 24.0, 32.0))
    c = EvCharger("c0", "b1", 22.2, eta=1.0, pilot=pilot)
    step = charger_steps_kw(c)[1]
    roomy = (LimitGroup("pod", assets=("c0",), import_max_kw=4.0 * step),)
    p = _problem([c], roomy, np.array([100.0, 100.0]), 200.0, [True])
    # 2 kWh to go and a second interval to come: nearest, 1 step (the next interval makes up).
    p_small = _with_need(p, 2.0)
    assert clamp(p_small, {"c0": 1.2 * step})[0]["c0"] == pytest.approx(step)
    last = dataclasses.replace(
        p,
        ev_chargers=tuple(
            dataclasses.replace(ch, sessions=(dataclasses.replace(ch.sessions[0], departure_k=1),))
            for ch in p.ev_chargers
        ),
    )
    assert clamp(last, {"c0": 1.2 * step})[0]["c0"] == pytest.approx(2 * step)
    tight = (LimitGroup("pod", assets=("c0",), import_max_kw=1.5 * step),)
    last_tight = dataclasses.replace(
        last, group_rows=_problem([c], tight, np.array([100.0, 100.0]), 200.0, [True]).group_rows
    )
    assert clamp(last_tight, {"c0": 1.2 * step})[0]["c0"] == pytest.approx(step)  # no room
