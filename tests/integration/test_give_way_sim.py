"""Who gave way, realised, in closed loop: a DR cap leaves room for one car; the staff car
(``give_way: first``) leaves short and the KPIs name it, its charger, priority, kWh and the
DR event the plans said it gave way to; the logistics van (``last``) leaves full; a car that
arrives needing more than full power can deliver is named physically impossible; a shiftable
window that closes before its work can be done is listed; the curtailable load's curtailed
energy is listed by cause; the report and the printed summary show them."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.accounting.shortfalls import IMPOSSIBLE_EV, IMPOSSIBLE_WINDOW, summary_lines
from vpp.park import profiles
from vpp.park.model import (
    DemandResponseEvent,
    DrContractType,
    DrDirection,
    DrWindow,
    EvCharger,
    EvSession,
    GiveWay,
    Horizon,
    ShiftableLoad,
)
from vpp.sim import closed_loop as sim
from vpp.sim.report import render
from vpp.sim.simulated_park import SimOptions

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 19, 30, tzinfo=TZ)
H = timedelta(hours=1)
W0, W1 = START + 0.5 * H, START + 2.5 * H  # 20:00-22:00: the cars' stay and the DR window


def _site():
    s = tiny_site(horizon_steps=16)
    chargers = (
        EvCharger("VAN-1", "LV", 22.0),
        EvCharger("STAFF-1", "LV", 22.0),
        EvCharger("STAFF-2", "LV", 7.0),
    )
    sessions = (
        EvSession("van", "VAN-1", W0, W1, 40.0, give_way=GiveWay.LAST),
        EvSession("staff", "STAFF-1", W0, W1, 40.0, give_way=GiveWay.FIRST),
        # 20 kWh in half an hour on a 7 kW charger (before the DR window): 16.675 kWh no
        # decision can deliver.
        EvSession("late", "STAFF-2", START, W0, 20.0, give_way=GiveWay.LAST),
    )
    rig = ShiftableLoad("rig", "LV", 15.0, time(20), time(21), 10.0)  # 5 kWh beyond reach
    assets = dataclasses.replace(
        s.assets,
        batteries=(),
        pedf_buildings=(),
        ev_chargers=chargers,
        shiftable_loads=(rig,),
    )
    s = dataclasses.replace(s, assets=assets, ev_fleets=(), ev_sessions=sessions)
    # The cap leaves the cars 22 kW over the park's own load at its highest in the window.
    series = profiles.site_series(s, Horizon(W0, timedelta(minutes=15), 8))
    own = float(np.max(series["base"] + series["hvac"] - series["PV1"]))
    event = DemandResponseEvent(
        "DR-EVE",
        DrDirection.PEAK_SHAVING,
        (DrWindow(W0, W1),),
        requested_kw=0.0,
        import_cap_kw=round(own + 22.0, 1),
        contract_type=DrContractType.PRE_AGREED,
        announce_time=START - H,
    )
    return dataclasses.replace(s, dr_events=(event,))


@pytest.fixture(scope="module")
def run():
    return sim.simulate(_site(), START, 3.0 / 24.0, "mpc", "perfect", options=SimOptions(0.0))


def test_the_car_that_gives_way_first_leaves_short_and_is_named(run):
    k = run.kpis
    rows = {r["session_id"]: r for r in k["ev_sessions_left_short"]}
    assert "van" not in rows  # give_way last: served in full
    staff = rows["staff"]
    assert (staff["charger"], staff["give_way"], staff["fleet"]) == ("STAFF-1", "first", "")
    done = {s.session_id: s for s in run.sessions}
    assert staff["short_kwh"] == pytest.approx(done["staff"].unmet_kwh)
    assert staff["short_kwh"] > 5.0
    # The plans named the DR event; what it could no longer get once it had given way is
    # not called physically impossible.
    assert staff["why"].startswith("gave way to the DR cap of event DR-EVE (")
    assert "impossible" not in staff["why"]
    assert staff["plan_short_kwh"] > 0.0
    assert k["ev_unmet_kwh"] == pytest.approx(sum(r["short_kwh"] for r in rows.values()))


def test_a_car_no_decision_could_serve_is_physically_impossible(run):
    late = {r["session_id"]: r for r in run.kpis["ev_sessions_left_short"]}["late"]
    assert late["give_way"] == "last"
    assert late["why"] == f"{IMPOSSIBLE_EV} (16.7 kWh)"
    assert late["short_kwh"] == pytest.approx(20.0 - 7.0 * 0.95 / 2, abs=1e-3)


def test_the_shiftable_window_not_completed_and_the_curtailment_are_listed(run):
    k = run.kpis
    (rig,) = k["shiftable_windows_short"]
    assert rig["load"] == "rig" and rig["short_kwh"] >= 5.0 - 1e-6
    assert IMPOSSIBLE_WINDOW in rig["why"]
    assert k["shiftable_unmet_kwh"] == pytest.approx(rig["short_kwh"])
    (hvac,) = k["curtailed_by_load"]
    assert hvac["load"] == "hvac" and hvac["give_way"] == "first" and hvac["curtailed_kwh"] > 0
    assert "the DR cap of event DR-EVE" in hvac["why"]
    assert k["load_curtailed_kwh"] == pytest.approx(hvac["curtailed_kwh"])


def test_the_report_and_the_summary_show_who_gave_way(run):
    page = render(run.site.name, [run])
    assert "Who gave way (realised)" in page and "EV sessions that left short" in page
    assert "DR-EVE" in page
    lines = summary_lines(run.kpis)
    assert lines[0].startswith("who gave way (realised): 2 EV sessions left short")
    staff = next(x for x in lines if "EV staff " in x)
    assert "charger STAFF-1" in staff and "gives way first" in staff and "DR-EVE" in staff
