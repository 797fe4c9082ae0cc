"""A tiny park for the simulation tests (built in code: no files) and a park whose truth is
constant (no profiles read), so the physics can be checked by hand."""

from __future__ import annotations

from datetime import time, timedelta

import numpy as np

from vpp.park.model import (
    Assets,
    BaseLoad,
    Battery,
    Bus,
    Carbon,
    CurtailableLoad,
    DayType,
    DispatchSettings,
    EmissionFactor,
    EvCharger,
    EvFleet,
    GridConnection,
    Location,
    PedfBuilding,
    Profile,
    PvArray,
    ShiftableLoad,
    Site,
    Tariff,
    TariffPeriod,
    TariffSeason,
)
from vpp.sim.simulated_park import SimOptions, SimulatedPark


def tiny_site(horizon_steps: int = 16, ev_prob: float = 1.0) -> Site:
    lv = "LV"
    periods = (
        TariffPeriod(time(0), time(8), "valley"),
        TariffPeriod(time(8), time(22), "peak"),
        TariffPeriod(time(22), time(0), "valley"),
    )
    tariff = Tariff(
        name="test",
        tiers_cny_per_kwh={"valley": 0.3, "peak": 1.0},
        seasons=(TariffSeason("all", tuple(range(1, 13)), {DayType.WORKDAY: periods}),),
        default_tier="peak",
        export_cny_per_kwh=0.4,
        demand_charge_cny_per_kw_month=40.0,
    )
    pedf = PedfBuilding(
        name="P1",
        bus=lv,
        converter_kw=50.0,
        pv=PvArray("P1-pv", lv, kwp=30.0, inverter_kw=27.0),
        battery=Battery("P1-bat", lv, 40.0, 20.0, 20.0),
        base_load=BaseLoad("P1-base", lv, Profile("simbench:G1-A", 30.0)),
    )
    assets = Assets(
        pv_arrays=(PvArray("PV1", lv, kwp=100.0, inverter_kw=90.0),),
        batteries=(Battery("bat", lv, 100.0, 50.0, 50.0),),
        ev_chargers=(EvCharger("EV1", lv, 7.0), EvCharger("EV2", lv, 11.0, v2g=True)),
        shiftable_loads=(ShiftableLoad("rig", lv, 20.0, time(8), time(18), 10.0),),
        curtailable_loads=(CurtailableLoad("hvac", lv, Profile("simbench:G1-C", 50.0), 0.3),),
        base_loads=(BaseLoad("base", lv, Profile("simbench:G1-B", 200.0)),),
        pedf_buildings=(pedf,),
    )
    fleet = EvFleet(
        "cars", ("EV1", "EV2"), plug_in_prob=ev_prob, e_mean_kwh=15, workdays_only=False
    )
    return Site(
        name="tiny",
        location=Location(30.19, 120.19, 10.0),
        connection=GridConnection("PCC", 10.0, 1000.0, 500.0, 200.0),
        buses=(Bus("PCC", 10.0, "connection"), Bus(lv, 0.4)),
        assets=assets,
        tariff=tariff,
        carbon=Carbon(EmissionFactor(0.5, 2022, "test", "test factor")),
        dispatch=DispatchSettings(horizon_steps=horizon_steps),
        value_added_10k_cny_per_year=1000.0,
        ev_fleets=(fleet,),
    )


class ConstantPark(SimulatedPark):
    """A simulated park whose truth is a constant per asset (kW): no profiles read."""

    def __init__(self, site: Site, levels: dict[str, float], **kw):
        super().__init__(site, options=kw.pop("options", SimOptions(load_noise_frac=0.0)), **kw)
        self.levels = levels

    def _day_truth(self, d):
        return {n: np.full(self.steps_per_day, v) for n, v in self.levels.items()}


LEVELS = {
    "PV1": 60.0,
    "P1-pv": 20.0,
    "base": 150.0,
    "hvac": 40.0,
    "P1-base": 25.0,
}


def test_tiny_site_is_consistent() -> None:
    site = tiny_site()
    assert set(site.assets.names()) >= {"PV1", "bat", "EV1", "EV2", "rig", "hvac", "base", "P1"}
    assert site.dispatch.horizon_steps == 16
    assert timedelta(minutes=site.dispatch.step_minutes) == timedelta(minutes=15)
