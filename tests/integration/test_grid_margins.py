"""Network margins from forecast error: the AC loop keeps each row's limit far enough from the
rating that any realisation within the error bounds stays within it (real MPC, real AC flow)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from controllers.mpc import MpcController
from vpp.grid import scenarios as grid_scenarios
from vpp.grid.loop import describe, dispatch_ac_feasible, stressed_reports, validate_result
from vpp.grid.network import GridModel
from vpp.park.config import load_site

warnings.filterwarnings("ignore", message=".*numba.*")

ERROR_KW = 150.0  # the load forecast at the B05 building may be this far low, every interval
TOL_PERCENT = 0.5  # linearisation: the loop's rows are exact to first order only


@pytest.fixture(scope="module")
def case():
    site = load_site("configs/parks/demo.yaml")
    problem, site, options = grid_scenarios.ev_valley(site)
    grid = GridModel.from_site(site, options)
    bus = next(t.lv_bus for t in site.network.transformers if t.name == "T-B05")
    up = np.zeros((len(problem.buses), problem.n))
    up[problem.bus_index(bus)] = ERROR_KW
    with_error = dataclasses.replace(problem, bus_error_up_kw=up)
    plain, plain_loop = dispatch_ac_feasible(MpcController(), problem, grid, max_rounds=3)
    result, loop = dispatch_ac_feasible(MpcController(), with_error, grid, max_rounds=4)
    trafo = grid.element_names("trafo").index("T-B05")
    return grid, with_error, result, loop, plain, plain_loop, bus, trafo


def _loading(grid, result, extra: dict[str, np.ndarray], trafo: int) -> np.ndarray:
    p = {b: np.asarray(v, dtype=float) + extra.get(b, 0.0) for b, v in result.bus_p_kw.items()}
    from vpp.grid.network import bus_q_kvar

    q = bus_q_kvar(result.assets, grid.buses, grid.options.load_power_factor)
    q_all = {b: q.get(b, np.zeros_like(v)) for b, v in p.items()}
    return grid.validate(p, q_all).flow.trafo_loading_percent[:, trafo]


def test_the_plan_holds_at_the_error_bound_and_names_the_margin(case) -> None:
    grid, problem, result, loop, plain, plain_loop, bus, trafo = case
    assert loop.feasible and not loop.at_risk_elements
    (stressed,) = stressed_reports(grid, result, problem)
    assert stressed.flow.trafo_loading_percent[:, trafo].max() <= 100.0 + TOL_PERCENT
    # Without the margin the plan sits at the rating and the same error overloads it.
    over = _loading(grid, plain, {bus: np.full(problem.n, ERROR_KW)}, trafo)
    assert plain_loop.feasible and over.max() > 105.0
    rows = [t for t in loop.tightened if t.element == "T-B05"]
    assert rows and max(t.error_margin_max for t in rows) > 5.0  # % of loading kept free
    assert "for forecast error" in "\n".join(describe(loop))
    # The margin has a price, in the plan's own terms.
    assert result.objective_cost_cny > plain.objective_cost_cny


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frac=arrays(np.float64, 96, elements=st.floats(0.0, 1.0)))
def test_any_error_within_the_bound_keeps_the_transformer_within_its_rating(case, frac) -> None:
    grid, problem, result, *_, bus, trafo = case
    assert problem.n == 96
    loading = _loading(grid, result, {bus: frac * ERROR_KW}, trafo)
    assert loading.max() <= 100.0 + TOL_PERCENT


def test_no_error_bounds_no_stressed_checks(case) -> None:
    grid, problem, result, *_ = case
    plain = dataclasses.replace(problem, bus_error_up_kw=None)
    assert stressed_reports(grid, result, plain) == []
    assert validate_result(grid, result).ok
