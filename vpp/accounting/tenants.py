"""Accounts per tenant sub-meter (转供电), from what each meter measured (pure computation).

Every figure is what the park did (realised in the simulated park, or metered), never the
plan. Per meter (:func:`vpp.park.meters.billed_meters`: the tenants', then the park's own
``common`` meter over every bus in no tenant meter):

* **Energy**: the meter's net (the sum of its buses' loads, load convention) split interval by
  interval into import and export (a meter nets within an interval, never across meters).
* **Bill** at the meter's own tariff: import x its TOU price - export x its export price, plus
  its demand charge on its own peak import per calendar month
  (:func:`vpp.accounting.bill.demand_charges`, pro-rated as the park's bill is).
* **CO2** (location-based): its import x the site's grid factor per interval
  (:func:`vpp.park.carbon_factors.series_ef_kg_per_kwh`: the park's series where it covers,
  else its annual factor); exports are not credited.
* **Standard coal** by both methods (:func:`vpp.accounting.carbon.tce`) on the electricity it
  consumed: import - export + the PV generated on its buses; **intensity** against the
  tenant's value added pro rata of the period (tce and CO2 per 10,000 CNY).

What the utility bills the park (``park_bill_cny``) depends on ``metering.billing``:
``netted``, the connection (every bus netted) at the site's tariff, and the park re-bills each
tenant on its meter; ``per_meter``, the sum of the meters' bills (the common meter's included).

**The saving, allocated** (against the park without the VPP, the same buses' loads with no
battery, EVs charging on arrival and shiftable loads at their window's opening:
:mod:`vpp.accounting.counterfactual`): each meter is allocated **its own metered bill
reduction** (its bill without the VPP - its bill). The rule follows cause: a tenant whose
battery shaved its own peak sees that on its own meter, and a tenant the VPP did nothing
for is allocated nothing, where a pro-rata split of the park's saving by bill size would pay
the largest tenant for another's battery. Under ``per_meter`` the park's bill is the sum of the
meters', so the allocations add up to the park's saving exactly. Under ``netted`` they need
not: the connection nets one meter's export against another's import, and that part of the
park's saving (or loss) belongs to no meter; it is reported as ``unallocated_saving_cny`` and
stays with the park.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from vpp.accounting import bill, carbon
from vpp.accounting.counterfactual import uncontrolled_flex_kw
from vpp.park import meters
from vpp.park import tariff as tariffs
from vpp.park.carbon_factors import series_ef_kg_per_kwh
from vpp.park.model import EvSession, Horizon, Site, Tariff

ALLOCATION_RULE = (
    "each meter's own metered bill reduction against the park without the VPP; under netted "
    "billing the connection's netting across meters is the park's (unallocated)"
)


@dataclass(frozen=True)
class Bill:
    """One meter's (or the connection's) bill over a period (CNY, + = paid)."""

    import_kwh: float
    export_kwh: float
    energy_cny: float  # import x TOU price
    export_credit_cny: float  # export x export price (>= 0, subtracted)
    demand_charge_cny: float
    peak_import_kw: float

    @property
    def total_cny(self) -> float:
        return self.energy_cny - self.export_credit_cny + self.demand_charge_cny


def meter_bill(
    net_kw: np.ndarray,
    tariff: Tariff,
    horizon: Horizon,
    site: Site,
    prorate: bool = True,
    peak_before_kw: dict[str, float] | None = None,
) -> Bill:
    """The bill of one meter's net load at ``tariff``.

    Parameters
    ----------
    net_kw : the meter's net load per interval of ``horizon`` (kW, + import, - export).
    tariff : its tariff (prices per interval by :mod:`vpp.park.tariff`, the park's calendar).
    site : the park (its calendar and time zone).
    prorate : pro-rate a partly covered month's demand charge (:mod:`vpp.accounting.bill`).
    peak_before_kw : per month (``YYYY-MM``), the meter's peak before the period.
    """
    net = np.asarray(net_kw, dtype=float)
    imp, exp = np.maximum(net, 0.0), np.maximum(-net, 0.0)
    dt = horizon.dt_h
    # The series rule after the fact (vpp.park.series): what was known at the period's end,
    # a cleared price else the latest forecast, else the TOU price (as the park's bill).
    end = horizon.start + horizon.n * horizon.step
    price, price_exp, _ = tariffs.series_prices_cny_per_kwh(
        tariff, horizon, end, site.calendar, refuse=False
    )
    months = bill.demand_charges(
        imp,
        horizon.times(),
        horizon.step,
        tariff.demand_charge_cny_per_kw_month,
        site.location.tz,
        prorate=prorate,
        peak_before_kw=peak_before_kw,
    )
    return Bill(
        import_kwh=float(imp.sum() * dt),
        export_kwh=float(exp.sum() * dt),
        energy_cny=float(dt * price @ imp),
        export_credit_cny=float(dt * price_exp @ exp),
        demand_charge_cny=float(sum(x.charge_cny for x in months)),
        peak_import_kw=float(imp.max(initial=0.0)),
    )


@dataclass(frozen=True)
class TenantAccount:
    """What one meter measured and is billed over a period (see the module docstring)."""

    meter: str
    common: bool
    buses: tuple[str, ...]
    tariff: str
    bill: Bill
    pv_kwh: float  # PV generated on its buses
    consumption_kwh: float  # import - export + PV generated
    co2_t: float
    tce_equivalent: float
    tce_equal_value: float
    value_added_10k_cny: float | None  # the period's share of the tenant's year
    intensity_tce_per_10k_cny: float | None
    co2_t_per_10k_cny: float | None
    no_vpp_bill_cny: float | None = None
    allocated_saving_cny: float | None = None  # its own bill reduction (ALLOCATION_RULE)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bill"] = asdict(self.bill) | {"total_cny": self.bill.total_cny}
        d["buses"] = list(self.buses)
        return d


@dataclass(frozen=True)
class TenantReport:
    """Every meter's account and the park's bill (see the module docstring)."""

    billing: str
    meters: tuple[TenantAccount, ...]
    connection_bill: Bill  # the connection, every bus netted, at the site's tariff
    park_bill_cny: float  # what the utility bills the park under ``billing``
    no_vpp_park_bill_cny: float | None = None
    park_saving_cny: float | None = None
    unallocated_saving_cny: float | None = None  # netted: the connection's netting, the park's
    rule: str = ALLOCATION_RULE
    days: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "billing": self.billing,
            "days": self.days,
            "park_bill_cny": self.park_bill_cny,
            "connection_bill": asdict(self.connection_bill)
            | {"total_cny": self.connection_bill.total_cny},
            "no_vpp_park_bill_cny": self.no_vpp_park_bill_cny,
            "park_saving_cny": self.park_saving_cny,
            "unallocated_saving_cny": self.unallocated_saving_cny,
            "allocation_rule": self.rule,
            "meters": [x.to_dict() for x in self.meters],
            "notes": list(self.notes),
        }


def meter_net_kw(site: Site, bus_p_kw: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Each meter's net load (kW per interval): the sum of its buses' (absent buses: 0)."""
    zero = np.zeros(n)
    return {
        x.name: sum((np.asarray(bus_p_kw.get(b, zero), dtype=float) for b in x.buses), zero)
        for x in meters.billed_meters(site)
    }


def tenant_report(
    site: Site,
    horizon: Horizon,
    bus_p_kw: Mapping[str, np.ndarray],
    pv_kw_by_bus: Mapping[str, np.ndarray] | None = None,
    no_vpp_bus_p_kw: Mapping[str, np.ndarray] | None = None,
    prorate: bool = True,
) -> TenantReport:
    """The accounts of every meter of ``site`` over ``horizon``.

    Parameters
    ----------
    bus_p_kw : what each bus drew per interval (kW, load convention), realised or metered.
    pv_kw_by_bus : PV generated per bus (kW, >= 0) for the energy figures; None: no PV.
    no_vpp_bus_p_kw : each bus without the VPP (:func:`no_vpp_bus_kw`), for the saving.
    prorate : pro-rate partly covered months' demand charges.
    """
    n = horizon.n
    ef, _ = series_ef_kg_per_kwh(
        site.carbon, horizon, horizon.start + n * horizon.step, refuse=False
    )
    net = meter_net_kw(site, bus_p_kw, n)
    pv = meter_net_kw(site, pv_kw_by_bus or {}, n)
    base = meter_net_kw(site, no_vpp_bus_p_kw, n) if no_vpp_bus_p_kw is not None else None
    accounts = []
    for x in meters.billed_meters(site):
        before = None if base is None else base[x.name]
        accounts.append(_account(site, x, horizon, net[x.name], pv[x.name], before, ef, prorate))
    total = sum(net.values(), np.zeros(n))
    conn = meter_bill(total, site.tariff, horizon, site, prorate)
    per_meter = meters.per_meter(site)
    park = sum(a.bill.total_cny for a in accounts) if per_meter else conn.total_cny
    park_before = park_saving = rest = None
    if base is not None:
        if per_meter:
            park_before = sum(a.no_vpp_bill_cny or 0.0 for a in accounts)
        else:
            total0 = sum(base.values(), np.zeros(n))
            park_before = meter_bill(total0, site.tariff, horizon, site, prorate).total_cny
        park_saving = park_before - park
        rest = park_saving - sum(a.allocated_saving_cny or 0.0 for a in accounts)
    return TenantReport(
        billing=str(site.metering.billing),
        meters=tuple(accounts),
        connection_bill=conn,
        park_bill_cny=float(park),
        no_vpp_park_bill_cny=park_before,
        park_saving_cny=park_saving,
        unallocated_saving_cny=rest,
        days=n * horizon.dt_h / 24.0,
    )


def _account(
    site: Site,
    x: meters.BilledMeter,
    horizon: Horizon,
    net_kw: np.ndarray,
    pv_kw: np.ndarray,
    no_vpp_net_kw: np.ndarray | None,
    ef_kg_per_kwh: np.ndarray,
    prorate: bool,
) -> TenantAccount:
    """One meter's account (see the module docstring)."""
    dt, days = horizon.dt_h, horizon.n * horizon.dt_h / 24.0
    b = meter_bill(net_kw, x.tariff, horizon, site, prorate)
    pv_kwh = float(np.maximum(pv_kw, 0.0).sum() * dt)
    consumption = b.import_kwh - b.export_kwh + pv_kwh
    eq, ev = carbon.tce(consumption, site.carbon.energy_factors)
    co2 = carbon.co2_kg(np.maximum(net_kw, 0.0), ef_kg_per_kwh, dt) / 1000.0
    va = inten = co2_va = None
    if x.value_added_10k_cny_per_year:
        va = carbon.value_added_for_period(x.value_added_10k_cny_per_year, days)
        inten, co2_va = carbon.intensity_tce_per_10k_cny(eq, va), co2 / va
    before = saving = None
    if no_vpp_net_kw is not None:
        before = meter_bill(no_vpp_net_kw, x.tariff, horizon, site, prorate).total_cny
        saving = before - b.total_cny
    return TenantAccount(
        meter=x.name,
        common=x.common,
        buses=x.buses,
        tariff=x.tariff.name,
        bill=b,
        pv_kwh=pv_kwh,
        consumption_kwh=consumption,
        co2_t=co2,
        tce_equivalent=eq,
        tce_equal_value=ev,
        value_added_10k_cny=va,
        intensity_tce_per_10k_cny=inten,
        co2_t_per_10k_cny=co2_va,
        no_vpp_bill_cny=before,
        allocated_saving_cny=saving,
    )


def no_vpp_bus_kw(
    site: Site,
    horizon: Horizon,
    truth: Mapping[str, np.ndarray],
    sessions: Iterable[EvSession] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each bus's load without the VPP (kW per interval): its loads at their true (or
    profile) values, its PV at what was available (clipped to the inverter), no battery, its
    EV chargers and shiftable loads as :func:`vpp.accounting.counterfactual.
    uncontrolled_flex_kw` runs them (``sessions``, or the fleets' seeded draws, once for the
    park). A PEDF building counts at its bus, its battery idle.

    Parameters
    ----------
    truth : per asset name, PV available and loads (kW, >= 0) on ``horizon``.
    """
    import dataclasses

    from vpp.park.sessions import sessions_between

    a, n = site.assets, horizon.n
    out = {b: np.zeros(n) for b in site.bus_names()}
    for x in [*a.base_loads, *a.curtailable_loads]:
        out[x.bus] += np.asarray(truth[x.name], dtype=float)
    for x in a.pv_arrays:
        out[x.bus] -= np.minimum(np.asarray(truth[x.name], dtype=float), x.inverter_kw)
    for pe in a.pedf_buildings:
        out[pe.bus] += np.asarray(truth[pe.base_load.name], dtype=float)
        out[pe.bus] -= np.minimum(np.asarray(truth[pe.pv.name], dtype=float), pe.pv.inverter_kw)
        if pe.flexible_load:
            out[pe.bus] += np.asarray(truth[pe.flexible_load.name], dtype=float)
    if sessions is None:
        sessions = sessions_between(
            site.ev_fleets, a.ev_chargers, horizon.start, horizon.end, site.location.tz,
            seed, site.calendar,
        )  # fmt: skip
    sessions = list(sessions)
    for bus in out:
        chargers = tuple(c for c in a.ev_chargers if c.bus == bus)
        shift = tuple(s for s in a.shiftable_loads if s.bus == bus)
        if not chargers and not shift:
            continue
        own = dataclasses.replace(
            site, assets=dataclasses.replace(a, ev_chargers=chargers, shiftable_loads=shift)
        )
        names = {c.name for c in chargers}
        out[bus] += uncontrolled_flex_kw(
            own, horizon, seed, [s for s in sessions if s.charger in names]
        )
    return out


def pv_by_bus_kw(site: Site, pv_kw: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """PV generated per bus (kW, >= 0) from each array's (and PEDF building's array's) output
    (load convention, so generation is - ``p_kw``; absent arrays: 0)."""
    out = {b: np.zeros(n) for b in site.bus_names()}
    arrays = [(x.name, x.bus) for x in site.assets.pv_arrays]
    arrays += [(pe.pv.name, pe.bus) for pe in site.assets.pedf_buildings]
    for name, bus in arrays:
        if name in pv_kw:
            out[bus] += np.maximum(-np.asarray(pv_kw[name], dtype=float), 0.0)
    return out


def tenant_rows(doc: dict) -> list[dict]:
    """One flat row per meter of a :meth:`TenantReport.to_dict` (for tables: the simulation
    report, ``vpp carbon report``): energy, bill lines, peak, CO2, coal, intensity, saving."""
    out = []
    for x in doc["meters"]:
        b = x["bill"]
        out.append(
            {
                "meter": x["meter"],
                "tariff": x["tariff"],
                "import_kwh": b["import_kwh"],
                "export_kwh": b["export_kwh"],
                "energy_cny": b["energy_cny"],
                "export_credit_cny": b["export_credit_cny"],
                "demand_charge_cny": b["demand_charge_cny"],
                "bill_cny": b["total_cny"],
                "peak_import_kw": b["peak_import_kw"],
                "co2_t": x["co2_t"],
                "tce_equivalent": x["tce_equivalent"],
                "tce_equal_value": x["tce_equal_value"],
                "intensity_tce_per_10k_cny": x["intensity_tce_per_10k_cny"],
                "no_vpp_bill_cny": x["no_vpp_bill_cny"],
                "allocated_saving_cny": x["allocated_saving_cny"],
            }
        )
    return out


def summary_line(doc: dict) -> str:
    """The park's bill under its contract and the saving's allocation, in one sentence."""
    how = {
        "netted": "netted: the utility bills the connection at the site's tariff",
        "per_meter": "per_meter: each meter is billed on its own, no netting across meters",
    }[doc["billing"]]
    line = f"billing {how}; the park's bill {doc['park_bill_cny']:,.2f} CNY"
    if doc["park_saving_cny"] is not None:
        line += (
            f", {doc['park_saving_cny']:,.2f} CNY less than without the VPP; allocated: "
            f"{doc['allocation_rule']} (unallocated "
            f"{round(doc['unallocated_saving_cny'], 2) + 0.0:,.2f} CNY)"
        )
    return line
