"""Tenant sub-meters in the closed loop (configs/parks/tenant_park.yaml, billed per meter):
the meters' realised nets add up to the park meter, the park's bill is the sum of the meters',
the plan sees each meter's month peak, and the outputs (kpis.json, buses.csv, report.html,
``vpp carbon report --data``) carry the per-tenant accounts."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.accounting import tenants
from vpp.commands.carbon import report, text
from vpp.park.config import load_site
from vpp.sim import closed_loop as sim
from vpp.sim.report import write_run

ROOT = Path(__file__).resolve().parents[2]
PARK = ROOT / "configs" / "parks" / "tenant_park.yaml"
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def run():
    site = load_site(PARK)
    site = dataclasses.replace(site, dispatch=dataclasses.replace(site.dispatch, horizon_steps=16))
    return sim.simulate(site, datetime(2026, 7, 15, tzinfo=TZ), 1.0, "mpc", forecast="perfect")


def test_meters_partition_the_park_meter_and_bill_per_meter(run):
    doc = run.tenants
    assert doc["billing"] == "per_meter"
    names = [x["meter"] for x in doc["meters"]]
    assert names == ["shunde-precision", "heat-treat", "cold-logistics", "common"]
    nets = tenants.meter_net_kw(run.site, run.bus_series_kw, run.horizon.n)
    total = sum(nets.values(), np.zeros(run.horizon.n))
    np.testing.assert_allclose(total, run.series["net_kw"], atol=1e-6)
    imp = sum(x["bill"]["import_kwh"] for x in doc["meters"])
    exp = sum(x["bill"]["export_kwh"] for x in doc["meters"])
    # Per meter the imports add up to at least the park meter's: one meter's export no
    # longer nets against another's import (the difference is the same on both sides).
    park_imp = float(run.series["import_kw"].sum() * run.horizon.dt_h)
    park_exp = float(run.series["export_kw"].sum() * run.horizon.dt_h)
    assert imp >= park_imp - 1e-6
    assert imp - exp == pytest.approx(park_imp - park_exp, abs=1e-6)
    bills = sum(x["bill"]["total_cny"] for x in doc["meters"])
    assert doc["park_bill_cny"] == pytest.approx(bills, rel=1e-12)
    saved = sum(x["allocated_saving_cny"] for x in doc["meters"])
    assert doc["park_saving_cny"] == pytest.approx(saved, abs=1e-6)  # per_meter: all of it
    # The warehouse's roof exports at midday on its own meter.
    logistics = doc["meters"][2]["bill"]
    assert logistics["export_kwh"] > 0.0


def test_outputs_and_the_carbon_report_carry_the_tenants(run, tmp_path):
    write_run(run, tmp_path)
    assert (tmp_path / "buses.csv").exists()
    kp = json.loads((tmp_path / "kpis.json").read_text())
    assert [x["meter"] for x in kp["tenants"]["meters"]][-1] == "common"
    assert "Tenants (sub-meters, realised)" in (tmp_path / "report.html").read_text()
    day = date(2026, 7, 15)
    doc = report(run.site, day, day, data=tmp_path)
    got = {x["meter"]: x for x in doc["tenants"]["mpc"]["meters"]}
    for x in run.tenants["meters"]:  # buses.csv is written to 4 decimals
        assert got[x["meter"]]["bill"]["import_kwh"] == pytest.approx(
            x["bill"]["import_kwh"], abs=1e-2
        )
    assert "tenants, mpc: billing per_meter" in text(run.site, doc)
    assert "tenants, no_vpp" in text(run.site, doc)


def test_the_simulated_park_keeps_each_meters_month_peak():
    from datetime import timedelta

    from vpp.sim.simulated_park import SimulatedPark

    site = load_site(PARK)
    t0 = datetime(2026, 7, 15, 10, 0, tzinfo=TZ)
    park = SimulatedPark(site, seed=1, start=t0)
    step = timedelta(minutes=site.dispatch.step_minutes)
    for k in range(8):
        park.apply(t0 + k * step, {})
    nets = tenants.meter_net_kw(site, park.bus_p_kw(), 8)
    peaks = park.read_state(t0 + 8 * step).meter_month_peak_import_kw
    for name, net in nets.items():
        assert peaks[name] == pytest.approx(max(float(net.max()), 0.0), abs=1e-9)
    # A new month starts every meter again: its peak is August's first interval's import.
    park.apply(datetime(2026, 8, 1, tzinfo=TZ), {})
    last = {m: float(v[-1]) for m, v in tenants.meter_net_kw(site, park.bus_p_kw(), 9).items()}
    peaks = park.read_state(datetime(2026, 8, 1, 0, 15, tzinfo=TZ)).meter_month_peak_import_kw
    for name, net in last.items():
        assert peaks[name] == pytest.approx(max(net, 0.0), abs=1e-9)


def test_vpp_dispatch_prints_the_plan_per_meter():
    """``vpp dispatch`` on the tenant park: a plan line per meter (tenants, then common),
    labelled as the plan's; a park without meters prints none."""
    root = Path(__file__).resolve().parents[2]

    def run(park: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "vpp.cli", "dispatch", "--config", park,
             "--at", "2026-07-15T08:00:00+08:00"],
            cwd=root, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        return out.stdout

    text_out = run("configs/parks/tenant_park.yaml")
    assert "meters (billing per_meter; plan_ figures):" in text_out
    rows = re.findall(r"^  (\S+)\s+plan import\s+([\d,]+) kWh", text_out, flags=re.M)
    assert [r[0] for r in rows] == ["shunde-precision", "heat-treat", "cold-logistics", "common"]
    assert all(float(r[1].replace(",", "")) >= 0 for r in rows)
    assert "meters (billing" not in run("configs/parks/manufacturing.yaml")
