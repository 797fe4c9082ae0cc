"""The planner's objective credits a DR call's subsidy (``dr_revenue``), by hand.

4 x 1 h, flat 0.5 CNY/kWh, base load 100 kW; a battery holding 90 kWh (50 kW, eta 0.9) whose
stored energy is worth 1.0 CNY/kWh at the horizon's end, so that without a subsidy it gives
as little as it must. A confirmed peak-shaving call asks 20 kW in hour 1 with the 80-120 %
band: the DR limits hold the import in [100 - 1.2 x 20, 100 - 20] = [76, 80] kW.
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
from vpp.plan.dr_targets import dr_limits


def _problem(subsidy_cny_per_kwh: float | None):
    h = f.horizon(4)
    ev = DemandResponseEvent(
        "SG-1",
        DrDirection.PEAK_SHAVING,
        (DrWindow(f.T0 + timedelta(hours=1), f.T0 + timedelta(hours=2)),),
        20.0,
        status=DrStatus.CONFIRMED,
        subsidy_cny_per_kwh=subsidy_cny_per_kwh,
    )
    base = np.full(4, 100.0)
    dr_max, dr_min = dr_limits([ev], h, base)
    credit = dr_rules.credit_cny_per_kwh([ev], h, base, DrTerms())
    p = f.problem(
        n=4, price=[0.5] * 4, batteries=[(f.battery(), 90.0)], terminal=1.0, dr_max=dr_max
    )
    return replace(p, dr_import_min_kw=dr_min, dr_credit_cny_per_kwh=credit, dr_baseline_kw=base)


def test_the_credit_follows_the_event_terms() -> None:
    p = _problem(10.0)
    np.testing.assert_allclose(p.dr_credit_cny_per_kwh, [0.0, 10.0, 0.0, 0.0])
    np.testing.assert_allclose(p.dr_import_max_kw[1], 80.0)
    np.testing.assert_allclose(p.dr_import_min_kw[1], 76.0)


def test_a_subsidy_makes_the_plan_deliver_more_in_the_window() -> None:
    none = MpcController().dispatch(_problem(None))
    paid = MpcController().dispatch(_problem(10.0))
    # Without a subsidy the battery gives only the 20 kW asked (import 80 kW); at 10 CNY/kWh
    # it gives up to the band's top, 24 kW (import 76 kW), worth 10 x 24 = 240 CNY.
    assert none.p_net_kw[1] == pytest.approx(80.0, abs=1e-4)
    assert paid.p_net_kw[1] == pytest.approx(76.0, abs=1e-4)
    assert none.terms_cny["dr_revenue"] == pytest.approx(0.0, abs=1e-6)
    assert paid.terms_cny["dr_revenue"] == pytest.approx(-240.0, abs=1e-4)
    # the yardstick agrees with the optimiser's own term, and the objective adds up
    yard = costs.evaluate(_problem(10.0), paid)
    assert yard["dr_revenue"] == pytest.approx(-240.0, abs=1e-4)
    assert invariants.check(_problem(10.0), paid) == []
