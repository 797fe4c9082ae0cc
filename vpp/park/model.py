"""The park and everything the controller reasons about, as frozen dataclasses.

Sign convention (the one place it is written): **load convention**. A positive power is
consumption or charging, a negative power is generation or discharging. The park's net power
at the grid connection is positive when it imports and negative when it exports. This is the
convention of pandapower's ``storage`` element and of FlexMeasures.

Units are part of every name: ``p_kw``, ``e_kwh``, ``soc_frac`` (0-1), ``dt_h``,
``price_cny_per_kwh``, ``ef_kg_per_kwh``. The core works in kW and kWh; MW appears only where
pandapower is called. Time series are numpy arrays on a :class:`Horizon`.

Nothing here does I/O; :mod:`vpp.park.config` builds these objects from YAML and validates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal

import numpy as np

from vpp.park.battery_detail import ChargeTaper, EfficiencySegment
from vpp.park.circuits import PHASES, LimitGroup, PilotCurrents, kw_per_a  # noqa: F401 (re-exported)
from vpp.park.dispatch_settings import (  # noqa: F401 (re-exported)
    RISK_FRAC_MAX,
    DispatchSettings,
    GiveWay,
    MarginBands,
    Penalties,
)
from vpp.park.field_settings import FieldDevices, MqttBroker, OcppServer  # noqa: F401 (re-exported)
from vpp.park.series import EmissionFactorSeries, EnergySeries

DEFAULT_TZ = "Asia/Shanghai"
# The telemetry name of the park meter at the grid connection (import +, export -).
PARK_METER = "park"


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Horizon:
    """A regular grid of ``n`` intervals of length ``step`` starting at ``start`` (tz-aware).

    Interval ``k`` covers ``[start + k*step, start + (k+1)*step)``. Powers on a horizon are
    interval averages; energies (SOC) are on the ``n + 1`` boundaries.

    Arithmetic is in UTC (Python's on aware datetimes of one ``tzinfo`` is in wall time): in
    a zone with daylight saving, four one-hour intervals from 00:00 on the night the clocks
    go forward start at 00:00, 01:00, 03:00, 04:00 local. Times are in ``start``'s zone.
    """

    start: datetime
    step: timedelta = timedelta(minutes=15)
    n: int = 96

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("Horizon.start must be timezone-aware")
        if self.step <= timedelta(0):
            raise ValueError("Horizon.step must be positive")
        if self.n < 1:
            raise ValueError("Horizon.n must be at least 1")

    @property
    def dt_h(self) -> float:
        """Interval length in hours."""
        return self.step.total_seconds() / 3600.0

    @property
    def end(self) -> datetime:
        return self.at(self.n)

    def at(self, k: int) -> datetime:
        """Boundary ``k`` (the start of interval ``k``), ``k`` real steps after ``start``."""
        tz = self.start.tzinfo
        return (self.start.astimezone(UTC) + k * self.step).astimezone(tz)

    def times(self) -> list[datetime]:
        """Start time of every interval (tz-aware, in ``start``'s zone)."""
        tz = self.start.tzinfo
        t0 = self.start.astimezone(UTC)
        return [(t0 + k * self.step).astimezone(tz) for k in range(self.n)]

    def index_of(self, t: datetime) -> int:
        """Index of the interval boundary at or after ``t`` (clipped to ``0..n``)."""
        elapsed = t.astimezone(UTC) - self.start.astimezone(UTC)
        k = math.ceil(elapsed / self.step - 1e-9)
        return int(min(max(k, 0), self.n))

    def shifted(self, k: int) -> Horizon:
        """The same grid moved by ``k`` intervals."""
        return Horizon(self.at(k), self.step, self.n)


# --------------------------------------------------------------------------------------------
# Site and network
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    latitude_deg: float
    longitude_deg: float
    altitude_m: float = 0.0
    tz: str = DEFAULT_TZ


@dataclass(frozen=True)
class Bus:
    """A node of the park's network. Buildings sit on 0.4 kV buses behind a transformer."""

    name: str
    vn_kv: float
    kind: str = "building"  # "connection" | "mv" | "building"
    building: str | None = None


@dataclass(frozen=True)
class GridConnection:
    """The park's point of common coupling with the utility."""

    bus: str
    vn_kv: float
    transformer_kva: float
    import_max_kw: float
    export_max_kw: float
    power_factor_min: float = 0.95

    @property
    def transformer_p_max_kw(self) -> float:
        """Active power the connection transformer carries at the minimum power factor."""
        return self.transformer_kva * self.power_factor_min


@dataclass(frozen=True)
class Transformer:
    name: str
    hv_bus: str
    lv_bus: str
    sn_kva: float
    std_type: str | None = None
    vk_percent: float = 6.0
    vkr_percent: float = 1.0


@dataclass(frozen=True)
class Line:
    name: str
    from_bus: str
    to_bus: str
    length_km: float
    std_type: str
    parallel: int = 1


@dataclass(frozen=True)
class Network:
    """Park network beyond the buses: transformers and cables. Used by :mod:`vpp.grid.network`."""

    transformers: tuple[Transformer, ...] = ()
    lines: tuple[Line, ...] = ()
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    loading_max_percent: float = 100.0
    pandapower_json: str | None = None
    simbench_code: str | None = None
    # The AC checks add pandapower's unbalanced three-phase flow (vpp.grid.unbalanced):
    # "auto" when a single-phase or line-to-line charger sits on the park's own network,
    # "on" always, "off" never. Zero-sequence data are typical values (ZeroSequence).
    unbalanced: Literal["auto", "on", "off"] = "auto"


# --------------------------------------------------------------------------------------------
# Assets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A reference to a measured profile shipped in a package, scaled to this asset.

    ``source`` is ``"simbench:<column>"`` (e.g. ``simbench:G1-B`` for a commercial load,
    ``simbench:PV3`` for the cloudiness of a PV plant). ``scale`` multiplies the normalised
    profile (peak kW for loads).
    """

    source: str
    scale: float = 1.0


# --------------------------------------------------------------------------------------------
# Field devices: where an asset is reached (vpp.drivers.field composes the adapters)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OcppEndpoint:
    """An EV charger reached as one connector (OCPP 1.6J) or EVSE (2.0.1) of a charge point
    that connects to park-vpp's OCPP central system."""

    # The charge point's identity (the last part of its URL, its basic-auth user name).
    station: str
    # The connector id (OCPP 1.6J) or EVSE id (OCPP 2.0.1), from 1.
    connector: int = 1
    # Phases the connector charges on: converts kW to A for a station that takes A only.
    phases: int = 3


@dataclass(frozen=True)
class ModbusEndpoint:
    """A device on Modbus TCP: a SunSpec inverter or storage PCS, or a vendor map's PCS."""

    host: str
    # Register map file (configs/registers/), path relative to the park file.
    register_map: str
    port: int = 502
    # Modbus unit id (slave address) behind the host, 0-247.
    unit_id: int = 1


@dataclass(frozen=True)
class Endpoint:
    """How park-vpp reaches an asset: an OCPP connector, a Modbus device, and/or an MQTT
    topic its readings arrive on (a meter; vpp.drivers.mqtt_telemetry documents the
    payload)."""

    ocpp: OcppEndpoint | None = None
    modbus: ModbusEndpoint | None = None
    # MQTT topic of the asset's readings (JSON {ts, p_kw, e_kwh}), exact (no wildcards).
    mqtt_topic: str | None = None


@dataclass(frozen=True)
class PvArray:
    name: str
    bus: str
    kwp: float
    inverter_kw: float
    tilt_deg: float = 20.0
    azimuth_deg: float = 180.0
    curtailable: bool = True
    weather: str = "simbench:PV3"  # measured PV profile that supplies the cloudiness
    losses_frac: float = 0.14
    gamma_pdc_per_c: float = -0.0037
    # Where the inverter is reached (Modbus TCP, SunSpec); None: not a field device.
    endpoint: Endpoint | None = None


@dataclass(frozen=True)
class Battery:
    name: str
    bus: str
    e_kwh: float
    p_charge_max_kw: float
    p_discharge_max_kw: float
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min_frac: float = 0.1
    soc_max_frac: float = 0.95
    soc_init_frac: float = 0.5
    degradation_cny_per_kwh: float = 0.05
    # Value of energy left at the end of the horizon; None = mean import price x eta_discharge.
    terminal_value_cny_per_kwh: float | None = None
    # Where the storage PCS is reached (Modbus TCP: SunSpec or a vendor map).
    endpoint: Endpoint | None = None
    # Charge power falling near full (vpp.park.battery_detail); None: the rating at any SOC.
    taper: ChargeTaper | None = None
    # Efficiency by power segment, falling with power; empty: eta_charge, eta_discharge.
    efficiency_segments: tuple[EfficiencySegment, ...] = ()

    @property
    def e_min_kwh(self) -> float:
        return self.soc_min_frac * self.e_kwh

    @property
    def e_max_kwh(self) -> float:
        return self.soc_max_frac * self.e_kwh

    def terminal_value(self, mean_import_price_cny_per_kwh: float) -> float:
        """Value of a kWh left in the battery (CNY/kWh): the configured value, else what it
        saves when discharged later at ``mean_import_price_cny_per_kwh``. The planner values
        its horizon's end with it and the bill a run's end. Lower (the cheapest price) and a
        rolling horizon empties every battery each day; higher and it never discharges."""
        if self.terminal_value_cny_per_kwh is not None:
            return self.terminal_value_cny_per_kwh
        return mean_import_price_cny_per_kwh * self.eta_discharge


@dataclass(frozen=True)
class EvCharger:
    name: str
    bus: str
    p_max_kw: float
    p_min_kw: float = 0.0  # minimum power while charging (0 = none)
    v2g: bool = False
    eta: float = 0.95  # grid to battery (and battery to grid for V2G)
    # Who gives way first (first | normal | last) for the sessions on this charger; a
    # session's own priority, or its fleet's, comes before it.
    give_way: GiveWay = GiveWay.NORMAL
    # Where the charger is reached (an OCPP connector or EVSE).
    endpoint: Endpoint | None = None
    # How it is connected: three_phase, single-phase on A, B or C, or line-to-line AB, BC, CA.
    phase: str = "three_phase"
    # Nominal line-to-line voltage of the supply it hangs on (400 in China, 208 in a US garage).
    voltage_v: float = 400.0
    # The pilot currents it can be set to (None: any power in [p_min_kw, p_max_kw], or 0).
    pilot: PilotCurrents | None = None


def charger_steps_kw(c: EvCharger) -> tuple[float, ...]:
    """The powers ``c`` can be set to (kW, ascending, 0 first), from its pilot currents, those
    at or above ``p_min_kw`` and at most ``p_max_kw``; () when it has no pilot steps."""
    if c.pilot is None:
        return ()
    k = kw_per_a(c.phase, c.voltage_v)
    steps = {round(k * i, 9) for i in c.pilot.currents_a()}
    return (0.0, *sorted(x for x in steps if c.p_min_kw - 1e-9 <= x <= c.p_max_kw + 1e-9))


@dataclass(frozen=True)
class EvSession:
    """A car plugged into ``charger`` from ``arrival`` to ``departure``.

    ``e_needed_kwh`` is the energy to deliver into the car's battery before departure.
    ``target_e_kwh`` / ``target_time``: optional intermediate target (energy delivered by then).
    ``e_delivered_kwh``: energy already delivered in this session (from telemetry).
    """

    session_id: str
    charger: str
    arrival: datetime
    departure: datetime
    e_needed_kwh: float
    p_max_kw: float | None = None
    e_delivered_kwh: float = 0.0
    target_e_kwh: float | None = None
    target_time: datetime | None = None
    # V2G only: energy in the car at arrival above which it may be discharged.
    e_dischargeable_kwh: float = 0.0
    # Who gives way first (first | normal | last); None: the charger's priority.
    give_way: GiveWay | None = None

    @property
    def e_remaining_kwh(self) -> float:
        return max(self.e_needed_kwh - self.e_delivered_kwh, 0.0)


def session_give_way(session: EvSession, charger: EvCharger) -> GiveWay:
    """The priority ``session`` gives way with: its own (a fleet's sessions carry the
    fleet's), else its charger's."""
    return GiveWay(session.give_way) if session.give_way is not None else charger.give_way


@dataclass(frozen=True)
class EvFleet:
    """How cars use a group of chargers, for generating sessions (demo, simulation).

    Each day (workdays only when ``workdays_only``) each charger gets a session with
    probability ``plug_in_prob``; arrival, dwell and energy are normal draws (clipped).
    """

    name: str
    chargers: tuple[str, ...]
    plug_in_prob: float = 0.8
    arrival_mean_h: float = 8.5
    arrival_sd_h: float = 0.75
    dwell_mean_h: float = 8.5
    dwell_sd_h: float = 1.5
    e_mean_kwh: float = 20.0
    e_sd_kwh: float = 7.0
    workdays_only: bool = True
    # Who gives way first (first | normal | last), given to the fleet's sessions; None:
    # each charger's priority.
    give_way: GiveWay | None = None


@dataclass(frozen=True)
class ShiftableLoad:
    """A load that must consume ``e_kwh`` inside a daily window, at ``p_min_kw..p_max_kw``
    while running, for at least ``min_run_steps`` intervals once started."""

    name: str
    bus: str
    e_kwh: float
    window_start: time
    window_end: time
    p_max_kw: float
    p_min_kw: float = 0.0
    min_run_steps: int = 1
    # Who gives way first (first | normal | last) when its window's energy cannot all be
    # consumed.
    give_way: GiveWay = GiveWay.NORMAL


def window_start(spec: ShiftableLoad, t: datetime) -> datetime | None:
    """Start of the occurrence of ``spec``'s daily window that contains local time ``t``."""
    for day in (t.date() - timedelta(days=1), t.date()):
        start = datetime.combine(day, spec.window_start, tzinfo=t.tzinfo)
        wraps = spec.window_end <= spec.window_start
        end_day = day + timedelta(days=1) if wraps else day
        end = datetime.combine(end_day, spec.window_end, tzinfo=t.tzinfo)
        if start <= t < end:
            return start
    return None


@dataclass(frozen=True)
class CurtailableLoad:
    """A load that follows its baseline profile unless curtailed (HVAC, cold storage).

    Up to ``curtail_max_frac`` of the baseline may be shed, at ``cost_cny_per_kwh`` not served.
    ``give_way``: ``first`` (the default) curtails whenever that cost pays and before any EV
    or shiftable energy gives way; ``normal`` or ``last`` curtails only when a DR call or a
    limit leaves no other way, ranked with the EV sessions and shiftable loads of that level.
    """

    name: str
    bus: str
    baseline: Profile
    curtail_max_frac: float = 0.3
    cost_cny_per_kwh: float = 0.8
    # Who gives way first (first | normal | last): first = curtailed whenever its cost pays.
    give_way: GiveWay = GiveWay.FIRST


@dataclass(frozen=True)
class BaseLoad:
    """An inflexible load (a building's base consumption)."""

    name: str
    bus: str
    profile: Profile
    # Where its meter's readings arrive (an MQTT topic).
    endpoint: Endpoint | None = None


@dataclass(frozen=True)
class PedfBuilding:
    """PV-storage-DC-flexible building: PV, battery, flexible and base load behind one AC/DC
    interface converter limited to ``converter_kw``. The dispatch sets its grid exchange."""

    name: str
    bus: str
    converter_kw: float
    pv: PvArray
    battery: Battery
    base_load: BaseLoad
    flexible_load: CurtailableLoad | None = None
    converter_eta: float = 0.97


@dataclass(frozen=True)
class Assets:
    pv_arrays: tuple[PvArray, ...] = ()
    batteries: tuple[Battery, ...] = ()
    ev_chargers: tuple[EvCharger, ...] = ()
    shiftable_loads: tuple[ShiftableLoad, ...] = ()
    curtailable_loads: tuple[CurtailableLoad, ...] = ()
    base_loads: tuple[BaseLoad, ...] = ()
    pedf_buildings: tuple[PedfBuilding, ...] = ()

    def by_kind(self) -> tuple[tuple[str, tuple], ...]:
        """Each top-level group with its kind's name (as the API names it), in this order."""
        return (
            ("pv", self.pv_arrays),
            ("battery", self.batteries),
            ("ev_charger", self.ev_chargers),
            ("shiftable", self.shiftable_loads),
            ("curtailable", self.curtailable_loads),
            ("base_load", self.base_loads),
            ("pedf", self.pedf_buildings),
        )

    def names(self) -> list[str]:
        return [a.name for _, group in self.by_kind() for a in group]


# --------------------------------------------------------------------------------------------
# Tariffs and carbon
# --------------------------------------------------------------------------------------------
class DayType(StrEnum):
    WORKDAY = "workday"
    WEEKEND = "weekend"
    HOLIDAY = "holiday"


@dataclass(frozen=True)
class TariffPeriod:
    """``tier`` applies from ``start`` (inclusive) to ``end`` (exclusive); ``end`` 00:00 = 24:00."""

    start: time
    end: time
    tier: str


@dataclass(frozen=True)
class TariffSeason:
    """A season: the months it covers and a daily schedule per day type.

    ``schedules`` maps a :class:`DayType` to its periods; a day type without an entry uses the
    workday schedule. Periods not covered by any entry fall back to the tariff's default tier.
    """

    name: str
    months: tuple[int, ...]
    schedules: dict[DayType, tuple[TariffPeriod, ...]]


@dataclass(frozen=True)
class Tariff:
    """Time-of-use energy prices, an export price and a monthly demand charge, as data."""

    name: str
    tiers_cny_per_kwh: dict[str, float]
    seasons: tuple[TariffSeason, ...]
    default_tier: str
    export_cny_per_kwh: float = 0.0
    demand_charge_cny_per_kw_month: float = 0.0
    weekend_as: DayType = DayType.WORKDAY  # most Chinese C&I TOU tariffs ignore weekends
    source: str = ""
    # The days the tariff applies to, both inclusive (None: open-ended); the commands refuse
    # to price a day outside them unless told to (vpp.park.coverage).
    valid_from: date | None = None
    valid_to: date | None = None
    source_file: str = ""  # the tariff file it was read from ("" when inline in the park file)
    energy_series: EnergySeries | None = None  # spot prices over the TOU (vpp.park.series)


@dataclass(frozen=True)
class ParkCalendar:
    """The park's own public holidays and make-up working days (调休), local dates.

    For the years the ``chinese_calendar`` package does not know yet, or a local holiday; a
    date listed here takes precedence over the package (:mod:`vpp.park.calendar`). A year is
    covered by the park when ``holidays`` lists at least one of its days (the configuration
    asks for the year's statutory days at least).
    """

    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()

    def years(self) -> frozenset[int]:
        """The years whose holidays the park supplies."""
        return frozenset(d.year for d in self.holidays)


@dataclass(frozen=True)
class EmissionFactor:
    """Location-based grid CO2 factor: a dated annual value and an optional hourly series."""

    ef_kg_per_kwh: float
    year: int
    region: str
    source: str
    hourly_ef_kg_per_kwh: tuple[float, ...] | None = None  # 24 values, hour of day (local)
    series: EmissionFactorSeries | None = None  # a dated series over it (vpp.park.series)


@dataclass(frozen=True)
class EnergyFactors:
    """Standard coal conversion (GB/T 2589) by the two methods; report both."""

    equivalent_kgce_per_kwh: float = 0.1229
    equal_value_kgce_per_kwh: float = 0.30
    source: str = ""


@dataclass(frozen=True)
class Carbon:
    emission_factor: EmissionFactor
    energy_factors: EnergyFactors = field(default_factory=EnergyFactors)
    carbon_price_cny_per_t: float = 0.0


# --------------------------------------------------------------------------------------------
# Tenant sub-meters (转供电) and how the contract bills them (vpp.park.meters)
# --------------------------------------------------------------------------------------------
class Billing(StrEnum):
    NETTED = "netted"
    PER_METER = "per_meter"


# The park's own residual meter: every bus no tenant meter measures (common services).
COMMON_METER = "common"


@dataclass(frozen=True)
class Meter:
    """A tenant's sub-meter: the buses it measures, its tariff and its value added.

    A bus belongs to at most one meter; the buses in none are the park's own ``common``
    meter (shared services), billed at the site's tariff. ``tariff`` None: the site's tariff.
    """

    name: str
    buses: tuple[str, ...]
    tariff: Tariff | None = None
    # The tenant's value added (10,000 CNY a year), for its intensity figures; None: none.
    value_added_10k_cny_per_year: float | None = None


@dataclass(frozen=True)
class Metering:
    """The park's sub-meters and how its contract bills (``metering`` in the park file).

    ``billing``: ``netted`` (the utility bills the connection, where every bus nets; the park
    re-bills each tenant on its own meter; the dispatch minimises the connection's bill) or
    ``per_meter`` (each meter is billed on its own import and export at its own tariff, no
    netting across meters; the dispatch minimises the sum of the meters' bills, within the
    connection's limits).
    """

    billing: Billing = Billing.NETTED
    meters: tuple[Meter, ...] = ()


# --------------------------------------------------------------------------------------------
# Demand response
# --------------------------------------------------------------------------------------------
class DrDirection(StrEnum):
    PEAK_SHAVING = "peak_shaving"  # reduce import
    VALLEY_FILLING = "valley_filling"  # raise import


class DrCallClass(StrEnum):
    DAY_AHEAD = "day_ahead"
    INTRADAY = "intraday"
    HOUR_LEVEL = "hour_level"
    MINUTE_LEVEL = "minute_level"


class DrContractType(StrEnum):
    PRE_AGREED = "pre_agreed"
    INVITATION = "invitation"


class DrStatus(StrEnum):
    ANNOUNCED = "announced"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class DrWindow:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DemandResponseEvent:
    """A DR call (fields after GB/T 32672 / DL/T 1867 practice, see shared/DOMAIN.md).

    The dispatch honours a confirmed event either as an absolute import cap
    (``import_cap_kw``) or as a change of ``cleared_kw`` (or ``requested_kw``) against the
    baseline, in the direction given.
    """

    event_id: str
    direction: DrDirection
    windows: tuple[DrWindow, ...]
    requested_kw: float
    issuer: str = ""
    call_class: DrCallClass = DrCallClass.DAY_AHEAD
    contract_type: DrContractType = DrContractType.INVITATION
    announce_time: datetime | None = None
    confirm_deadline: datetime | None = None
    cleared_kw: float | None = None
    import_cap_kw: float | None = None
    price_cap_cny_per_mwh: float | None = None
    price_floor_cny_per_mwh: float | None = None
    # Compensation terms (None: the park's ``dr_defaults``): CNY per kWh of effective
    # response, CNY per kW of effective response per event, and CNY per kWh of shortfall
    # (below the band's lower edge, or above the cap) where the contract has a penalty.
    subsidy_cny_per_kwh: float | None = None
    subsidy_cny_per_kw: float | None = None
    baseline_method: str = "gbt37016_5of10"
    effective_band_frac: tuple[float, float] = (0.8, 1.2)
    min_duration: timedelta = timedelta(hours=1)
    status: DrStatus = DrStatus.ANNOUNCED
    nonperformance_cny_per_kwh: float | None = None
    # A command the park has acknowledged (an IEC 104 set-point it confirmed with a positive
    # ACT_CON): the plan follows it whatever it costs; it is never weighed against the bill
    # (:mod:`controllers.dr_choice`).
    binding: bool = False

    @property
    def target_kw(self) -> float:
        return self.cleared_kw if self.cleared_kw is not None else self.requested_kw

    @property
    def cap_only(self) -> bool:
        """An absolute import cap without a cleared amount: settled as compliance."""
        return (
            self.direction is DrDirection.PEAK_SHAVING
            and self.import_cap_kw is not None
            and self.cleared_kw is None
        )


@dataclass(frozen=True)
class DrTerms:
    """DR compensation terms: the park's defaults (``dr_defaults`` in the park file), which
    an event's own terms override (:func:`dr_terms`). No subsidy and no penalty unless
    configured; ``source`` says where the numbers come from."""

    subsidy_cny_per_kwh: float = 0.0
    subsidy_cny_per_kw: float = 0.0
    nonperformance_cny_per_kwh: float = 0.0
    source: str = ""


def dr_terms(event: DemandResponseEvent, defaults: DrTerms | None = None) -> DrTerms:
    """The terms ``event`` is settled on: its own where given, else ``defaults``."""
    d = defaults or DrTerms()

    def pick(own: float | None, park: float) -> float:
        return float(own) if own is not None else float(park)

    return DrTerms(
        pick(event.subsidy_cny_per_kwh, d.subsidy_cny_per_kwh),
        pick(event.subsidy_cny_per_kw, d.subsidy_cny_per_kw),
        pick(event.nonperformance_cny_per_kwh, d.nonperformance_cny_per_kwh),
        d.source,
    )


class DrAutoConfirm(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    WHEN_COVERED = "when_covered"


@dataclass(frozen=True)
class DrPolicy:
    """What the park does with a DR invitation on receipt (``dr_policy`` in the park file).

    ``auto_confirm``: ``never`` (an operator confirms each invitation before its deadline;
    until then the plan does not honour it), ``always`` (confirmed on receipt, as a
    pre-agreed contract is), ``when_covered`` (confirmed on receipt when the current plan's
    flexibility envelope can hold the request, plus ``margin_frac`` of it, in every window
    interval inside the horizon and the horizon covers the whole window; otherwise left for
    an operator, with the reason in the event's history).
    """

    auto_confirm: DrAutoConfirm = DrAutoConfirm.NEVER
    # when_covered: the envelope must hold the request plus this fraction of it (0-1).
    margin_frac: float = 0.0


# --------------------------------------------------------------------------------------------
# The site (penalties and dispatch settings: vpp.park.dispatch_settings; field devices:
# vpp.park.field_settings)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    name: str
    location: Location
    connection: GridConnection
    buses: tuple[Bus, ...]
    assets: Assets
    tariff: Tariff
    carbon: Carbon
    network: Network = field(default_factory=Network)
    penalties: Penalties = field(default_factory=Penalties)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    value_added_10k_cny_per_year: float | None = None
    dr_events: tuple[DemandResponseEvent, ...] = ()
    dr_defaults: DrTerms = field(default_factory=DrTerms)
    dr_policy: DrPolicy = field(default_factory=DrPolicy)
    ev_sessions: tuple[EvSession, ...] = ()
    # Seeded generators of EV sessions for the demo and the simulated park (vpp.park.sessions).
    ev_fleets: tuple[EvFleet, ...] = ()
    # Holidays and make-up working days the park supplies itself (vpp.park.calendar).
    calendar: ParkCalendar = field(default_factory=ParkCalendar)
    # The OCPP central system, MQTT broker and Modbus time-outs of ``vpp run --driver field``.
    field_devices: FieldDevices = field(default_factory=FieldDevices)
    # Named limits on what groups of assets or buses draw together (nested; vpp.park.limit_groups).
    limit_groups: tuple[LimitGroup, ...] = ()
    source_file: str = ""
    # Tenant sub-meters and whether the contract bills them netted or per meter.
    metering: Metering = field(default_factory=Metering)

    def bus_names(self) -> list[str]:
        return [b.name for b in self.buses]


def as_array(values: object, n: int, name: str) -> np.ndarray:
    """A float array of length ``n`` from a scalar or a sequence; names the field on error."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} values, got shape {arr.shape}")
    return arr
