"""Request and response bodies. Input is validated here, once: finite numbers, bounded sizes,
timezone-aware times; a 422 names the offending field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from vpp.park.dr_checks import EVENT_ID_PATTERN, TEXT_MAX_CHARS, DrBaselineMethod
from vpp.park.model import DrCallClass, DrContractType, DrDirection

KW = 1e6  # no park asset or request exceeds 1 GW
Name = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@/ -]+$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(allow_inf_nan=True)


# ------------------------------------------------------------------------------------------
# Telemetry
# ------------------------------------------------------------------------------------------
class Reading(_In):
    asset: str = Field(
        min_length=1, max_length=100, description="asset name, or 'park' for the park meter"
    )
    ts: AwareDatetime
    p_kw: float | None = Field(None, ge=-KW, le=KW, description="load convention: + consumes")
    e_kwh: float | None = Field(None, ge=0, le=1e7, description="stored energy (batteries)")


class TelemetryBatch(_In):
    readings: list[Reading] = Field(min_length=1, max_length=200_000)


class RefusedReading(_Out):
    index: int = Field(description="position in the batch's readings (0-based)")
    asset: str
    field: str = Field(description="the first offending field: ts, p_kw or e_kwh")
    reason: str = Field(description="every rule the reading breaks, with its bound")


class IngestResult(_Out):
    stored: int = Field(description="readings stored")
    refused: list[RefusedReading] | None = Field(
        None,
        description="readings refused as implausible (from the future, beyond what the asset "
        "can report; see vpp.park.telemetry_checks), never stored; absent when none was",
    )


# ------------------------------------------------------------------------------------------
# Demand response
# ------------------------------------------------------------------------------------------
# Types, enumerations and sizes here; what the values mean for the park (window length and
# overlap, kW against the connection, the window range around now, printable text) in
# vpp.park.dr_checks, which the route runs as the park file and a --dr file do.
class DrWindowIn(_In):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class _DrFields(_In):
    direction: DrDirection
    windows: list[DrWindowIn] = Field(min_length=1, max_length=48)
    requested_kw: float = Field(gt=0, le=KW)
    issuer: str = Field(
        "", max_length=TEXT_MAX_CHARS, description="printable text (vpp.park.dr_checks)"
    )
    call_class: DrCallClass = DrCallClass.DAY_AHEAD
    contract_type: DrContractType = DrContractType.INVITATION
    announce_time: AwareDatetime | None = None
    confirm_deadline: AwareDatetime | None = None
    cleared_kw: float | None = Field(None, ge=0, le=KW)
    import_cap_kw: float | None = Field(
        None, ge=-KW, le=KW, description="peak shaving: an absolute cap on park import"
    )
    price_cap_cny_per_mwh: float | None = Field(None, ge=0, le=KW)
    price_floor_cny_per_mwh: float | None = Field(None, ge=0, le=KW)
    subsidy_cny_per_kwh: float | None = Field(None, ge=0, le=KW)
    subsidy_cny_per_kw: float | None = Field(None, ge=0, le=KW)
    nonperformance_cny_per_kwh: float | None = Field(
        None, ge=0, le=KW, description="CNY per kWh short of the band (or above the cap)"
    )
    baseline_method: DrBaselineMethod = DrBaselineMethod.GBT37016_5OF10
    effective_band_frac: tuple[float, float] = Field((0.8, 1.2))
    min_duration_minutes: float = Field(60.0, ge=0, le=24 * 60)
    binding: bool = Field(
        False,
        description=(
            "a firm command: once confirmed the plan follows it whatever it costs (never "
            "weighed against the bill, controllers.dr_choice)"
        ),
    )

    @model_validator(mode="after")
    def _consistent(self):
        lo, hi = self.effective_band_frac
        if not 0 <= lo <= hi <= 10:
            raise ValueError("effective_band_frac: expected 0 <= low <= high <= 10")
        if (
            self.price_cap_cny_per_mwh is not None
            and self.price_floor_cny_per_mwh is not None
            and self.price_floor_cny_per_mwh > self.price_cap_cny_per_mwh
        ):
            raise ValueError("price_floor_cny_per_mwh exceeds price_cap_cny_per_mwh")
        return self


class DrEventIn(_DrFields):
    event_id: str = Field(min_length=1, max_length=TEXT_MAX_CHARS, pattern=EVENT_ID_PATTERN)


class DrEventPatch(_In):
    """Fields a utility may change; those left out keep their value."""

    windows: list[DrWindowIn] | None = Field(None, min_length=1, max_length=48)
    requested_kw: float | None = Field(None, gt=0, le=KW)
    cleared_kw: float | None = Field(None, ge=0, le=KW)
    import_cap_kw: float | None = Field(None, ge=-KW, le=KW)
    confirm_deadline: AwareDatetime | None = None
    price_cap_cny_per_mwh: float | None = Field(None, ge=0, le=KW)
    price_floor_cny_per_mwh: float | None = Field(None, ge=0, le=KW)
    subsidy_cny_per_kwh: float | None = Field(None, ge=0, le=KW)
    subsidy_cny_per_kw: float | None = Field(None, ge=0, le=KW)
    nonperformance_cny_per_kwh: float | None = Field(None, ge=0, le=KW)


class DrDecision(_In):
    note: str = Field("", max_length=500)


class DrNextStep(_Out):
    """What happens next to the event (vpp.accounting.dr_contract.next_step)."""

    state: str = Field(
        description="awaiting_confirmation (an invitation: the plan does not honour it until "
        "it is confirmed), in_force (confirmed or active: the plan honours it) or closed"
    )
    honoured_by_plan: bool = Field(description="whether the dispatch plans for the event")
    until: str | None = Field(
        None,
        description="the state lasts at most to this time: the confirm deadline, else "
        "the window's end",
    )
    action: str | None = Field(None, description="what a person must do, if anything")
    says: str = Field(description="the same in one sentence")


class DrPlanAfter(_Out):
    """The plan that follows a change of the event (create, patch, confirm, decline, cancel)."""

    state: str = Field(
        description="planned: the re-solve the change asked for has run and `version` is its "
        "plan (expected_delivery is that plan's); pending: it has not ended within "
        "VPP_DR_RESPONSE_WAIT_S (or failed): poll GET /api/v1/dr-events/{id} or "
        "/api/v1/setpoints until plan_version exceeds previous_version"
    )
    version: int | None = Field(None, description="the plan in force as the response is sent")
    cycle_id: int | None = None
    previous_version: int | None = Field(None, description="the plan in force before the change")
    waited_s: float = Field(description="how long the response waited for the re-solve (s)")


class DrEventOut(_Out):
    event_id: str
    status: str
    version: int
    fields: dict[str, Any]
    next_step: DrNextStep | None = Field(None, description="what happens next to the event")
    plan: DrPlanAfter | None = Field(
        None, description="on a change only: the plan that follows it (or that it is pending)"
    )
    expected_delivery: dict[str, Any] | None = Field(
        None,
        description="what the latest plan delivers for the event (for an announced "
        "invitation: what it delivers without honouring it); on a change, the plan in `plan`",
    )
    delivery: dict[str, Any] | None = Field(
        None,
        description="what the event delivered, settled on the park meter against its baseline "
        "once the window is over: delivered_kwh, requested_kwh, delivery_ratio (null when "
        "nothing was requested), effective, baseline_method, baseline_days, per-interval "
        "baseline_kw and realised_kw, owned (intervals counted for this event; an interval "
        "two events cover counts once, for the stricter) and shared_with, compliance (cap-only "
        "events), compensation_cny and its parts, baseline_note",
    )
    created_at: datetime
    updated_at: datetime
    history: list[dict[str, Any]] = []


# ------------------------------------------------------------------------------------------
# Keys and runtime settings
# ------------------------------------------------------------------------------------------
class KeyIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@-]+$")
    role: str = Field(pattern=r"^(viewer|operator|utility|admin)$")


class KeyCreated(_Out):
    name: str
    role: str
    key: str = Field(description="shown once; only its hash is stored")


class RuntimeSettingsPatch(_In):
    replan_threshold_kw: float | None = Field(None, gt=0, le=KW)
    stale_after_s: float | None = Field(None, gt=0, le=7 * 86400)
    replan_min_gap_s: float | None = Field(None, ge=0, le=86400)


# ------------------------------------------------------------------------------------------
# The operator's page (api/routes/ui_data.py): plain names are measured or realised,
# plan_* what the dispatch intended; kW load convention (+ import), times in the park's zone
# ------------------------------------------------------------------------------------------
Series = list[float | None]  # one value per interval; null: no reading, no limit


class MeOut(_Out):
    name: str = Field(description="the key's name")
    role: str
    may: list[str] = Field(description="the role's permissions: read, operate, dr_write, admin")
    park: str
    tz: str = Field(description="the park's time zone (IANA)")
    step_minutes: int
    now: datetime = Field(description="the service's clock (simulated under --speed)")
    clock_speed: float = Field(description="simulated seconds per wall-clock second")


class NowPast(_Out):
    times: list[str] = Field(description="interval starts, the past 24 h and the one running")
    p_net_kw: Series = Field(description="park meter, mean per interval (+ import)")
    pv_kw: Series | None = Field(None, description="PV generation, sum of the arrays (+)")
    ev_kw: Series | None = Field(None, description="EV charging, sum of the chargers")
    soc_frac: Series | None = Field(None, description="stored energy / capacity, 0-1")
    plan_p_net_kw: Series = Field(description="what the plan in force for the interval meant")
    plan_dr_import_max_kw: Series
    plan_dr_import_min_kw: Series


class NowPlan(_Out):
    cycle_id: int
    plan_version: int
    status: str
    fallback: str | None
    times: list[str]
    plan_p_net_kw: Series
    plan_pv_kw: Series | None
    plan_ev_kw: Series | None
    plan_soc_frac: Series | None
    plan_import_max_kw: Series | None = Field(description="connection limit after headroom")
    plan_dr_import_max_kw: Series | None = Field(description="DR cap (null: none)")
    plan_dr_import_min_kw: Series | None = Field(description="DR floor (null: none)")
    month_peak_import_kw: float | None = Field(description="the month's peak the plan keeps")


class NowBattery(_Out):
    name: str
    e_max_kwh: float
    soc_frac: float | None = Field(description="latest reading")
    ts: str | None
    p_kw: float | None
    plan_soc_frac: float | None = Field(description="at the end of the interval running now")
    plan_p_kw: float | None = Field(description="this interval")
    stale: bool
    held: str | None


class NowOut(_Out):
    at: str
    interval_start: str
    step_minutes: float
    connection: dict[str, float]
    past: NowPast
    batteries: list[NowBattery]
    latest: dict[str, Any] = Field(description="latest park meter reading, PV and EV totals")
    plan: NowPlan | None
    stale_assets: list[str]
    held: dict[str, str] = Field(description="assets held at their safe setpoint, and why")


class NetworkBus(_Out):
    name: str
    vn_kv: float
    x: int = Field(description="column of the single-line diagram")
    y: int = Field(description="row of the single-line diagram")
    slack: bool = Field(description="the grid connection")
    park_bus: bool
    vm_pu: float | None = Field(description="realised, latest interval")
    vm_pu_series: Series | None
    plan_vm_pu: float | None
    plan_vm_pu_series: Series | None
    plan_vm_min_pu: float | None
    plan_vm_max_pu: float | None


class NetworkBranch(_Out):
    name: str
    kind: str = Field(description="line or trafo")
    from_: str = Field(alias="from", description="bus (a transformer's high-voltage side)")
    to: str
    rating: str
    loading_percent: float | None = Field(description="realised, latest interval")
    loading_percent_series: Series | None
    loading_max_percent_24h: float | None
    plan_loading_percent: float | None
    plan_loading_percent_series: Series | None
    plan_loading_max_percent: float | None


class BindingLimit(_Out):
    element: str
    kind: str = Field(
        description="line_loading, trafo_loading, overvoltage, undervoltage, "
        "connection_import, dr_cap, dr_floor, network_row; for a limit group of the park file "
        "group_import, group_export, group_phase_A, group_phase_B, group_phase_C (element = "
        "the group's name; a phase row's kW is its current limit's linear inner approximation)"
    )
    source: str = Field(description="plan or measured")
    value: float | None
    limit: float | None
    unit: str
    at: str | None
    broken: bool

    model_config = ConfigDict(extra="allow")


class NetworkOut(_Out):
    available: bool
    why: str | None = None
    cycle_id: int | None = None
    plan_version: int | None = None
    limits: dict[str, float] | None = None
    realised_at: str | None = None
    times: list[str] = Field([], description="realised series' interval starts")
    assets_unmetered: list[int] = Field([], description="assets without a reading yet")
    plan_times: list[str] = []
    buses: list[NetworkBus] = []
    branches: list[NetworkBranch] = Field([], description="lines and transformers, from -> to")
    connection_bus: str | None = None
    binding: list[BindingLimit] = []


class MonthToDateOut(_Out):
    month: str
    from_: str = Field(alias="from", description="the first of the month, 00:00")
    to: str = Field(description="the start of the interval running now")
    intervals: int
    intervals_metered: int
    tariff: str
    energy: dict[str, float] = Field(
        description="import, export, PV used, consumption (kWh), energy_cost_cny"
    )
    demand: dict[str, Any] = Field(
        description="peak_import_kw, peak_at, rate_cny_per_kw_month, demand_charge_cny"
    )
    dr: dict[str, Any] = Field(description="compensation_cny and the settled events")
    total_cost_cny: float = Field(description="energy + demand charge - DR compensation")
    carbon: dict[str, float]
    targets: dict[str, Any]


# ------------------------------------------------------------------------------------------
# Price and emission-factor series (vpp.park.series)
# ------------------------------------------------------------------------------------------
class PricePoint(_In):
    interval_start: AwareDatetime
    price_cny_per_kwh: float = Field(ge=-100, le=100, description="energy price, CNY/kWh")
    export_price_cny_per_kwh: float | None = Field(
        None, ge=-100, le=100, description="export price, CNY/kWh (null: the tariff's)"
    )


class PriceSeriesIn(_In):
    """Prices of one series, one issue: ``issued_at`` null for cleared prices, else the time
    the forecast was issued (a plan at ``now`` uses forecasts issued at or before ``now``)."""

    series: str = Name
    step_minutes: int = Field(15, description="interval length, minutes (5, 15, 30 or 60)")
    issued_at: AwareDatetime | None = None
    points: list[PricePoint] = Field(min_length=1, max_length=50_000)


class FactorPoint(_In):
    interval_start: AwareDatetime
    ef_kg_per_kwh: float = Field(ge=0, le=2, description="grid emission factor, kg CO2/kWh")


class FactorSeriesIn(_In):
    """Emission factors of one series, one issue (``issued_at`` as for prices)."""

    series: str = Name
    kind: Literal["average", "marginal"] = "average"
    step_minutes: int = Field(60, description="interval length, minutes (5, 15, 30 or 60)")
    issued_at: AwareDatetime | None = None
    points: list[FactorPoint] = Field(min_length=1, max_length=50_000)


class SeriesStored(_Out):
    series: str
    stored: int
    cleared: bool
    issued_at: datetime | None = None
    first_interval: datetime
    last_interval: datetime
