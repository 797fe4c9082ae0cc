"""Optional battery detail (:mod:`vpp.park.battery_detail`): a charge taper near full and
efficiency segments, in the dispatch LP, the invariants, the safety layer and the simulated
park. Off by default: a battery without them dispatches exactly as before."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers import costs, invariants, safety
from controllers.mpc import MpcController
from tests.unit import factory as f
from tests.unit.test_sim_site import LEVELS, ConstantPark, tiny_site
from vpp.park import battery_detail as bd
from vpp.park.battery_detail import ChargeTaper, EfficiencySegment
from vpp.park.config import ConfigError, site_from_dict

ROOT = Path(__file__).resolve().parents[2]
SEGS = (EfficiencySegment(0.5, 0.98, 0.98), EfficiencySegment(1.0, 0.85, 0.88))


def _solve(spec, e0: float, price, terminal: float, step_h: float = 1.0):
    n = len(price)
    p = f.problem(n=n, step_h=step_h, price=price, base_kw=[10.0] * n,
                  batteries=[(spec, e0)], terminal=terminal)  # fmt: skip
    r = MpcController().dispatch(p)
    assert r.status == "optimal"
    return p, r


# --------------------------------------------------------------------------------------------
# Off by default
# --------------------------------------------------------------------------------------------
def test_a_plain_battery_builds_no_extra_rows():
    p, r = _solve(f.battery(eta=0.9), 50.0, [0.1] * 4 + [1.0] * 4, 0.5)
    assert set(r.assets["bat"].detail) == {"p_charge_kw", "p_discharge_kw"}
    names = {v.name() for v in MpcController()._model(p, False)[0].problem.variables()}
    assert not any("seg" in x for x in names)


@pytest.mark.parametrize("price", [[0.1] * 4 + [1.0] * 4, [1.0, 0.2, 0.9, 0.1, 0.5, 0.3, 1.2, 0.4]])
def test_neutral_detail_equals_the_plain_battery(price):
    """Differential: a taper whose floor is the rating and one segment at the battery's own
    efficiencies add rows that change nothing; the plan equals the plain battery's."""
    plain = f.battery(eta=0.9, deg=0.01)
    neutral = dataclasses.replace(
        plain, taper=ChargeTaper(0.5, 1.0), efficiency_segments=(EfficiencySegment(1.0, 0.9, 0.9),)
    )
    _, a = _solve(plain, 30.0, price, 0.4)
    _, b = _solve(neutral, 30.0, price, 0.4)
    np.testing.assert_allclose(a.assets["bat"].e_kwh, b.assets["bat"].e_kwh, atol=1e-6)
    np.testing.assert_allclose(a.p_net_kw, b.p_net_kw, atol=1e-6)
    assert a.objective_cny == pytest.approx(b.objective_cny, abs=1e-6)


# --------------------------------------------------------------------------------------------
# Taper
# --------------------------------------------------------------------------------------------
def test_taper_line_by_hand():
    b = dataclasses.replace(f.battery(e_kwh=100, p_kw=50), taper=ChargeTaper(0.6, 0.2))
    # slope = 50 x 0.8 / (0.4 x 100) = 1 kW/kWh; a = 50 + 1 x 60 = 110 kW.
    assert bd.taper_line(b) == pytest.approx((110.0, 1.0))
    assert float(bd.charge_limit_kw(b, 40.0)) == 50.0  # below the threshold: the rating
    assert float(bd.charge_limit_kw(b, 80.0)) == pytest.approx(30.0)
    assert float(bd.charge_limit_kw(b, 100.0)) == pytest.approx(10.0)  # the floor at full


def test_charge_near_full_obeys_the_taper():
    """Cheap energy, dearer by the step, and a high end value: the battery charges as fast
    as it may, as early as it may. Hand: with eta 1 and 15-minute steps the limit is
    110 - e above 60 kWh, so e goes 50, 62.5 (50 kW), 74.375 (47.5 kW), 83.28125
    (35.625 kW), 89.9609375 (26.71875 kW)."""
    b = dataclasses.replace(f.battery(e_kwh=100, p_kw=50, eta=1.0), taper=ChargeTaper(0.6, 0.2))
    p, r = _solve(b, 50.0, [0.10, 0.11, 0.12, 0.13], 5.0, step_h=0.25)
    e = r.assets["bat"].e_kwh
    np.testing.assert_allclose(e, [50.0, 62.5, 74.375, 83.28125, 89.9609375], atol=1e-6)
    pc = r.assets["bat"].detail["p_charge_kw"]
    np.testing.assert_allclose(pc, [50.0, 47.5, 35.625, 26.71875], atol=1e-6)
    assert invariants.check(p, r) == []
    # The safety layer sends no more than the taper allows from the measured energy.
    p2 = dataclasses.replace(p, batteries=(dataclasses.replace(p.batteries[0], e_init_kwh=80.0),))
    assert safety.limits_kw(p2)["bat"][1] == pytest.approx(30.0)


def test_the_invariants_catch_a_charge_above_the_taper():
    b = dataclasses.replace(f.battery(e_kwh=100, p_kw=50, eta=1.0), taper=ChargeTaper(0.6, 0.2))
    p, _ = _solve(b, 50.0, [0.1] * 8, 5.0, step_h=0.25)
    _, plain = _solve(dataclasses.replace(b, taper=None), 50.0, [0.1] * 8, 5.0, 0.25)
    # The plain battery's plan (50 kW until full) under the tapered battery's problem.
    assert any("above its taper" in v for v in invariants.check(p, plain))


# --------------------------------------------------------------------------------------------
# Efficiency segments
# --------------------------------------------------------------------------------------------
def test_low_power_uses_the_efficient_segment_first():
    """Room for 9.8 kWh over four cheap hours: the plan charges within the first segment
    (25 kW at 0.98) and never touches the second (0.85); the stored energy is 0.98 x charge."""
    b = dataclasses.replace(f.battery(e_kwh=100, p_kw=50, eta=0.9), efficiency_segments=SEGS)
    p, r = _solve(b, 90.2, [0.1] * 4 + [1.0] * 4, 0.5)
    d = r.assets["bat"].detail
    assert d["p_charge_seg1_kw"].max() < 1e-6
    np.testing.assert_allclose(d["p_charge_seg0_kw"], d["p_charge_kw"], atol=1e-6)
    assert d["p_charge_kw"].sum() == pytest.approx(9.8 / 0.98, abs=1e-4)
    assert invariants.check(p, r) == []


def test_high_power_fills_the_first_segment_before_the_second():
    b = dataclasses.replace(f.battery(e_kwh=100, p_kw=50, eta=0.9), efficiency_segments=SEGS)
    p, r = _solve(b, 0.0, [0.1, 1.0, 1.0, 1.0], 2.0)
    d = r.assets["bat"].detail
    # One cheap hour, a high end value: 50 kW, 25 at 0.98 and 25 at 0.85 = 45.75 kWh stored.
    assert d["p_charge_kw"][0] == pytest.approx(50.0, abs=1e-6)
    assert d["p_charge_seg0_kw"][0] == pytest.approx(25.0, abs=1e-6)
    assert r.assets["bat"].e_kwh[1] == pytest.approx(25 * 0.98 + 25 * 0.85, abs=1e-6)
    assert invariants.check(p, r) == []
    # The yardstick (controllers.costs) prices the plan as the optimiser did: no term
    # depends on the efficiency but through the energies it reads from the result.
    for k, v in costs.evaluate(p, r).items():
        assert r.terms_cny[k] == pytest.approx(v, abs=1e-6), k


@settings(max_examples=40, deadline=None)
@given(
    pc=st.floats(0, 50),
    pd=st.floats(0, 50),
    room=st.floats(0, 60),
)
def test_segment_physics_inverts(pc, pd, room):
    """The charge that fits the room stores exactly the room (or is the rating); the stored
    rate is concave in the charge power and never above the best efficiency."""
    b = dataclasses.replace(f.battery(e_kwh=100, p_kw=50), efficiency_segments=SEGS)
    p = bd.charge_for_room_kw(b, room, 0.5)
    stored = float(bd.stored_kw(b, p, 0.0)) * 0.5
    assert stored == pytest.approx(room, abs=1e-9) or p == pytest.approx(50.0)
    assert float(bd.stored_kw(b, pc, 0.0)) <= 0.98 * pc + 1e-9
    q = bd.discharge_for_energy_kw(b, room, 0.5)
    assert -float(bd.stored_kw(b, 0.0, q)) * 0.5 == pytest.approx(room, abs=1e-9) or q == 50.0
    assert -float(bd.stored_kw(b, 0.0, pd)) >= pd / 0.98 - 1e-9


# --------------------------------------------------------------------------------------------
# The simulated park has the same physics (plan and outcome agree)
# --------------------------------------------------------------------------------------------
def _sim_park(**detail) -> ConstantPark:
    site = tiny_site()
    bat = dataclasses.replace(site.assets.batteries[0], **detail)
    site = dataclasses.replace(site, assets=dataclasses.replace(site.assets, batteries=(bat,)))
    t0 = datetime(2026, 7, 15, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    park = ConstantPark(site, dict(LEVELS), start=t0)
    park.read_state(t0)
    return park, t0


def test_simulated_park_follows_the_segments_and_the_taper():
    park, t0 = _sim_park(efficiency_segments=SEGS, taper=ChargeTaper(0.6, 0.2))
    step = timedelta(minutes=15)
    e0 = park.battery_e_kwh["bat"]  # 50 kWh
    park.apply(t0, {"bat": 40.0})  # 25 kW at 0.98, 15 kW at 0.85, for 15 minutes
    assert park.battery_e_kwh["bat"] == pytest.approx(e0 + 0.25 * (25 * 0.98 + 15 * 0.85))
    for i in range(1, 16):
        e = park.battery_e_kwh["bat"]
        park.apply(t0 + i * step, {"bat": 500.0})
        limit = min(float(bd.charge_limit_kw(park._bats["bat"], e)), 50.0)
        assert park.asset_power("bat")[-1] <= limit + 1e-9
    assert park.battery_e_kwh["bat"] <= 95.0 + 1e-9  # soc_max 0.95
    e = park.battery_e_kwh["bat"]
    park.apply(t0 + 16 * step, {"bat": -30.0})  # 25 kW drawn at 0.98, 5 kW at 0.88
    assert park.battery_e_kwh["bat"] == pytest.approx(e - 0.25 * (25 / 0.98 + 5 / 0.88))


# --------------------------------------------------------------------------------------------
# The park file
# --------------------------------------------------------------------------------------------
def test_park_file_reads_and_checks_the_detail():
    doc = yaml.safe_load((ROOT / "configs" / "parks" / "demo.yaml").read_text(encoding="utf-8"))
    b = doc["assets"]["batteries"][0]
    b["taper"] = {"soc_start_frac": 0.8, "floor_frac": 0.1}
    b["efficiency_segments"] = [
        {"p_max_frac": 0.5, "eta_charge": 0.97, "eta_discharge": 0.97},
        {"p_max_frac": 1.0, "eta_charge": 0.92, "eta_discharge": 0.93},
    ]
    path = ROOT / "configs" / "parks" / "demo.yaml"
    site = site_from_dict(copy.deepcopy(doc), path)
    bat = site.assets.batteries[0]
    assert bat.taper == ChargeTaper(0.8, 0.1) and bat.efficiency_segments[1].eta_discharge == 0.93
    b["efficiency_segments"][1]["eta_charge"] = 0.99
    b["efficiency_segments"][1]["p_max_frac"] = 0.4
    with pytest.raises(ConfigError) as exc:
        site_from_dict(doc, path)
    text = "\n".join(exc.value.problems)
    assert "assets.batteries[0].efficiency_segments[1].eta_charge: must be in (0, 0.97]" in text
    assert "assets.batteries[0].efficiency_segments[1].p_max_frac: must rise above 0.5" in text
