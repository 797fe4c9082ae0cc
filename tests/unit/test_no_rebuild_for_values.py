"""Values are Parameters of the built model, not its structure (issue #21 item 6): a battery's
end value set on its spec, changed every solve, rebuilds nothing, and each solve still sees
its own value; a changed rating (structure) does rebuild."""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import numpy as np
import pytest

from controllers.mpc import MpcController
from tests.unit import factory as f


def _problem(value: float, p_kw: float = 50.0):
    bat = dataclasses.replace(f.battery(p_kw=p_kw), terminal_value_cny_per_kwh=value)
    return f.problem(n=4, price=[0.5, 0.5, 0.5, 0.5], batteries=[(bat, 50.0)], terminal=value)


def test_ten_solves_with_ten_end_values_build_one_model_and_follow_each_value():
    ctrl = MpcController()
    ends = []
    for value in np.linspace(0.0, 1.0, 10):
        r = ctrl.dispatch(_problem(float(value)))
        assert r.ok
        ends.append(float(r.assets["bat"].e_kwh[-1]))
    assert ctrl.builds == 1
    # Below the price x efficiency charging does not pay (the battery ends where it can sell
    # down to); above it, it ends full: the plan follows the value it was given.
    assert ends[0] == pytest.approx(0.0, abs=1e-6)
    assert ends[-1] == pytest.approx(100.0, abs=1e-6)
    assert all(b >= a - 1e-6 for a, b in pairwise(ends))


def test_a_changed_rating_is_structure_and_rebuilds():
    ctrl = MpcController()
    ctrl.dispatch(_problem(0.3))
    ctrl.dispatch(_problem(0.3, p_kw=40.0))
    assert ctrl.builds == 2
