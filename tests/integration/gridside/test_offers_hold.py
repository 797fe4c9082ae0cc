"""Flexibility offers that hold: the min and max import per interval that the service serves
(``/api/v1/flexibility``), the VENs report and the outstation sends can be dispatched. For
intervals across the horizon, pinning the park's import at either edge of the offer (the
dispatch's import corridor closed to that one value in that interval) solves optimally with
no constraint relaxed, and the plan's import there is the edge."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controllers.mpc import MpcController
from tests.service_kit import T0, make_runtime, small_site
from vpp.gridside.offers import offer


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    db = tmp_path_factory.mktemp("offers") / "vpp.sqlite3"
    rt = make_runtime(f"sqlite:///{db}", site=small_site(), at=T0)
    cur = rt.run_cycle(trigger="test")
    assert cur is not None and cur.problem is not None and not cur.plan.relaxed
    return cur


def _pinned(problem, k: int, p_kw: float):
    n = problem.n
    top = np.array(
        problem.dr_import_max_kw if problem.dr_import_max_kw is not None else [np.inf] * n
    )
    low = np.array(
        problem.dr_import_min_kw if problem.dr_import_min_kw is not None else [-np.inf] * n
    )
    top[k], low[k] = p_kw, p_kw
    return dataclasses.replace(problem, dr_import_max_kw=top, dr_import_min_kw=low)


@pytest.mark.parametrize("edge", ["min", "max"])
@pytest.mark.parametrize("k", [0, 3, 8, 15])
def test_an_edge_of_the_offer_can_be_dispatched(planned, edge, k):
    off = offer(planned.problem, planned.plan)
    p_kw = float((off.p_import_min_kw if edge == "min" else off.p_import_max_kw)[k])
    res = MpcController().dispatch(_pinned(planned.problem, k, p_kw))
    assert res.ok, res.status
    assert res.relaxed == [], [(r.constraint, r.asset, r.amount) for r in res.relaxed]
    assert float(res.p_net_kw[k]) == pytest.approx(p_kw, abs=0.5)


def test_beyond_the_offer_the_dispatch_must_relax(planned):
    """The check has teeth: 200 kW past the edge cannot be held without relaxing."""
    off = offer(planned.problem, planned.plan)
    k = 3
    res = MpcController().dispatch(_pinned(planned.problem, k, float(off.p_import_min_kw[k]) - 200))
    assert res.relaxed, "pinned below the offer's minimum, yet nothing relaxed"
