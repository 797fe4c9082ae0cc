"""Limit groups in closed loop: the simulated park's realised group draws and phase currents
(vpp.accounting.limits.group_kpis), with breaches counted when one is forced."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.unit.test_sim_site import tiny_site
from vpp.park.model import EvCharger, EvSession, LimitGroup, PilotCurrents
from vpp.sim import closed_loop as sim
from vpp.sim.simulated_park import SimOptions

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 18, 0, tzinfo=TZ)
POD_KW = 50.0
PHASE_A = 70.0  # 48.5 kW on three phases at 400 V: tighter than POD_KW


def _site(groups):
    s = tiny_site(horizon_steps=16)
    pilot = PilotCurrents(6.0, 87.0, 1.0)  # 4.2 .. 60.3 kW in 0.69 kW steps
    chargers = (
        EvCharger("DC1", "LV", 60.0, p_min_kw=6.0, pilot=pilot),
        EvCharger("DC2", "LV", 60.0, p_min_kw=6.0, pilot=pilot),
    )
    h = timedelta(hours=1)
    sessions = (
        EvSession("t1", "DC1", START, START + 5 * h, 150.0),
        EvSession("t2", "DC2", START, START + 5 * h, 150.0),
    )
    return dataclasses.replace(
        s,
        assets=dataclasses.replace(s.assets, ev_chargers=chargers),
        ev_fleets=(),
        ev_sessions=sessions,
        limit_groups=groups,
    )


POD = LimitGroup(
    "pod",
    assets=("DC1", "DC2"),
    import_max_kw=POD_KW,
    phase_current_max_a=PHASE_A,
    voltage_v=400.0,
)


@pytest.mark.parametrize("controller", ["mpc", "uncontrolled"])
def test_the_pod_is_kept_in_reality(controller):
    """The plan keeps the pod (mpc); the safety layer keeps it for a controller that does
    not know it (uncontrolled, which would draw 120 kW)."""
    r = sim.simulate(_site((POD,)), START, 0.25, controller, "perfect", options=SimOptions(0.0))
    k = r.kpis["limit_groups"]["pod"]
    assert r.kpis["group_breach_steps"] == 0
    assert k["import_breach"]["steps"] == 0
    assert k["phase_breach_steps"] == 0
    assert k["phase_utilisation_max"] <= 1.0 + 1e-9
    worst = max(k["phase_current_max_a"].values())
    assert worst == pytest.approx(max(r.series["group:pod:phase_A_a"]))
    # The pod is full while both trucks charge: within 1.2 % of its phase limit.
    assert worst >= PHASE_A * 0.988
    p = r.series["group:pod:p_kw"]
    assert p.max() <= math.sqrt(3) * 0.4 * PHASE_A + 1e-6


def test_a_forced_breach_is_counted():
    """A group over the 200 kW base load capped at 10 kW: no decision can keep it. The plan
    relaxes it (named), the park breaks it, and the KPIs count every interval."""
    cap = LimitGroup("base-circuit", assets=("base",), import_max_kw=10.0)
    r = sim.simulate(_site((cap,)), START, 0.25, "mpc", "perfect", options=SimOptions(0.0))
    k = r.kpis["limit_groups"]["base-circuit"]
    drawn = r.series["group:base-circuit:p_kw"]
    steps = int(np.sum(drawn > 10.0 + 1e-3))
    assert steps > 0
    assert k["import_breach"]["steps"] == steps
    assert k["import_breach"]["worst_kw"] == pytest.approx(drawn.max() - 10.0)
    assert k["utilisation_max"] == pytest.approx(drawn.max() / 10.0)
    assert r.kpis["group_breach_steps"] == steps
    assert r.kpis["plan_relaxation_cycles"] > 0


def test_without_groups_no_group_figures():
    r = sim.simulate(_site(()), START, 0.1, "mpc", "perfect", options=SimOptions(0.0))
    assert "limit_groups" not in r.kpis
    assert not any(c.startswith("group:") for c in r.series)
