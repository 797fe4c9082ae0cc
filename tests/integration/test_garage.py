"""The workplace garage (configs/parks/garage.yaml): it loads with its limit groups, and a
4-hour closed loop under the MPC and EDF keeps every realised group, phase and transformer
limit (issue #16)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from vpp.park.config import load_site
from vpp.sim.closed_loop import simulate

PARK = Path(__file__).resolve().parents[2] / "configs" / "parks" / "garage.yaml"


@pytest.fixture(scope="module")
def site():
    return load_site(str(PARK))


def test_garage_loads_with_pods_pairs_and_transformer(site):
    chargers = site.assets.ev_chargers
    assert 48 <= len(chargers) <= 56
    assert {c.voltage_v for c in chargers} == {208.0}
    assert {c.phase for c in chargers} == {"AB", "BC", "CA"}
    groups = {g.name: g for g in site.limit_groups}
    assert set(groups) == {"pod1", "pod2", "panel", "transformer"}
    assert len(groups["pod1"].assets) == len(groups["pod2"].assets) == 8
    assert groups["pod1"].current_max_a == 80
    assert groups["transformer"].import_max_kw == 150
    assert site.dispatch.step_minutes == 5


@pytest.mark.parametrize("controller", ["mpc", "edf"])
def test_four_hours_keep_every_realised_limit(site, controller):
    start = datetime(2026, 9, 14, 7, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    k = simulate(site, start, 4 / 24, controller).kpis
    assert k["group_breach_steps"] == 0
    assert k["connection_import_breach_steps"] == 0
    for name, g in k["limit_groups"].items():
        assert g["import_breach"]["steps"] == 0, name
        assert g.get("phase_breach_steps", 0) == 0, name
        assert g["utilisation_max"] <= 1.0 + 1e-9, name
        assert g.get("phase_utilisation_max", 0.0) <= 1.0 + 1e-9, name
    # The morning's arrivals fill the transformer: the limit is reached, not just kept.
    assert k["limit_groups"]["transformer"]["utilisation_max"] > 0.95


def test_the_learned_forecasts_run_on_a_park_without_pv(site):
    """`vpp compare`'s default forecast (the forecasts package) on the garage, which has no PV:
    it crashed with "PvForecaster: no PV arrays given"; now the loads alone are modelled."""
    start = datetime(2026, 9, 14, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    r = simulate(site, start, 1 / 24, "mpc", forecast="model")
    assert r.forecast == "model"
    assert len(r.cycles) == 12
    assert r.kpis["group_breach_steps"] == 0
