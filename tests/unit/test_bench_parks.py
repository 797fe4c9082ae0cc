"""The benchmark's synthetic parks are feasible, keep their structure when perturbed, and the
virtual-EV model (controllers.ev_aggregate) matches the full formulation on the small park."""

import dataclasses

import numpy as np
import pytest

from bench.parks import SIZES, make_problem, perturb
from controllers import costs, invariants
from controllers.ev_aggregate import groups, split
from controllers.mpc import MpcController

GAP_MAX = 1e-3  # the aggregate may cost at most 0.1 % more than the full optimum


def test_sizes_count_their_devices():
    p = make_problem("M", seed=0)
    n_bat, n_ev, n_flex = SIZES["M"]
    assert len(p.batteries) == n_bat
    assert sum(len(c.sessions) for c in p.ev_chargers) == pytest.approx(n_ev, abs=n_ev * 0.05)
    assert len(p.curtailables) + len(p.shiftables) == n_flex
    for ch in p.ev_chargers:
        for s in ch.sessions:
            stay_kwh = s.p_max_kw * ch.spec.eta * (s.departure_k - s.arrival_k) * p.dt_h
            assert 0 < s.e_needed_kwh <= stay_kwh + 1e-9


def test_small_park_is_feasible_and_perturbation_keeps_the_structure():
    ctrl = MpcController()
    for p in (make_problem("S", seed=0), perturb(make_problem("S", seed=0), seed=3)):
        r = ctrl.dispatch(p)
        assert r.status == "optimal"
        assert r.relaxed == []
        assert invariants.check(p, r) == []
    assert ctrl.builds == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_virtual_evs_match_the_full_model_on_the_small_park(seed):
    p = perturb(make_problem("S", seed=seed), seed=seed)
    full = MpcController().dispatch(p)
    agg = MpcController(ev_aggregate=True).dispatch(p)
    assert agg.status == "optimal"
    assert invariants.check(p, agg) == []
    # The plan it returns is judged by the same yardstick, session by session.
    assert costs.total(costs.evaluate(p, agg)) == pytest.approx(agg.objective_cny, rel=1e-6)
    gap = (agg.objective_cny - full.objective_cny) / abs(full.objective_cny)
    assert -1e-6 <= gap <= GAP_MAX


def test_disaggregation_gives_every_session_its_energy():
    p = make_problem("M", seed=4)
    agg, _ = split(p)
    assert len(groups(p, agg, by_bus=False)) < sum(len(c.sessions) for c in p.ev_chargers)
    r = MpcController(ev_aggregate=True).dispatch(p)
    for ch in p.ev_chargers:
        into = r.assets[ch.spec.name].detail["p_to_car_kw"]
        assert into.max(initial=0.0) <= ch.spec.p_max_kw * ch.spec.eta + 1e-6
        for s in ch.sessions:
            got = float(into[s.arrival_k : s.departure_k].sum()) * p.dt_h
            assert got == pytest.approx(s.e_needed_kwh, abs=1e-4)
        outside = np.ones(p.n, dtype=bool)
        for s in ch.sessions:
            outside[s.arrival_k : s.departure_k] = False
        assert np.abs(into[outside]).max(initial=0.0) <= 1e-6


def test_virtual_evs_per_bus_with_exact_chargers_alongside():
    """Finite bus limits keep groups on their bus; a V2G charger and a session with an
    intermediate target stay in the exact per-slot model next to the virtual EVs."""
    p = make_problem("S", seed=1)
    chargers = list(p.ev_chargers)
    chargers[0] = dataclasses.replace(
        chargers[0], spec=dataclasses.replace(chargers[0].spec, v2g=True)
    )
    s = chargers[1].sessions[0]
    target = dataclasses.replace(s, target_k=s.arrival_k + 2, target_e_kwh=0.1 * s.e_needed_kwh)
    chargers[1] = dataclasses.replace(chargers[1], sessions=(target, *chargers[1].sessions[1:]))
    p = dataclasses.replace(
        p, ev_chargers=tuple(chargers), bus_import_max_kw=np.full(len(p.buses), 1e5)
    )
    agg, rest = split(p)
    assert len(rest.ev_chargers) == 2 and len(agg) == len(p.ev_chargers) - 2
    full = MpcController().dispatch(p)
    r = MpcController(ev_aggregate=True).dispatch(p)
    assert invariants.check(p, r) == []
    gap = (r.objective_cny - full.objective_cny) / abs(full.objective_cny)
    assert -1e-6 <= gap <= GAP_MAX
