"""HiGHS kept between re-solves (controllers.highs_hot): the basis restart and the reduced LP
(fixed columns dropped) give cvxpy's own HiGHS optimum on every re-solve of a model."""

import pytest

from bench.parks import make_problem, perturb
from controllers import costs, invariants
from controllers.highs_hot import HotHighs
from controllers.mpc import MpcController


@pytest.fixture(scope="module")
def problems():
    p = make_problem("S", seed=3)
    return [p] + [perturb(p, s) for s in range(3)]


@pytest.mark.parametrize("mode", ["basis", "reduced", "auto"])
def test_every_mode_matches_a_plain_solve(problems, mode):
    plain = MpcController(hot_start=False)
    hot = MpcController(highs_mode=mode)
    for p in problems:
        ref = plain.dispatch(p)
        r = hot.dispatch(p)
        assert r.objective_cny == pytest.approx(ref.objective_cny, rel=1e-7, abs=1e-6)
        assert invariants.check(p, r) == []
        # The plan itself prices at the objective (fixed columns put back in place).
        assert sum(costs.evaluate(p, r).values()) == pytest.approx(r.objective_cny, rel=1e-6)
    assert hot.builds == 1


def test_reduced_mode_drops_the_fixed_columns(problems):
    ctl = MpcController(highs_mode="reduced")
    ctl.dispatch(problems[0])
    model = next(iter(ctl._models.values()))
    hot = model.hot
    assert hot.mode == "reduced"
    n_full = model.problem.get_problem_data("HIGHS")[0]["c"].size
    assert 0 < hot.h.getNumCol() < n_full


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="HotHighs mode 'fast'"):
        HotHighs("fast")


def test_changed_network_sensitivities_update_the_matrix_in_place(problems):
    """Network rows multiply variables by Parameters: new sensitivities change matrix values.
    They are changed in place (the basis survives) and the optimum is the plain solve's."""
    import dataclasses

    import numpy as np

    from controllers.problem import NetworkConstraint

    p = problems[0]
    nb = len(p.buses)

    def with_row(coeff: float, limit_kw: float):
        row = NetworkConstraint("cable", "L1", np.full(nb, coeff), np.full(p.n, limit_kw))
        return dataclasses.replace(p, network=(row,))

    hot = MpcController(highs_mode="basis")
    plain = MpcController(hot_start=False)
    objectives = []
    for coeff, limit in [(1.0, 700.0), (0.8, 520.0), (1.1, 720.0)]:  # peak ~795 kW
        q = with_row(coeff, limit)
        r = hot.dispatch(q)
        objectives.append(round(r.objective_cny, 3))
        assert r.objective_cny == pytest.approx(plain.dispatch(q).objective_cny, rel=1e-7)
        assert invariants.check(q, r) == []
    model = next(m for m in hot._models.values() if m.hot is not None)
    assert model.hot.loads == 1
    assert model.hot.coeff_updates == 2
    assert len(set(objectives)) == 3  # the row binds: each matrix gives its own optimum


def test_reduced_mode_restarts_from_the_last_basis(problems):
    """From the second interval on, the reduced LP starts from the last basis (by full
    column index) and still gives the plain solve's optimum."""
    plain = MpcController(hot_start=False)
    ctl = MpcController(highs_mode="reduced")
    iters = []
    for p in problems:
        r = ctl.dispatch(p)
        assert r.objective_cny == pytest.approx(plain.dispatch(p).objective_cny, rel=1e-7)
        assert {"lp_reduce_s", "highs_run_s", "lp_restore_s"} <= set(r.timings_s)
        model = next(iter(ctl._models.values()))
        iters.append(model.problem.solver_stats.num_iters)
    hot = next(iter(ctl._models.values())).hot
    assert hot.warm_starts == len(problems) - 1
    assert hot.retries == 0
    # Re-solving the same problem from its own optimal basis takes no iterations.
    ctl.dispatch(problems[-1])
    assert next(iter(ctl._models.values())).problem.solver_stats.num_iters == 0
    assert iters[0] > 0


@pytest.mark.parametrize("case", ["rows", "fixed column"])
def test_reduced_mode_reports_infeasibility_like_a_plain_solve(case):
    """An infeasible LP (in the rows left, or in a row whose columns the bounds fix) gives
    cvxpy's status 'infeasible', from the full LP solved again."""
    import cvxpy as cp

    x = cp.Variable(3, bounds=[0.0, 1.0])
    fixed = cp.Variable(bounds=[2.0, 2.0])
    if case == "rows":
        cons = [x[0] + x[1] >= 3.0, x[2] <= x[0]]
    else:
        cons = [fixed >= 2.5, x[0] + x[1] >= 0.5]
    problem = cp.Problem(cp.Minimize(cp.sum(x) + fixed), cons)
    hot = HotHighs("reduced")
    hot.solve(problem, {"time_limit": 10.0})
    assert problem.status == "infeasible"
    plain = cp.Problem(cp.Minimize(cp.sum(x) + fixed), cons)
    plain.solve(solver=cp.HIGHS)
    assert plain.status == "infeasible"


def test_parallel_dual_simplex_gives_the_serial_optimum(problems, monkeypatch):
    """Two threads (HiGHS's parallel dual simplex, here forced on a small park) and one give
    the same optimum; a thread pool sized otherwise by an earlier solve is rebuilt."""
    import cvxpy as cp
    import highspy

    import controllers.highs_hot as hh

    monkeypatch.setattr(hh, "PARALLEL_MIN_COLS", 0)
    # An earlier plain solve that sizes HiGHS's process-wide pool to one thread.
    highspy.Highs.resetGlobalScheduler(True)
    x = cp.Variable(2, bounds=[0.0, 1.0])
    cp.Problem(cp.Maximize(cp.sum(x))).solve(solver=cp.HIGHS, threads=1)
    serial = MpcController(highs_threads=1)
    parallel = MpcController(highs_threads=2)
    for p in problems:
        a, b = serial.dispatch(p), parallel.dispatch(p)
        assert a.status == b.status == "optimal"
        assert b.objective_cny == pytest.approx(a.objective_cny, rel=1e-7)
        assert invariants.check(p, b) == []
    hot = next(iter(parallel._models.values())).hot
    assert hot.threads == 2 and hot.h.getOptionValue("simplex_strategy")[1] == 2
    assert hot.pool_resets == 1  # the one-thread pool of the plain solve, rebuilt once
