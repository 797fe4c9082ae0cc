"""Prepare: park + state + forecasts + DR events -> :class:`controllers.problem.DispatchProblem`.

Pure computation. Timestamps become step indices here, once; the controllers see arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from controllers.problem import (
    BaseLoadInput,
    BatteryInput,
    CurtailableInput,
    DispatchProblem,
    EvChargerInput,
    EvSessionInput,
    MeterInput,
    NetworkConstraint,
    PedfInput,
    PvInput,
    ShiftableInput,
    ShiftableWindow,
)
from vpp.park import dr_rules, meters
from vpp.park import tariff as tariffs
from vpp.park.carbon_factors import series_ef_kg_per_kwh
from vpp.park.model import (
    Battery,
    DemandResponseEvent,
    EvCharger,
    EvSession,
    Horizon,
    PedfBuilding,
    ShiftableLoad,
    Site,
    charger_steps_kw,
    session_give_way,
)
from vpp.park.series import PostedSeries, SeriesMissingError
from vpp.park.state import Assumption, Forecasts, PlantState, ShiftableState
from vpp.plan.dr_targets import DR_ACTIVE, dr_targets
from vpp.plan.group_rows import group_rows

PLAN_BASELINE = "forecast_uncontrolled"  # the DR baseline when none from history is given


class PrepareError(ValueError):
    """The inputs do not fit the park (a forecast missing for an asset, a wrong length)."""


def horizon_for(site: Site, at: datetime) -> Horizon:
    """The dispatch horizon starting at the interval boundary at or before ``at``."""
    step = timedelta(minutes=site.dispatch.step_minutes)
    local = at.astimezone(ZoneInfo(site.location.tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    k = math.floor((local - midnight) / step)
    return Horizon(midnight + k * step, step, site.dispatch.horizon_steps)


def build_problem(
    site: Site,
    horizon: Horizon,
    state: PlantState,
    forecasts: Forecasts,
    dr_events: Iterable[DemandResponseEvent] = (),
    dr_baseline_kw: np.ndarray | None = None,
    network: tuple[NetworkConstraint, ...] = (),
    bus_import_max_kw: dict[str, float] | None = None,
    dr_baseline_method: str = "gbt37016_5of10",
    now: datetime | None = None,
    posted: PostedSeries | None = None,
) -> DispatchProblem:
    """Everything a controller needs for one solve.

    Prices and emission factors: the tariff's energy series and the park's emission-factor
    series where they cover an interval (a cleared value, else the latest forecast issued at
    or before ``now``; default: the horizon's start), with ``posted`` (rows posted to the
    service) after the file's; elsewhere the TOU price and the annual factor. The problem's
    ``notes`` say how many intervals fell back; a ``required`` series that does not cover
    raises :class:`PrepareError`. The battery's end-of-horizon value follows from the
    horizon's mean import price, whatever its source.

    ``dr_baseline_kw``: the park's import without DR over the horizon (GB/T 37016-style, from
    history, made by ``dr_baseline_method``); when absent, the forecast of the park's net
    load without storage or flexibility is used (labelled ``PLAN_BASELINE``). Confirmed and
    active events credit their subsidy in the objective (``vpp.park.dr_rules``).
    """
    n = horizon.n
    fc = _ForecastReader(forecasts, n)
    price, price_export, ef, notes = horizon_prices(site, horizon, now or horizon.start, posted)
    terminal = float(price.mean())
    a = site.assets
    pv = tuple(PvInput(p, fc.get(p.name)) for p in a.pv_arrays)
    batteries = tuple(
        BatteryInput(b, _e_init(b, state), _terminal(b, terminal)) for b in a.batteries
    )
    evs = _ev_inputs(a.ev_chargers, state.ev_sessions, horizon)
    shift = tuple(_shiftable(s, state.shiftable.get(s.name), horizon) for s in a.shiftable_loads)
    curt = tuple(CurtailableInput(c, fc.get(c.name)) for c in a.curtailable_loads)
    base = tuple(BaseLoadInput(b.name, b.bus, fc.get(b.name)) for b in a.base_loads)
    risk = site.dispatch.risk_frac
    pedfs = tuple(
        _pedf_input(p, fc, forecasts, n, risk, _e_init(p.battery, state), terminal, horizon.dt_h)
        for p in a.pedf_buildings
    )
    net_p50 = _uncontrolled_net_kw(site, fc, forecasts.p50, n)
    spread = _net_spread_kw(site, forecasts, n)
    headroom = site.dispatch.risk_frac * spread
    conn = site.connection
    import_max = np.full(n, min(conn.import_max_kw, conn.transformer_p_max_kw)) - headroom
    export_max = np.full(n, min(conn.export_max_kw, conn.transformer_p_max_kw))
    baseline = dr_baseline_kw if dr_baseline_kw is not None else net_p50
    # DR: a window in progress runs on a margin for the error of the park's total (the
    # diversified spread); a window still ahead is planned with the whole headroom as well,
    # so that the energy a response under the P90 load needs is there when the window opens.
    dr_margin = site.dispatch.risk_frac * _net_spread_kw(site, forecasts, n, diversified=True)
    dr_events = tuple(dr_events)
    # Each event tracked as a whole, re-aimed from what the park meter says it delivered so
    # far (state.dr_progress): vpp.plan.dr_targets.
    targets = dr_targets(
        dr_events, horizon, baseline, dr_margin, headroom, state.dr_progress, site.dr_defaults
    )
    dr_max, dr_min = targets.import_max_kw, targets.import_min_kw
    paid = [e for e in dr_events if e.status in DR_ACTIVE]
    dr_credit = dr_rules.credit_cny_per_kwh(paid, horizon, baseline, site.dr_defaults)
    buses = tuple(site.bus_names())
    bus_up, bus_down = bus_errors_kw(site, forecasts, buses, n)
    bus_max = np.full(len(buses), np.inf)
    for bus, lim in (bus_import_max_kw or {}).items():
        bus_max[buses.index(bus)] = lim
    return DispatchProblem(
        horizon=horizon,
        buses=buses,
        price_import_cny_per_kwh=price,
        price_export_cny_per_kwh=price_export,
        import_max_kw=import_max,
        export_max_kw=export_max,
        pv=pv,
        batteries=batteries,
        ev_chargers=evs,
        shiftables=shift,
        curtailables=curt,
        base_loads=base,
        pedfs=pedfs,
        ef_kg_per_kwh=ef,
        carbon_price_cny_per_kg=site.carbon.carbon_price_cny_per_t / 1000.0,
        demand_charge_cny_per_kw=tariffs.demand_charge_for_horizon(site.tariff),
        month_peak_import_kw=state.month_peak_import_kw,
        peak_margin_kw=headroom,
        dr_import_max_kw=dr_max,
        dr_import_min_kw=dr_min,
        dr_rows=targets.rows,
        dr_credit_cny_per_kwh=dr_credit,
        dr_baseline_kw=np.asarray(baseline, dtype=float),
        dr_baseline_method=dr_baseline_method if dr_baseline_kw is not None else PLAN_BASELINE,
        bus_import_max_kw=bus_max,
        bus_error_up_kw=risk * bus_up,
        bus_error_down_kw=risk * bus_down,
        network=network,
        group_rows=group_rows(
            site,
            n,
            fc.get,
            lambda x: risk * sum(_above_p50_kw(forecasts, [x]), np.zeros(n)),
            lambda x: risk * sum(_below_p50_kw(forecasts, [x]), np.zeros(n)),
        ),
        penalties=site.penalties,
        time_limit_s=site.dispatch.time_limit_s,
        mip_rel_gap=site.dispatch.mip_rel_gap,
        peak_spread_cny_per_kw=site.dispatch.peak_spread_cny_per_kw,
        import_ramp_cny_per_kw=site.dispatch.import_ramp_cny_per_kw,
        day_index=local_days(horizon),
        meters=meter_inputs(site, horizon, state, buses, risk * bus_up, now or horizon.start),
        per_meter_billing=meters.per_meter(site),
        notes=notes + fc.notes(),
    )


def local_days(horizon: Horizon) -> np.ndarray:
    """Local day of every interval of ``horizon`` (its start's zone), counted from the first."""
    dates = [t.date() for t in horizon.times()]
    return np.array([(d - dates[0]).days for d in dates], dtype=int)


def meter_inputs(
    site: Site,
    horizon: Horizon,
    state: PlantState,
    buses: tuple[str, ...],
    bus_margin_kw: np.ndarray,
    now: datetime,
) -> tuple[MeterInput, ...]:
    """Every sub-meter of ``site`` (tenants, then ``common``: :func:`vpp.park.meters.
    billed_meters`) with its tariff's prices on ``horizon``; () for a park without meters.

    Parameters
    ----------
    bus_margin_kw : the forecast error kept per bus (kW, ``(len(buses), n)``); a meter's peak
        margin is the sum over its buses (the conservative bound the connection's is).
    now : the evaluation time of a meter tariff's price series (:mod:`vpp.park.series`; a
        meter's tariff reads its own series file, the prices posted to the service are the
        connection's).
    """
    if not site.metering.meters:
        return ()
    out = []
    for x in meters.billed_meters(site):
        rows = [buses.index(b) for b in x.buses]
        try:
            imp, exp, _ = tariffs.series_prices_cny_per_kwh(x.tariff, horizon, now, site.calendar)
        except (SeriesMissingError, ValueError) as exc:
            raise PrepareError(f"meter {x.name!r}: {exc}") from None
        out.append(
            MeterInput(
                name=x.name,
                buses=x.buses,
                price_import_cny_per_kwh=imp,
                price_export_cny_per_kwh=exp,
                demand_charge_cny_per_kw=tariffs.demand_charge_for_horizon(x.tariff),
                month_peak_import_kw=float(state.meter_month_peak_import_kw.get(x.name, 0.0)),
                peak_margin_kw=np.asarray(bus_margin_kw)[rows].sum(axis=0),
            )
        )
    return tuple(out)


PRICES, FACTORS = "prices", "emission factors"  # how the plan's notes on them begin


def horizon_prices(
    site: Site, horizon: Horizon, now: datetime, posted: PostedSeries | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Import and export price (CNY/kWh) and emission factor (kg/kWh) of every interval by
    the series rule (:mod:`vpp.park.series`), and the notes on their cover."""
    posted = posted or PostedSeries()
    try:
        imp, exp, p_cover = tariffs.series_prices_cny_per_kwh(
            site.tariff, horizon, now, site.calendar, posted.prices
        )
        ef, ef_cover = series_ef_kg_per_kwh(site.carbon, horizon, now, posted.ef)
    except (SeriesMissingError, ValueError) as exc:
        raise PrepareError(str(exc)) from None
    notes = []  # a park without series plans on its TOU tariff and annual factor, by design
    if p_cover.name:
        notes.append(p_cover.text(PRICES, f"tariff {site.tariff.name!r} TOU price"))
    if ef_cover.name:
        notes.append(ef_cover.text(FACTORS, "annual factor"))
    return imp, exp, ef, tuple(notes)


class _ForecastReader:
    """The P50 of each asset, checked. Loads and PV available are >= 0 by definition
    (:class:`vpp.park.state.Forecasts`): a value below 0 is planned as 0, and said so in the
    plan's notes (:meth:`notes`), never silently."""

    def __init__(self, forecasts: Forecasts, n: int):
        self.f, self.n = forecasts, n
        self.clipped: dict[str, tuple[int, float]] = {}  # name -> (values below 0, lowest)

    def get(self, name: str) -> np.ndarray:
        if name not in self.f.p50:
            raise PrepareError(f"no forecast for asset {name!r}")
        arr = np.asarray(self.f.p50[name], dtype=float)
        if arr.shape != (self.n,):
            raise PrepareError(f"forecast for {name!r}: expected {self.n} values, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise PrepareError(f"forecast for {name!r}: contains NaN or infinite values")
        below = arr < 0.0
        if below.any():
            self.clipped[name] = (int(below.sum()), float(arr.min()))
        return np.maximum(arr, 0.0)

    def notes(self) -> tuple[str, ...]:
        return tuple(
            f"forecast for {name!r}: {k} of {self.n} values below 0 (lowest {low:.3g} kW) "
            "planned as 0"
            for name, (k, low) in sorted(self.clipped.items())
        )


def _e_init(b: Battery, state: PlantState) -> float:
    return float(state.battery_e_kwh.get(b.name, b.soc_init_frac * b.e_kwh))


def _terminal(b: Battery, mean_price: float) -> float:
    """Value of a kWh left in the battery at the horizon's end (:meth:`Battery.terminal_value`
    at the horizon's mean import price)."""
    return b.terminal_value(mean_price)


def _uncontrolled_net_kw(site: Site, fc: _ForecastReader, p50: dict, n: int) -> np.ndarray:
    """Forecast park import with storage idle, no curtailment and no EVs."""
    a = site.assets
    net = np.zeros(n)
    for b in a.base_loads:
        net += fc.get(b.name)
    for c in a.curtailable_loads:
        net += fc.get(c.name)
    for p in a.pv_arrays:
        net -= fc.get(p.name)
    for pe in a.pedf_buildings:
        net += fc.get(pe.base_load.name) - fc.get(pe.pv.name)
        if pe.flexible_load:
            net += fc.get(pe.flexible_load.name)
    return net


def _net_spread_kw(
    site: Site, forecasts: Forecasts, n: int, diversified: bool = False
) -> np.ndarray:
    """P90 - P50 of the park's net load. Zero without quantiles.

    ``diversified=False``: the per-asset spreads summed, a conservative bound that ignores the
    diversity between assets (for the connection and the month's peak, limits of every
    interval). ``diversified=True``: the loads' spreads combined as independent errors (root
    sum of squares), the PV arrays' summed (one weather moves them together), the two in
    quadrature: the error of the park's total that a DR settlement sees.
    """
    if not forecasts.p90 and not forecasts.p10:
        return np.zeros(n)
    a = site.assets
    loads = [b.name for b in a.base_loads] + [c.name for c in a.curtailable_loads]
    loads += [p.base_load.name for p in a.pedf_buildings]
    gens = [p.name for p in a.pv_arrays] + [p.pv.name for p in a.pedf_buildings]
    if not diversified:
        return _error_kw(forecasts, n, loads, gens)
    load_up = _above_p50_kw(forecasts, loads)
    pv_down = _below_p50_kw(forecasts, gens)
    pv = np.sum(pv_down, axis=0) if pv_down else np.zeros(n)
    load = np.sqrt(np.sum(np.square(load_up), axis=0)) if load_up else np.zeros(n)
    return np.hypot(load, pv)


def _above_p50_kw(forecasts: Forecasts, names: Iterable[str]) -> list[np.ndarray]:
    """P90 - P50 (kW, >= 0) of each series in ``names`` that has a P90."""
    return [
        np.maximum(np.asarray(forecasts.p90[x]) - forecasts.p50[x], 0.0)
        for x in names
        if x in forecasts.p90 and x in forecasts.p50
    ]


def _below_p50_kw(forecasts: Forecasts, names: Iterable[str]) -> list[np.ndarray]:
    """P50 - P10 (kW, >= 0) of each series in ``names`` that has a P10."""
    return [
        np.maximum(forecasts.p50[x] - np.asarray(forecasts.p10[x]), 0.0)
        for x in names
        if x in forecasts.p10 and x in forecasts.p50
    ]


RESERVE_WINDOW_STEPS = 16  # a PEDF battery's reserve: the exposed error of the last 4 h


def _pedf_input(
    p: PedfBuilding,
    fc: _ForecastReader,
    forecasts: Forecasts,
    n: int,
    risk: float,
    e_init_kwh: float,
    mean_price: float,
    dt_h: float,
) -> PedfInput:
    """A PEDF building's inputs, with its margins for forecast error at risk level ``risk``:
    converter rating kept free in both directions, and a battery reserve for the coming
    intervals where even the free rating could not carry a load above forecast (the
    building's P50 net load plus the error exceeds the converter): there the DC bus has
    only the battery, and a battery planned empty leaves the load unserved."""
    base, pv = fc.get(p.base_load.name), fc.get(p.pv.name)
    flex = fc.get(p.flexible_load.name) if p.flexible_load else np.zeros(n)
    up = risk * _error_kw(forecasts, n, [p.base_load.name], [p.pv.name])
    down = risk * _error_kw(forecasts, n, [p.pv.name], [p.base_load.name])
    # The error that would not fit through the converter even at its full rating: the
    # battery alone must give it. Within a stretch of such intervals the converter cannot
    # refill the battery, so the energy to keep at the end of interval t is the exposure
    # accumulated over the stretch so far (a trailing window): the plan enters the stretch
    # with that much more than P50 needs.
    exposed = np.clip(base + flex - pv + up - p.converter_kw, 0.0, up) * dt_h
    head = np.concatenate([np.zeros(RESERVE_WINDOW_STEPS - 1), exposed])
    reserve = np.lib.stride_tricks.sliding_window_view(head, RESERVE_WINDOW_STEPS).sum(axis=1)
    return PedfInput(
        spec=p,
        pv_available_kw=pv,
        base_kw=base,
        flex_baseline_kw=flex,
        e_init_kwh=e_init_kwh,
        terminal_value_cny_per_kwh=_terminal(p.battery, mean_price),
        converter_margin_import_kw=up,
        converter_margin_export_kw=down,
        e_reserve_kwh=reserve,
    )


def _error_kw(forecasts: Forecasts, n: int, up: list[str], down: list[str]) -> np.ndarray:
    """How far the forecast may be wrong in the direction of more import (kW, >= 0): the
    spread above P50 (P90 - P50) of the series in ``up`` plus the spread below it (P50 - P10)
    of those in ``down``, summed (a conservative bound: errors at one bus move together)."""
    return np.zeros(n) + sum(_above_p50_kw(forecasts, up)) + sum(_below_p50_kw(forecasts, down))


def bus_errors_kw(
    site: Site, forecasts: Forecasts, buses: tuple[str, ...], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Forecast error per bus (kW, >= 0, shape ``(len(buses), n)``), from the quantiles of the
    loads and PV arrays at each bus: ``up`` the bus drawing more than forecast (loads at P90,
    PV at P10), ``down`` less (loads at P10, PV at P90). A PEDF building counts at its bus.
    Zeros without quantiles."""
    a = site.assets
    loads: dict[str, list[str]] = {b: [] for b in buses}
    gens: dict[str, list[str]] = {b: [] for b in buses}
    for x in [*a.base_loads, *a.curtailable_loads]:
        loads[x.bus].append(x.name)
    for x in a.pv_arrays:
        gens[x.bus].append(x.name)
    for pe in a.pedf_buildings:
        loads[pe.bus].append(pe.base_load.name)
        gens[pe.bus].append(pe.pv.name)
    up = np.stack([_error_kw(forecasts, n, loads[b], gens[b]) for b in buses])
    down = np.stack([_error_kw(forecasts, n, gens[b], loads[b]) for b in buses])
    return up, down


def _ev_inputs(
    chargers: tuple[EvCharger, ...], sessions: tuple[EvSession, ...], horizon: Horizon
) -> tuple[EvChargerInput, ...]:
    by_charger: dict[str, list[EvSessionInput]] = {c.name: [] for c in chargers}
    spec = {c.name: c for c in chargers}
    steps = {c.name: charger_steps_kw(c) for c in chargers}
    # The most a stepped charger gives is its top pilot step (32 A x 208 V = 6.656 kW under a
    # 6.66 kW rating): a plan at the rating would count energy full power cannot deliver, and
    # the car would leave a few Wh short.
    top = {n: min(spec[n].p_max_kw, st[-1]) if len(st) > 1 else spec[n].p_max_kw
           for n, st in steps.items()}  # fmt: skip
    for s in sessions:
        if s.charger not in spec or s.departure <= horizon.start or s.arrival >= horizon.end:
            continue
        c = spec[s.charger]
        p_max = min(top[c.name], s.p_max_kw) if s.p_max_kw else top[c.name]
        a_k, d_k = horizon.index_of(s.arrival), horizon.index_of(s.departure)
        if d_k <= a_k:
            continue
        need = s.e_remaining_kwh
        after = s.departure > horizon.end
        if after:
            # Energy that cannot be delivered after the horizon must be delivered within it.
            later_h = (s.departure - horizon.end).total_seconds() / 3600.0
            need = max(0.0, need - p_max * c.eta * later_h)
        elif 1e-6 < need < c.p_min_kw * c.eta * horizon.dt_h:
            # Less than one interval at the minimum power is left: plan that interval (the car
            # stops when full). A plan for the few kW the rest needs would go out below the
            # minimum power, where the safety layer sends 0, and the car would leave short.
            need = min(c.p_min_kw, p_max) * c.eta * horizon.dt_h
        t_k, t_e, t_lost = None, 0.0, 0.0
        has_target = s.target_e_kwh is not None and s.target_time is not None
        if has_target and horizon.start < s.target_time <= horizon.end:
            t_k = horizon.index_of(s.target_time)
            t_e, t_lost = _reachable(
                max(0.0, s.target_e_kwh - s.e_delivered_kwh),
                p_max * c.eta * horizon.dt_h * max(min(t_k, d_k) - a_k, 0),
            )
        # What full power from now until departure cannot deliver is no decision's to make:
        # out of the need (no penalty for the past), reported as unavoidable.
        need, lost = _reachable(need, p_max * c.eta * horizon.dt_h * (d_k - a_k))
        by_charger[s.charger].append(
            EvSessionInput(
                session_id=s.session_id,
                arrival_k=a_k,
                departure_k=d_k,
                e_needed_kwh=need,
                p_max_kw=p_max,
                target_k=t_k,
                target_e_kwh=t_e,
                e_dischargeable_kwh=s.e_dischargeable_kwh if c.v2g else 0.0,
                departs_after_horizon=after,
                e_unreachable_kwh=lost,
                target_unreachable_kwh=t_lost,
                give_way=session_give_way(s, c),
            )
        )
    return tuple(
        EvChargerInput(
            c,
            tuple(sorted(by_charger[c.name], key=lambda x: x.arrival_k)),
            steps[c.name],
        )
        for c in chargers
    )


ASSUMED = "assumed, not measured"  # how a plan's message about an assumed state begins


def assumption_notes(assumptions: Iterable[Assumption]) -> list[str]:
    """One line per assumed quantity and basis, for a plan's messages: a plan built on a
    state partly assumed (a cold start) says so wherever it is shown."""
    groups: dict[tuple[str, str], list[Assumption]] = {}
    for x in assumptions:
        groups.setdefault((x.quantity, x.basis), []).append(x)
    return [
        f"{ASSUMED}: {q} of {len(g)} (total {sum(x.value for x in g):,.1f}) on {basis}"
        for (q, basis), g in groups.items()
    ]


def _reachable(need_kwh: float, reach_kwh: float) -> tuple[float, float]:
    """``need_kwh`` split into what full power can still deliver (at most ``reach_kwh``) and
    the unreachable rest (kWh); a rest under 1 Wh is rounding and dropped."""
    if need_kwh <= reach_kwh + 1e-3:
        return need_kwh, 0.0
    return reach_kwh, need_kwh - reach_kwh


def _window_occurrences(s: ShiftableLoad, horizon: Horizon) -> list[tuple[datetime, datetime]]:
    tz = horizon.start.tzinfo
    day = horizon.start.date() - timedelta(days=1)
    out = []
    while True:
        start = datetime.combine(day, s.window_start, tzinfo=tz)
        end_day = day if s.window_end > s.window_start else day + timedelta(days=1)
        end = datetime.combine(end_day, s.window_end, tzinfo=tz)
        if s.window_end == time(0) and s.window_start != time(0):
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
        if start >= horizon.end:
            return out
        if end > horizon.start:
            out.append((start, end))
        day += timedelta(days=1)


def _shiftable(s: ShiftableLoad, st: ShiftableState | None, horizon: Horizon) -> ShiftableInput:
    st = st or ShiftableState()
    windows = []
    for start, end in _window_occurrences(s, horizon):
        e = s.e_kwh
        if start < horizon.start:
            e = max(0.0, e - st.e_done_kwh)
        if end > horizon.end:
            later_h = (end - horizon.end).total_seconds() / 3600.0
            e = max(0.0, e - s.p_max_kw * later_h)
        k0, k1 = horizon.index_of(start), horizon.index_of(end)
        e, lost = _reachable(e, s.p_max_kw * horizon.dt_h * (k1 - k0))
        windows.append(ShiftableWindow(k0, k1, e, lost))
    return ShiftableInput(s, tuple(windows), st.running_steps)
