"""controllers.ev_allocate: priority allocation of chargers under group, bus and connection
limits (golden cases and a hypothesis property: no limit that held goes over)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.ev_allocate import Allocator, allocate, pick
from controllers.problem import EvChargerInput, GroupRow
from tests.unit import factory as f
from vpp.park.model import EvCharger


def _garage(n_ch=3, p_max=7.0, p_min=0.0, base=10.0, import_max=1e6, rows=(), steps=()):
    evs = [(f.charger(f"c{i}", p_max=p_max, p_min=p_min), []) for i in range(n_ch)]
    p = f.problem(n=2, base_kw=[base, base], evs=evs, import_max_kw=import_max)
    chs = tuple(EvChargerInput(c.spec, c.sessions, tuple(steps)) for c in p.ev_chargers)
    return dataclasses.replace(p, ev_chargers=chs, group_rows=tuple(rows))


def test_priority_order_fills_a_pod_first_come_first_served():
    pod = GroupRow("pod", "import", ("c0", "c1", "c2"), (1.0, 1.0, 1.0), 10.0)
    p = _garage(rows=[pod])
    got = allocate(["c2", "c0", "c1"], {"c0": 7.0, "c1": 7.0, "c2": 7.0}, p, 0)
    assert got == pytest.approx({"c2": 7.0, "c0": 3.0, "c1": 0.0}, abs=1e-12)


def test_steps_round_down_and_a_later_charger_takes_what_is_left():
    pod = GroupRow("pod", "import", ("c0", "c1", "c2"), (1.0, 1.0, 1.0), 10.0)
    p = _garage(rows=[pod], steps=(0.0, 1.7, 3.3, 5.0, 6.6))
    got = allocate(["c0", "c1", "c2"], {"c0": 7.0, "c1": 7.0, "c2": 7.0}, p, 0)
    # 6.6 for c0; 3.4 left: c1 takes 3.3; 0.1 left: nothing fits c2.
    assert got == pytest.approx({"c0": 6.6, "c1": 3.3, "c2": 0.0}, abs=1e-12)


def test_minimum_power_gives_zero_rather_than_over_a_limit():
    # The case: two chargers with p_min 1.664 on a 1.0 kW bus group, both wanting.
    pod = GroupRow("bus", "import", ("c0", "c1"), (1.0, 1.0), 1.0)
    p = _garage(n_ch=2, p_min=1.664, rows=[pod])
    got = allocate(["c0", "c1"], {"c0": 1.664, "c1": 1.664}, p, 0)
    assert got == {"c0": 0.0, "c1": 0.0}


def test_connection_and_fixed_part_limit_the_total():
    p = _garage(base=10.0, import_max=20.0)
    got = allocate(["c0", "c1", "c2"], {"c0": 7.0, "c1": 7.0, "c2": 7.0}, p, 1)
    assert got == pytest.approx({"c0": 7.0, "c1": 3.0, "c2": 0.0})
    # A charger not in order is taken from base_kw: c2 draws 5 kW of the connection's room.
    got = allocate(["c0", "c1"], {"c0": 7.0, "c1": 7.0}, p, 1, base_kw={"base": 10.0, "c2": 5})
    assert got == pytest.approx({"c0": 5.0, "c1": 0.0})


def test_bus_limit_counts_only_that_bus():
    a = EvCharger("a", "b1", 7.0, 0.0, False, 1.0)
    b = EvCharger("b", "b2", 7.0, 0.0, False, 1.0)
    p = f.problem(n=1, base_kw=[2.0], evs=[(a, []), (b, [])], buses=("b1", "b2"))
    p = dataclasses.replace(p, bus_import_max_kw=np.array([5.0, np.inf]))
    got = allocate(["a", "b"], {"a": 7.0, "b": 7.0}, p, 0)
    assert got == pytest.approx({"a": 3.0, "b": 7.0})  # base 2 kW sits on b1


def test_a_row_already_over_by_its_fixed_part_gets_no_more_and_export_rows_never_bind():
    over = GroupRow("pod", "import", ("c0",), (1.0,), 5.0, np.array([6.0, 6.0]))
    export = GroupRow("pod", "export", ("c1",), (-1.0,), 0.0, np.array([-1.0, -1.0]))
    p = _garage(rows=[over, export])
    got = allocate(["c0", "c1"], {"c0": 7.0, "c1": 7.0}, p, 0)
    assert got == {"c0": 0.0, "c1": 7.0}


def test_phase_row_coefficients_scale_the_room():
    # A line-pair charger loads a phase row with coefficient 0.5: 4 kW of room = 8 kW.
    ph = GroupRow("pair", "phase_A", ("c0", "c1"), (0.5, 0.5), 4.0)
    p = _garage(n_ch=2, p_max=7.0, rows=[ph])
    got = allocate(["c0", "c1"], {"c0": 7.0, "c1": 7.0}, p, 0)
    assert got == pytest.approx({"c0": 7.0, "c1": 1.0})


def test_bad_input_names_what_is_wrong():
    p = _garage()
    with pytest.raises(ValueError, match="'nope' in order is not a charger"):
        allocate(["nope"], {}, p, 0)
    with pytest.raises(ValueError, match="appears twice"):
        allocate(["c0", "c0"], {}, p, 0)
    with pytest.raises(ValueError, match="outside the horizon"):
        allocate(["c0"], {}, p, 5)
    with pytest.raises(ValueError, match="'pv9' in base_kw"):
        allocate(["c0"], {}, p, 0, base_kw={"pv9": 1.0})


def test_pick():
    assert pick(5.0, (0.0, 2.0, 4.0, 6.0), 0.0, 7.0) == 4.0
    assert pick(1.9, (0.0, 2.0), 0.0, 7.0) == 0.0
    assert pick(9.0, (0.0, 2.0, 8.0), 0.0, 7.0) == 2.0  # steps above p_max are not allowed
    assert pick(1.5, (), 1.664, 7.0) == 0.0
    assert pick(3.2, (), 1.664, 7.0) == 3.2


# --------------------------------------------------------------------------------------------
# Property: for random rows (any sign), steps, wants and fixed parts, no limit that held with
# the chargers at 0 goes over, no power is above its want or not an allowed one.
# --------------------------------------------------------------------------------------------
N_CH = 5


@st.composite
def cases(draw):
    n_rows = draw(st.integers(0, 4))
    rows = []
    for j in range(n_rows):
        members = draw(st.lists(st.integers(0, N_CH - 1), min_size=1, max_size=N_CH, unique=True))
        coeff = draw(st.lists(st.floats(-1.0, 1.5), min_size=len(members), max_size=len(members)))
        lim = draw(st.floats(0.0, 30.0))
        fixed = draw(st.floats(-5.0, 15.0))
        rows.append(
            GroupRow(
                f"g{j}",
                "import",
                tuple(f"c{i}" for i in members),
                tuple(coeff),
                lim,
                np.array([fixed]),
            )
        )
    steps = draw(
        st.one_of(
            st.just(()),
            st.lists(st.floats(0.5, 11.0), min_size=1, max_size=5).map(
                lambda s: (0.0, *sorted(set(s)))
            ),
        )
    )
    p_min = draw(st.floats(0.0, 4.0))
    wants = draw(st.lists(st.floats(-1.0, 12.0), min_size=N_CH, max_size=N_CH))
    base = draw(st.floats(0.0, 40.0))
    import_max = draw(st.floats(0.0, 60.0))
    order = draw(st.permutations([f"c{i}" for i in range(N_CH)]))
    return rows, steps, p_min, wants, base, import_max, order


@settings(max_examples=300, deadline=None)
@given(cases())
def test_no_limit_that_held_goes_over(case):
    rows, steps, p_min, wants, base, import_max, order = case
    evs = [(f.charger(f"c{i}", p_max=10.0, p_min=p_min), []) for i in range(N_CH)]
    p = f.problem(n=1, base_kw=[base], evs=evs, import_max_kw=import_max)
    chs = tuple(EvChargerInput(c.spec, (), steps) for c in p.ev_chargers)
    p = dataclasses.replace(p, ev_chargers=chs, group_rows=tuple(rows))
    want = {f"c{i}": w for i, w in enumerate(wants)}
    got = allocate(order, want, p, 0)
    al = Allocator(p)
    before = al.lhs({"base": base}, 0)
    after = al.lhs({"base": base, **got}, 0)
    for b, a in zip(before, after, strict=True):
        assert a <= max(b, 0.0) + 1e-7
    for name, pk in got.items():
        assert pk <= max(want[name], 0.0) + 1e-9
        assert pk <= 10.0 + 1e-9
        if pk > 0:
            assert (pk in steps) if steps else pk >= p_min - 1e-12
