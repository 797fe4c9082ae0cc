"""The planner's objective credits a DR call's subsidy (``dr_revenue``), by hand.

4 x 1 h, flat 0.5 CNY/kWh, base load 100 kW; a battery holding 90 kWh (50 kW, eta 0.9) whose
stored energy is worth 1.0 CNY/kWh at the horizon's end, so that it gives as little as it
must. A confirmed peak-shaving call asks 20 kW in hour 1 with the 80-120 % band: the plan
aims at the band's middle, 20 kWh, within +- 10 % of the request (half the band's half
width: :func:`vpp.plan.dr_targets.dr_targets`), so the import lies in [100 - 22, 100 - 18] =
[78, 82] kW. Settled all or nothing on its energy, the event's subsidy is credited at its aim
and does not push the plan to the row's top; a cap-only event keeps the credit per kWh up to
the paid limit (120 % of what the cap takes off the baseline).
"""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from controllers import costs, invariants
from controllers.mpc import MpcController
from tests.unit import factory as f
from vpp.park import dr_rules
from vpp.park.model import DemandResponseEvent, DrDirection, DrStatus, DrTerms, DrWindow
from vpp.plan.dr_targets import dr_targets


def _problem(subsidy_cny_per_kwh: float | None, cap_kw: float | None = None, binding: bool = False):
    h = f.horizon(4)
    ev = DemandResponseEvent(
        "SG-1",
        DrDirection.PEAK_SHAVING,
        (DrWindow(f.T0 + timedelta(hours=1), f.T0 + timedelta(hours=2)),),
        20.0,
        import_cap_kw=cap_kw,
        status=DrStatus.CONFIRMED,
        subsidy_cny_per_kwh=subsidy_cny_per_kwh,
        binding=binding,
    )
    base = np.full(4, 100.0)
    t = dr_targets([ev], h, base)
    credit = dr_rules.credit_cny_per_kwh([ev], h, base, DrTerms())
    p = f.problem(
        n=4, price=[0.5] * 4, batteries=[(f.battery(), 90.0)], terminal=1.0, dr_max=t.import_max_kw
    )
    return replace(
        p,
        dr_import_min_kw=t.import_min_kw,
        dr_credit_cny_per_kwh=credit,
        dr_baseline_kw=base,
        dr_rows=t.rows,
    )


def test_the_credit_follows_the_event_terms() -> None:
    p = _problem(10.0)
    np.testing.assert_allclose(p.dr_credit_cny_per_kwh, [0.0, 10.0, 0.0, 0.0])
    np.testing.assert_allclose(p.dr_import_max_kw[1], 82.0)
    np.testing.assert_allclose(p.dr_import_min_kw[1], 78.0)
    (row,) = p.dr_rows
    assert (row.e_min_kwh, row.e_max_kwh) == pytest.approx((18.0, 22.0))


def test_an_energy_settled_event_earns_its_subsidy_at_the_aim_not_at_the_rows_top() -> None:
    none = MpcController().dispatch(_problem(None))
    paid = MpcController().dispatch(_problem(10.0))
    # Either way the battery gives the least the row allows, 18 kW (import 82 kW): its
    # energy is worth more than the import it saves, and a subsidy paid all or nothing
    # does not buy 10 % more of it (the old credit per kWh took the plan to the band's top).
    assert none.p_net_kw[1] == pytest.approx(82.0, abs=1e-4)
    assert paid.p_net_kw[1] == pytest.approx(82.0, abs=1e-4)
    assert none.terms_cny["dr_revenue"] == pytest.approx(0.0, abs=1e-6)
    assert paid.terms_cny["dr_revenue"] == pytest.approx(-200.0, abs=1e-4)  # 10 x 20 at aim
    # Without any terms there is nothing to weigh; with them the plan is weighed, and the
    # settlement of this plan (18 kWh, 90 %) would pay 180 CNY against nothing without it.
    assert none.dr_decisions["SG-1"].followed and not none.dr_decisions["SG-1"].weighed
    d = paid.dr_decisions["SG-1"]
    assert d.followed and d.weighed and d.effective
    assert d.earns_cny == pytest.approx(180.0, abs=1e-3)
    # the yardstick agrees with the optimiser's own terms, and the objective adds up
    yard = costs.evaluate(_problem(10.0), paid)
    assert yard["dr_revenue"] == pytest.approx(-200.0, abs=1e-4)
    assert invariants.check(_problem(10.0), paid) == []


def test_a_cap_only_event_keeps_the_credit_up_to_the_paid_limit() -> None:
    p = _problem(10.0, cap_kw=80.0)  # the cap takes 20 kW off the baseline
    np.testing.assert_allclose(p.dr_import_max_kw[1], 80.0)
    np.testing.assert_allclose(p.dr_import_min_kw[1], 76.0)  # 120 % of 20 kW
    paid = MpcController().dispatch(p)
    # At 10 CNY/kWh the battery gives up to the paid limit, 24 kW, worth 10 x 24 = 240 CNY.
    assert paid.p_net_kw[1] == pytest.approx(76.0, abs=1e-4)
    assert paid.terms_cny["dr_revenue"] == pytest.approx(-240.0, abs=1e-4)
    assert costs.evaluate(p, paid)["dr_revenue"] == pytest.approx(-240.0, abs=1e-4)
    assert invariants.check(p, paid) == []


def test_a_decision_is_kept_across_cycles_unless_the_other_choice_wins_clearly() -> None:
    """Hysteresis (controllers.dr_choice.HYSTERESIS_FRAC): near a tie, what an earlier cycle
    decided stands; a clear win changes it. Following costs about 2.1 CNY (the battery's
    energy given for the call, less the import it saves) and earns the subsidy on 18 kWh."""
    from controllers import dr_choice

    fresh = MpcController().dispatch(_problem(0.2))
    d = fresh.dr_decisions["SG-1"]
    assert d.followed and d.weighed
    assert 0 < d.earns_cny - d.extra_cost_cny < dr_choice.HYSTERESIS_CNY  # a near tie
    held = MpcController()
    held._dr_followed = {"SG-1": False}  # an earlier cycle did not follow it
    kept = held.dispatch(_problem(0.2)).dr_decisions["SG-1"]
    assert not kept.followed and "kept from earlier cycles" in kept.says
    assert held._dr_followed == {"SG-1": False}
    # a clear win (36 CNY earned against 2.1) changes the earlier decision
    clear = held.dispatch(_problem(2.0)).dr_decisions["SG-1"]
    assert clear.followed and "kept" not in clear.says
    assert held._dr_followed == {"SG-1": True}


def test_a_binding_event_is_followed_though_it_does_not_pay() -> None:
    """A command the park acknowledged (an IEC 104 set-point it confirmed) is followed
    whatever it costs: at 0.01 CNY/kWh the call pays 0.18 CNY against about 2.1 CNY of
    battery energy, so the plan gives it up; bound, it follows, unweighed, and an earlier
    cycle's decision not to follow does not hold it back."""
    cheap = MpcController().dispatch(_problem(0.01))
    assert not cheap.dr_decisions["SG-1"].followed
    assert cheap.p_net_kw[1] == pytest.approx(100.0, abs=1e-3)
    held = MpcController()
    held._dr_followed = {"SG-1": False}
    bound = held.dispatch(_problem(0.01, binding=True))
    d = bound.dr_decisions["SG-1"]
    assert d.followed and not d.weighed and "binding" in d.says
    assert bound.p_net_kw[1] == pytest.approx(82.0, abs=1e-3)
    assert invariants.check(_problem(0.01, binding=True), bound) == []


def _begun(subsidy: float):
    """As :func:`_problem`, with the call's window from the first interval: the interval
    the plan decides now is one of the event's own (its window has begun)."""
    h = f.horizon(4)
    ev = DemandResponseEvent(
        "SG-2",
        DrDirection.PEAK_SHAVING,
        (DrWindow(f.T0, f.T0 + timedelta(hours=2)),),
        20.0,
        status=DrStatus.CONFIRMED,
        subsidy_cny_per_kwh=subsidy,
    )
    base = np.full(4, 100.0)
    t = dr_targets([ev], h, base)
    p = f.problem(
        n=4, price=[0.5] * 4, batteries=[(f.battery(), 90.0)], terminal=1.0, dr_max=t.import_max_kw
    )
    return replace(
        p,
        dr_import_min_kw=t.import_min_kw,
        dr_credit_cny_per_kwh=dr_rules.credit_cny_per_kwh([ev], h, base, DrTerms()),
        dr_baseline_kw=base,
        dr_rows=t.rows,
    )


def test_a_followed_call_whose_window_has_begun_is_kept_unless_giving_up_saves_a_lot() -> None:
    """Commitment (controllers.dr_choice.COMMIT_FACTOR): weighed afresh, a call that earns
    less than it costs is not followed; once the plan followed it and its window has begun,
    it is kept while giving it up saves less than ten times what it earns (or 100 CNY)."""
    from controllers import dr_choice

    fresh = MpcController().dispatch(_begun(0.01)).dr_decisions["SG-2"]
    assert not fresh.followed and fresh.extra_cost_cny > fresh.earns_cny
    ctl = MpcController()
    ctl._dr_followed = {"SG-2": True}  # followed in the cycle before
    kept = ctl.dispatch(_begun(0.01)).dr_decisions["SG-2"]
    assert kept.followed and "committed" in kept.says
    assert kept.extra_cost_cny - kept.earns_cny < dr_choice.COMMIT_CNY
    # the commitment holds only once the window has begun: the call of _problem starts at
    # hour 1, so the same earlier decision is re-weighed there (with the hysteresis only)
    early = MpcController()
    early._dr_followed = {"SG-1": True}
    d = early.dispatch(_problem(0.01)).dr_decisions["SG-1"]
    assert "committed" not in d.says


def test_a_call_that_needs_a_forecast_margin_is_weighed_on_money_not_on_the_margin_price() -> None:
    """The call of :func:`_problem` at 2 CNY/kWh (36 CNY earned on 18 kWh) with the battery
    nearly empty (10 kWh): following it means charging 10-15 kW in hour 0, where a network row
    holds the bus at 100 kW with a 30 kW forecast-error margin above (its limit, 130 kW, is
    hard). Using the margin is priced in the LP at 500 CNY/kWh (term margin_shortfall), about
    6,000 CNY: counted as money, that made the call "cost" far more than it earns and it was
    not followed. The margin is a hedge, not money: the call is followed, the plan stays
    within the hard limit, and the decision says it uses the margin and at what price."""
    from controllers.problem import NetworkConstraint

    base = _problem(2.0)
    low = replace(base.batteries[0], e_init_kwh=10.0)
    row = NetworkConstraint(
        "bus b1 loading",
        "trafo-1",
        np.array([1.0]),
        np.array([100.0, 1e4, 1e4, 1e4]),
        margin=np.array([30.0, 0.0, 0.0, 0.0]),
    )
    p = replace(base, batteries=(low,), network=(row,))
    r = MpcController().dispatch(p)
    assert r.ok, r.status
    d = r.dr_decisions["SG-1"]
    assert d.weighed and d.followed, d.says
    assert d.effective, d.says
    assert r.terms_cny["margin_shortfall"] > 1_000.0  # the plan pays the margin's price
    assert d.extra_cost_cny < d.earns_cny < 40.0  # on money, following pays
    assert "uses more of the forecast-error margins" in d.says, d.says
    charge_kw = r.assets["bat"].p_kw[0]
    assert charge_kw > 0.0 and 100.0 + charge_kw <= 130.0 + 1e-6  # within the hard limit
    assert invariants.check(p, r) == []
