"""Differential: the phase currents the dispatch's rows reason about (controllers.phase_rows,
at nominal voltage) against pandapower's unbalanced three-phase flow (vpp.grid.unbalanced,
``runpp_3ph``) of the same chargers on their phases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from controllers.phase_rows import phase_currents_a
from vpp.grid.unbalanced import phase_flow
from vpp.park.config import load_site
from vpp.park.model import Assets, EvCharger

ROOT = Path(__file__).resolve().parents[2]
CASES = {
    "one phase": {"A": 30.0},
    "line pairs": {"AB": 20.0, "BC": 5.0, "CA": 12.0},
    "mixed": {"A": 10.0, "AB": 15.0, "three_phase": 30.0, "C": 4.0},
}


@pytest.fixture(scope="module")
def demo():
    return load_site(ROOT / "configs" / "parks" / "demo.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_phasor_currents_match_the_unbalanced_flow(demo, case):
    loads = CASES[case]
    chargers = tuple(
        EvCharger(f"c-{ph}", "B01-LV", 50.0, phase=ph, voltage_v=400.0) for ph in loads
    )
    site = dataclasses.replace(demo, assets=Assets(ev_chargers=chargers))
    flow = phase_flow(site, {f"c-{ph}": p for ph, p in loads.items()})
    assert flow.converged
    lv = flow.trafo_i_lv_a["T-B01"]
    want = phase_currents_a([(ph, 400.0, p) for ph, p in loads.items()])
    vm = flow.bus_vm_pu["B01-LV"]
    for j, ph in enumerate("ABC"):
        # The flow's current is the nominal one over the phase's voltage (a drop of a few %).
        assert lv[j] == pytest.approx(abs(want[ph]) / vm[j], rel=0.02, abs=0.5), ph
    assert flow.bus_unbalance_percent["B01-LV"] >= 0.0
