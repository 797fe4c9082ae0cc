"""Tenant sub-meters (issue #21 item 3): per-meter billing reproduces hand-computed bills on a
two-tenant park, ``netted`` is today's dispatch exactly, ``per_meter`` does not pay for one
tenant's PV to cover the other's import, and the LP's per-meter terms are the yardstick's.

The park (hourly, four intervals from 2026-07-15 00:00, a Wednesday, Asia/Shanghai):

* tenant A on bus A-LV: base load 20 kW flat, PV (not curtailable) 0 / 150 / 120 / 0 kW;
  flat tariff 0.6 CNY/kWh, export 0.3 CNY/kWh, demand charge 10 CNY/kW-month;
* tenant B on bus B-LV: base load 50 / 70 / 90 / 40 kW; TOU 0.4 (00-01, 04-24) and 1.0
  (01-04) CNY/kWh, no export price, demand charge 20 CNY/kW-month;
* the connection bus PCC is in no tenant meter: the park's ``common`` meter, nothing on it;
* the site's tariff (the connection's, and the common meter's): B's TOU with export 0.3 and
  demand charge 20 CNY/kW-month.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers import costs, meter_block
from controllers.mpc import MpcController
from vpp.accounting import tenants
from vpp.park.config import ConfigError, site_from_dict
from vpp.park.model import COMMON_METER, Horizon
from vpp.park.state import Forecasts, PlantState
from vpp.plan.prepare import build_problem

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 15, 0, 0, tzinfo=TZ)
PATH = Path("parks/two_tenants.yaml")
A_BASE = [20.0, 20.0, 20.0, 20.0]
A_PV = [0.0, 150.0, 120.0, 0.0]
B_BASE = [50.0, 70.0, 90.0, 40.0]


def _tou(export: float, demand: float, name: str) -> dict:
    periods = [
        {"start": "00:00", "end": "01:00", "tier": "valley"},
        {"start": "01:00", "end": "04:00", "tier": "peak"},
        {"start": "04:00", "end": "00:00", "tier": "valley"},
    ]
    return {
        "name": name,
        "tiers_cny_per_kwh": {"valley": 0.4, "peak": 1.0},
        "default_tier": "valley",
        "export_cny_per_kwh": export,
        "demand_charge_cny_per_kw_month": demand,
        "seasons": [
            {"name": "all", "months": list(range(1, 13)), "schedules": {"workday": periods}}
        ],
    }


FLAT_A = {
    "name": "tenant-a-flat",
    "tiers_cny_per_kwh": {"flat": 0.6},
    "default_tier": "flat",
    "export_cny_per_kwh": 0.3,
    "demand_charge_cny_per_kw_month": 10.0,
    "seasons": [
        {
            "name": "all",
            "months": list(range(1, 13)),
            "schedules": {"workday": [{"start": "00:00", "end": "00:00", "tier": "flat"}]},
        }
    ],
}


def _doc(billing: str = "per_meter", battery: bool = False, demand: bool = True) -> dict:
    """The park; ``demand`` False: no demand charge anywhere (a plan that only moves energy)."""
    dc = 1.0 if demand else 0.0
    doc = {
        "site": {
            "name": "two tenants",
            "location": {"latitude_deg": 30.2, "longitude_deg": 120.2, "tz": "Asia/Shanghai"},
        },
        "connection": {
            "bus": "PCC",
            "vn_kv": 10.0,
            "transformer_kva": 1000,
            "import_max_kw": 800,
            "export_max_kw": 800,
        },
        "buses": [
            {"name": "PCC", "vn_kv": 10.0, "kind": "connection"},
            {"name": "A-LV", "vn_kv": 0.4},
            {"name": "B-LV", "vn_kv": 0.4},
        ],
        "assets": {
            "pv_arrays": [
                {
                    "name": "A-pv",
                    "bus": "A-LV",
                    "kwp": 200,
                    "inverter_kw": 200,
                    "curtailable": False,
                }
            ],
            "base_loads": [
                {"name": "A-base", "bus": "A-LV", "profile": {"source": "simbench:G1-B"}},
                {"name": "B-base", "bus": "B-LV", "profile": {"source": "simbench:G1-B"}},
            ],
        },
        "tariff": _tou(0.3, 20.0 * dc, "site-tou"),
        "carbon": {
            "emission_factor": {"ef_kg_per_kwh": 0.5, "year": 2022, "region": "t", "source": "t"},
            "energy_factors": {"equivalent_kgce_per_kwh": 0.1229, "equal_value_kgce_per_kwh": 0.3},
        },
        "dispatch": {"horizon_steps": 4, "step_minutes": 60, "risk_frac": 0.0},
        "metering": {
            "billing": billing,
            "meters": [
                {
                    "name": "A",
                    "buses": ["A-LV"],
                    "tariff": FLAT_A | {"demand_charge_cny_per_kw_month": 10.0 * dc},
                    "value_added_10k_cny_per_year": 3650,
                },
                {"name": "B", "buses": ["B-LV"], "tariff": _tou(0.0, 20.0 * dc, "tenant-b-tou")},
            ],
        },
    }
    if battery:  # on B's bus: it can store what A's PV exports (netted) or what B imports
        doc["assets"]["batteries"] = [
            {
                "name": "B-bess",
                "bus": "B-LV",
                "e_kwh": 100,
                "p_charge_max_kw": 50,
                "p_discharge_max_kw": 50,
                "eta_charge": 0.9,
                "eta_discharge": 0.9,
                "soc_min_frac": 0.0,
                "soc_max_frac": 1.0,
                "soc_init_frac": 0.0,
                "degradation_cny_per_kwh": 0.0,
                "terminal_value_cny_per_kwh": 0.0,
            }
        ]
    return doc


def _site(doc: dict):
    return site_from_dict(copy.deepcopy(doc), PATH)


def _forecasts() -> Forecasts:
    return Forecasts(
        p50={"A-base": np.array(A_BASE), "A-pv": np.array(A_PV), "B-base": np.array(B_BASE)}
    )


def _horizon() -> Horizon:
    return Horizon(T0, timedelta(hours=1), 4)


def _problem(site):
    return build_problem(site, _horizon(), PlantState(at=T0), _forecasts())


def _fixed_bus_kw() -> dict[str, np.ndarray]:
    a = np.array(A_BASE) - np.array(A_PV)
    return {"PCC": np.zeros(4), "A-LV": a, "B-LV": np.array(B_BASE)}


# --------------------------------------------------------------------------------------------
# The bills, by hand
# --------------------------------------------------------------------------------------------
# Tenant A, net = 20 - PV = 20, -130, -100, 20 kW (1 h intervals, so kW = kWh):
#   import 20 + 20 = 40 kWh x 0.6                           =   24.0 CNY
#   export 130 + 100 = 230 kWh x 0.3                        =  -69.0 CNY
#   demand: its peak import 20 kW x 10 CNY/kW (whole month) =  200.0 CNY
#   A's bill                                                =  155.0 CNY
A_BILL = 20 * 0.6 + 20 * 0.6 - (130 + 100) * 0.3 + 20 * 10.0
# Tenant B, net = 50, 70, 90, 40 kW:
#   import 50 x 0.4 + 70 x 1.0 + 90 x 1.0 + 40 x 1.0 = 20 + 70 + 90 + 40 = 220.0 CNY
#   demand: 90 kW x 20                                                    = 1800.0 CNY
#   B's bill                                                              = 2020.0 CNY
B_BILL = 50 * 0.4 + 70 * 1.0 + 90 * 1.0 + 40 * 1.0 + 90 * 20.0
# per_meter: the park pays the sum of its meters' bills (the common meter's is 0).
PER_METER_PARK = A_BILL + B_BILL  # 2175.0 CNY
# netted: the connection nets the two: 70, -60, -10, 60 kW at the site's tariff:
#   import 70 x 0.4 + 60 x 1.0 = 28 + 60              =   88.0 CNY
#   export (60 + 10) x 0.3                           =  -21.0 CNY
#   demand: 70 kW x 20                               = 1400.0 CNY
#   the park's bill                                  = 1467.0 CNY
NETTED_PARK = 70 * 0.4 + 60 * 1.0 - (60 + 10) * 0.3 + 70 * 20.0


def test_hand_computed_bills_per_meter_and_netted():
    assert pytest.approx(155.0, abs=1e-9) == A_BILL
    assert pytest.approx(2020.0, abs=1e-9) == B_BILL
    assert pytest.approx(1467.0, abs=1e-9) == NETTED_PARK
    h = _horizon()
    for billing, park in (("per_meter", PER_METER_PARK), ("netted", NETTED_PARK)):
        rep = tenants.tenant_report(_site(_doc(billing)), h, _fixed_bus_kw(), prorate=False)
        by = {x.meter: x for x in rep.meters}
        assert [x.meter for x in rep.meters] == ["A", "B", COMMON_METER]
        # Each tenant is billed on its own meter whatever the park's contract is.
        assert by["A"].bill.total_cny == pytest.approx(A_BILL, abs=1e-6)
        assert by["B"].bill.total_cny == pytest.approx(B_BILL, abs=1e-6)
        assert by[COMMON_METER].bill.total_cny == pytest.approx(0.0, abs=1e-6)
        assert by["A"].bill.export_kwh == pytest.approx(230.0, abs=1e-9)
        assert by["B"].bill.peak_import_kw == pytest.approx(90.0, abs=1e-9)
        assert rep.connection_bill.total_cny == pytest.approx(NETTED_PARK, abs=1e-6)
        assert rep.park_bill_cny == pytest.approx(park, abs=1e-6)


def test_tenant_carbon_coal_and_intensity_by_hand():
    rep = tenants.tenant_report(
        _site(_doc()),
        _horizon(),
        _fixed_bus_kw(),
        pv_kw_by_bus={"A-LV": np.array(A_PV)},
        prorate=False,
    )
    a = rep.meters[0]
    # CO2: A's import 40 kWh x 0.5 kg/kWh = 20 kg = 0.02 t (its export is not credited).
    assert a.co2_t == pytest.approx(40 * 0.5 / 1000, abs=1e-12)
    # Consumed: import 40 - export 230 + PV 270 = 80 kWh (its own load, 4 h x 20 kW).
    assert a.consumption_kwh == pytest.approx(80.0, abs=1e-9)
    assert a.tce_equivalent == pytest.approx(80 * 0.1229 / 1000, abs=1e-12)
    assert a.tce_equal_value == pytest.approx(80 * 0.3 / 1000, abs=1e-12)
    # Value added 3650 (10k CNY a year) over 4 h = 3650 x (4/24)/365 = 1/6 of 10k CNY.
    va = 3650 * (4 / 24) / 365
    assert a.value_added_10k_cny == pytest.approx(va, rel=1e-12)
    assert a.intensity_tce_per_10k_cny == pytest.approx(80 * 0.1229 / 1000 / va, rel=1e-12)
    assert rep.meters[1].value_added_10k_cny is None  # B states no value added


def test_saving_allocated_to_each_meter_by_its_own_reduction():
    h = _horizon()
    before = _fixed_bus_kw()
    after = dict(before)
    after["B-LV"] = before["B-LV"] - np.array([0.0, 0.0, 10.0, 0.0])  # B's peak 90 -> 80 kW
    for billing in ("per_meter", "netted"):
        rep = tenants.tenant_report(_site(_doc(billing)), h, after, None, before, prorate=False)
        by = {x.meter: x for x in rep.meters}
        # B saves 10 kWh at 1.0 and 10 kW of peak at 20: 10 + 200 = 210 CNY; A saves nothing.
        assert by["B"].allocated_saving_cny == pytest.approx(10 * 1.0 + 10 * 20.0, abs=1e-6)
        assert by["A"].allocated_saving_cny == pytest.approx(0.0, abs=1e-9)
        allocated = sum(x.allocated_saving_cny for x in rep.meters)
        assert rep.park_saving_cny == pytest.approx(allocated + rep.unallocated_saving_cny)
    # per_meter: the park's bill is the meters', so the allocation is the whole saving.
    rep = tenants.tenant_report(_site(_doc()), h, after, None, before, prorate=False)
    assert rep.unallocated_saving_cny == pytest.approx(0.0, abs=1e-6)
    # netted: at 02:00 the connection exported 10 kW (0.3 each); now it exports 20 kW: the
    # netting earns 3 CNY more, and the connection's peak (70 kW at 00:00) did not move:
    # the park saves 3 CNY where B's meter shows 210: -207 CNY is the park's own.
    rep = tenants.tenant_report(_site(_doc("netted")), h, after, None, before, prorate=False)
    assert rep.park_saving_cny == pytest.approx(10 * 0.3, abs=1e-6)
    assert rep.unallocated_saving_cny == pytest.approx(10 * 0.3 - 210.0, abs=1e-6)


# --------------------------------------------------------------------------------------------
# The dispatch
# --------------------------------------------------------------------------------------------
def test_netted_with_meters_is_todays_dispatch():
    doc = _doc("netted", battery=True)
    plain = copy.deepcopy(doc)
    plain.pop("metering")
    r0 = MpcController().dispatch(_problem(_site(plain)))
    r1 = MpcController().dispatch(_problem(_site(doc)))
    assert r0.ok and r1.ok
    assert r1.objective_cny == pytest.approx(r0.objective_cny, rel=1e-6)
    np.testing.assert_allclose(r1.p_net_kw, r0.p_net_kw, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        r1.assets["B-bess"].p_kw, r0.assets["B-bess"].p_kw, rtol=1e-6, atol=1e-6
    )


def test_per_meter_plan_does_not_pay_to_cover_the_other_tenants_import():
    netted = MpcController().dispatch(_problem(_site(_doc("netted", True, demand=False))))
    p = _problem(_site(_doc("per_meter", True, demand=False)))
    per = MpcController().dispatch(p)
    assert netted.ok and per.ok
    charge_netted = np.maximum(netted.assets["B-bess"].p_kw, 0.0)
    charge_per = np.maximum(per.assets["B-bess"].p_kw, 0.0)
    # Netted, A's surplus at 01:00-03:00 is worth the export price (0.3) at the connection:
    # B's battery stores it (50 + 10 kW) for 03:00, when the park buys at 1.0 CNY/kWh.
    assert charge_netted[1:3].sum() == pytest.approx(60.0, abs=1e-6)
    # Per meter, every kWh B's battery takes at 01:00-03:00 is bought on B's meter at 1.0 CNY
    # (and gives back 0.81 kWh) while A's export earns A 0.3 on its own: storing A's
    # surplus would cost money, so it does not; it charges at 00:00 (0.4) instead.
    assert charge_per[1:3].sum() == pytest.approx(0.0, abs=1e-6)
    assert charge_per[0] > 0.0
    # What each meter saw in the plan: A exports its surplus itself.
    nets = meter_block.meter_net_kw(p, per.bus_p_kw)
    names = [x.name for x in p.meters]
    assert nets[names.index("A")][1] == pytest.approx(-130.0, abs=1e-6)


@pytest.mark.parametrize("battery", [False, True])
def test_per_meter_objective_equals_the_yardstick(battery):
    p = _problem(_site(_doc("per_meter", battery=battery)))
    r = MpcController().dispatch(p)
    assert r.ok
    terms = costs.evaluate(p, r)
    assert costs.total(terms) == pytest.approx(r.objective_cny, rel=1e-6)
    for k in ("energy_import", "energy_export", "demand_charge"):
        assert terms[k] == pytest.approx(r.terms_cny[k], rel=1e-6, abs=1e-6)
    if not battery:  # nothing to decide: the plan's terms are the hand-computed bills
        assert r.objective_cost_cny == pytest.approx(PER_METER_PARK, rel=1e-9)


def test_per_meter_prices_are_parameters_not_structure():
    ctrl = MpcController()
    site = _site(_doc("per_meter", battery=True))
    for scale in (1.0, 1.5, 2.0):
        p = _problem(site)
        meters = tuple(
            dataclasses.replace(x, price_import_cny_per_kwh=scale * x.price_import_cny_per_kwh)
            for x in p.meters
        )
        p = dataclasses.replace(p, meters=meters)
        r = ctrl.dispatch(p)
        assert costs.total(costs.evaluate(p, r)) == pytest.approx(r.objective_cny, rel=1e-6)
    assert ctrl.builds == 1


# --------------------------------------------------------------------------------------------
# The park file
# --------------------------------------------------------------------------------------------
def _problems(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        _site(doc)
    return exc.value.problems


def test_metering_errors_name_the_field_path():
    doc = _doc()
    doc["metering"]["meters"][0]["buses"] = ["A-LV", "X-LV"]
    doc["metering"]["meters"][1]["buses"] = ["A-LV"]
    doc["metering"]["meters"].append({"name": "C", "buses": []})
    doc["metering"]["meters"].append({"name": "common", "buses": ["PCC"]})
    got = _problems(doc)
    assert any("metering.meters[0].buses[1]: unknown bus 'X-LV' (meter 'A')" in x for x in got), got
    assert any(
        "metering.meters[1].buses[0]: bus 'A-LV' is already measured by meter 'A' "
        "(metering.meters[0])" in x
        for x in got
    ), got
    assert any("metering.meters[2].buses: meter 'C' measures no bus" in x for x in got), got
    assert any("metering.meters[3].name: 'common' is the park's own meter" in x for x in got)
    assert all(x.startswith("parks/two_tenants.yaml: ") for x in got)


def test_metering_billing_and_tariff_errors():
    doc = _doc()
    doc["metering"]["billing"] = "split"
    assert any("metering.billing" in x for x in _problems(doc))
    doc = _doc()
    doc["metering"]["meters"][0]["tariff"]["default_tier"] = "none"
    assert any("metering.meters[0].tariff.default_tier: 'none' is not a tier" in x
               for x in _problems(doc))  # fmt: skip
    doc = _doc()
    doc["metering"]["meters"][1]["value_added_10k_cny_per_year"] = 0
    assert any(
        "metering.meters[1].value_added_10k_cny_per_year: must be > 0" in x for x in _problems(doc)
    )


# --------------------------------------------------------------------------------------------
# Invariants of the accounts, for any metered day
# --------------------------------------------------------------------------------------------
_KW = st.floats(-300.0, 300.0, allow_nan=False, allow_infinity=False)
_DAY = st.lists(_KW, min_size=4, max_size=4)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(a=_DAY, b=_DAY, pcc=_DAY, a0=_DAY, b0=_DAY)
def test_per_meter_bills_at_least_the_netted_one_and_allocates_all_of_the_saving(a, b, pcc, a0, b0):
    """Every meter on the site's tariff (export 0.3 <= import 0.4..1.0): per meter, the park
    pays the connection's bill plus (import price - export price) x the energy one meter
    exported while another imported, and its demand charges on peaks that add up to at least
    the connection's. Billed per meter, the meters' own reductions are the park's saving."""
    doc = _doc()
    for x in doc["metering"]["meters"]:
        x.pop("tariff")
    site = _site(doc)
    h = _horizon()
    after = {"A-LV": np.array(a), "B-LV": np.array(b), "PCC": np.array(pcc)}
    before = {"A-LV": np.array(a0), "B-LV": np.array(b0), "PCC": np.array(pcc)}
    rep = tenants.tenant_report(site, h, after, None, before, prorate=False)
    nets = np.array([after["A-LV"], after["B-LV"], after["PCC"]])
    total = nets.sum(axis=0)
    # The energy imported on one meter and exported on another within an interval.
    crossed = np.maximum(nets, 0.0).sum(axis=0) - np.maximum(total, 0.0)
    price = np.array([0.4, 1.0, 1.0, 1.0])
    energy_gap = float(((price - 0.3) * crossed).sum())
    peaks = np.maximum(nets, 0.0).max(axis=1).sum()
    demand_gap = 20.0 * (peaks - max(float(np.maximum(total, 0.0).max()), 0.0))
    assert demand_gap >= -1e-9
    assert rep.park_bill_cny == pytest.approx(
        rep.connection_bill.total_cny + energy_gap + demand_gap, abs=1e-6
    )
    assert rep.park_bill_cny >= rep.connection_bill.total_cny - 1e-6
    allocated = sum(x.allocated_saving_cny for x in rep.meters)
    assert allocated == pytest.approx(rep.park_saving_cny, abs=1e-6)
    assert rep.unallocated_saving_cny == pytest.approx(0.0, abs=1e-6)


def test_a_meters_tariff_outside_its_validity_is_named():
    from vpp.park.coverage import tariff_problem

    doc = _doc()
    doc["metering"]["meters"][0]["tariff"]["valid_to"] = "2026-06-30"
    line = tariff_problem(_site(doc), T0.date(), T0.date())
    assert line is not None
    assert line.startswith("parks/two_tenants.yaml: metering.meters[0].tariff: tariff ")
    assert "'tenant-a-flat'" in line and "2026-07-15" in line
    assert tariff_problem(_site(_doc()), T0.date(), T0.date()) is None


def test_the_service_warns_of_the_day_a_meters_tariff_runs_out():
    """At start the service names the first day it will plan outside a tariff: a tenant
    meter's counts as the site's does (``vpp run``'s warning, vpp.park.coverage)."""
    from vpp.park.coverage import first_uncovered_day

    doc = _doc()
    doc["metering"]["meters"][0]["tariff"]["valid_to"] = "2026-08-31"
    assert first_uncovered_day(_site(doc), T0.date()) == date(2026, 9, 1)
    assert first_uncovered_day(_site(_doc()), T0.date()) > date(2026, 9, 1)
