"""A cold start of the demo park: cars plugged in hours before the service existed.

`vpp dispatch --at 17:00` used to plan 939,305 of penalty (as CNY) for energy that could only
have been delivered before the service started; the driver now assumes (and says it assumes)
that the cars charged as the park without the VPP would have, and no plan pays for the past.
"""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controllers.mpc import MpcController
from vpp.accounting.counterfactual import uncontrolled_delivered_kwh, uncontrolled_flex_kw
from vpp.drivers.static import ASSUMED_EV, StaticDriver
from vpp.park.config import load_site
from vpp.park.model import EvSession, Horizon
from vpp.park.profiles import ProfileForecaster
from vpp.plan.cycle import run_cycle
from vpp.plan.prepare import ASSUMED

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "parks" / "demo.yaml"
TZ = ZoneInfo("Asia/Shanghai")


def at(h: int, m: int = 0) -> datetime:
    return datetime(2026, 7, 15, h, m, tzinfo=TZ)


@pytest.fixture(scope="module")
def site():
    return load_site(DEMO)


def test_static_driver_assumes_uncontrolled_charging_and_labels_it(site):
    state = StaticDriver(site).read_state(at(17))
    early = [s for s in state.ev_sessions if s.arrival < at(17)]
    assert early, "the demo park has cars plugged in at 17:00"
    by_id = {a.subject: a for a in state.assumptions if a.quantity == "e_delivered_kwh"}
    assert set(by_id) == {s.session_id for s in early}
    chargers = {c.name: c for c in site.assets.ev_chargers}
    for s in early:
        assert by_id[s.session_id].basis == ASSUMED_EV
        want = uncontrolled_delivered_kwh(s, chargers[s.charger], at(17))
        assert s.e_delivered_kwh == pytest.approx(want, abs=1e-3) and want > 0.0
    # A charger meter's reading is taken as it is and is not an assumption.
    sid = early[0].session_id
    metered = StaticDriver(site, metered_kwh={sid: 1.5}).read_state(at(17))
    assert {s.session_id: s.e_delivered_kwh for s in metered.ev_sessions}[sid] == 1.5
    assert sid not in {a.subject for a in metered.assumptions}


def test_uncontrolled_delivered_agrees_with_the_uncontrolled_park(site):
    """Differential: the assumption is the energy :func:`uncontrolled_flex_kw` draws for the
    same session up to ``at`` (times eta: into the car)."""
    c = site.assets.ev_chargers[0]
    s = EvSession("x", c.name, at(8, 30), at(18), 20.0)
    h = Horizon(at(8), timedelta(minutes=15), 12)  # 08:00-11:00
    drawn = uncontrolled_flex_kw(site, h, sessions=[s]) - uncontrolled_flex_kw(site, h, sessions=[])
    assert uncontrolled_delivered_kwh(s, c, at(11)) == pytest.approx(
        float(drawn.sum()) * h.dt_h * c.eta
    )
    assert uncontrolled_delivered_kwh(s, c, at(8)) == 0.0


@pytest.mark.parametrize("hour", [17, 19])
def test_cold_start_plans_no_penalty_for_the_past(site, hour):
    rep = run_cycle(
        site, at(hour), StaticDriver(site), ProfileForecaster(), MpcController(), publish=False
    )
    r = rep.result
    assert r.ok and rep.violations == []
    assert r.objective_penalty == pytest.approx(0.0, abs=1e-6)
    assert r.objective_cost_cny + r.objective_preference == pytest.approx(r.objective_cny)
    assert [x for x in r.relaxed if x.avoidable] == []
    assert any(m.startswith(ASSUMED) and ASSUMED_EV in m for m in r.messages)


def test_a_meter_that_read_nothing_leaves_shortfalls_unavoidable_not_penalised(site):
    """With every early car metered at 0 kWh (no assumption), the cars that leave soon are
    short: each shortfall is reported with its reason and costs no penalty."""
    early = [s for s in StaticDriver(site).read_state(at(17)).ev_sessions if s.arrival < at(17)]
    driver = StaticDriver(site, metered_kwh={s.session_id: 0.0 for s in early})
    rep = run_cycle(site, at(17), driver, ProfileForecaster(), MpcController(), publish=False)
    r = rep.result
    assert r.ok and rep.violations == []
    assert r.objective_penalty == pytest.approx(0.0, abs=1e-6)
    fate = [x for x in r.relaxed if not x.avoidable]
    assert fate and all("departs at" in x.reason for x in fate)
    assert not any(ASSUMED_EV in m for m in r.messages)  # the shiftable load is still assumed
