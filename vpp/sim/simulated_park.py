"""The simulated park: a :class:`vpp.plan.cycle.PlantDriver` with physics, truth and imperfections.

Used by the offline simulation (``vpp simulate``) and as the default plant of ``vpp run``.

Interface
---------
``SimulatedPark(site, seed=0, start=None, options=SimOptions())``
    ``start`` (tz-aware) is where the park's clock begins; batteries start at their
    configured ``soc_init_frac``. Before ``start`` the park ran without the VPP: a car
    plugged in earlier has charged at full power since it arrived, and a shiftable load
    whose window is open has run at full power since it opened
    (:mod:`vpp.accounting.counterfactual`), so a cold start asks no plan to make up a past
    it did not control.
``read_state(at) -> PlantState``
    What a real park's telemetry gives at ``at``: battery energy, the EV sessions of cars
    *plugged in now* with their requested energy, departure and the energy delivered so far
    (a charge-point operator knows nothing of cars that have not arrived; configured
    ``site.ev_sessions`` are bookings and are known in advance), the shiftable loads' progress,
    the month's peak import so far, and ``stale_assets``: assets whose reading was late or
    missing this time (their last reading is repeated; the cycle holds them safe).
``apply(at, setpoints_kw)``
    Advances the physics over the interval starting at ``at`` (one step):

    * battery: ``p_kw`` (+ charge), within power limits and its SOC bounds, with efficiencies;
    * PV: ``-limit_kw``, a generation limit; realised = min(available, limit). No key = no
      limit (see :func:`vpp.sim.closed_loop.device_commands`, which sends a limit only when the plan
      curtails);
    * EV charger: ``p_kw`` at the grid, limited by the charger, the car's ``p_max_kw`` and
      what the car still needs (V2G: down to its dischargeable energy); 0 with no car;
    * curtailable load: a consumption cap; realised within ``[base*(1-frac), base]`` of the
      *true* baseline. No key = baseline;
    * shiftable load: ``p_kw`` within ``[0, p_max]`` inside its window, until its energy is done;
    * PEDF building: the exchange setpoint (clipped to ``+-converter_kw``); its battery makes
      up the difference between the exchange and base + flexible load - PV, within its own
      limits (the PEDF battery's own setpoint is used only when no exchange is set). The
      realised exchange never exceeds the converter's rating: what does not fit is first
      absorbed on the DC bus (PV limit lifted, battery, flexible load down to its floor or
      back to its baseline), then becomes *unserved load* or *spilled PV*
      (:func:`vpp.sim.pedf.pedf_balance`).

    Every device stays within its limits: battery power and SOC bounds, PV within the
    available and the inverter, EV power within charger, car and need, shiftable power within
    ``[0, p_max]`` and its energy, curtailable load within its band. Interval *averages* below
    an EV charger's or a shiftable load's ``p_min_kw`` are accepted (running at ``p_min`` for
    part of the interval), and ``min_run_steps`` is not enforced: a plan that breaks them is
    not corrected here. Network elements (connection, transformers, cables) carry whatever the
    buses draw; their loading is for the AC flow of :meth:`SimulatedPark.bus_p_kw` to judge.
``records() -> dict[str, np.ndarray]``
    The realised interval values (kW averages, kWh at the end of the interval) for KPIs and
    telemetry: see :data:`RECORD_FIELDS`; ``asset_power(name)`` gives one asset's power
    (a PEDF building's name gives its realised grid exchange; its base and flexible load give
    what was *served*). ``unserved_kw`` is the demand not supplied and ``pv_spilled_kw`` the
    PV neither used nor exported, park totals; per asset, ``asset_unserved_kw(load)`` and
    ``asset_pv_spilled_kw(pv)``. ``pv_used_kw`` excludes spilled PV. Energy balance, exact
    every interval: ``net_kw = base_kw + flex_kw + shiftable_kw + ev_kw + battery_kw -
    pv_used_kw = import_kw - export_kw = sum(bus_p_kw())``.
``bus_p_kw() -> dict[str, np.ndarray]``
    For the realised AC power flow: the active power each bus of ``site.buses`` drew (kW, load
    convention) per recorded interval, keyed by the bus names the network model uses
    (:meth:`vpp.grid.network.GridModel.validate` accepts the mapping as is). Every asset counts
    at its own ``bus``, except a PEDF building's members: the building counts once, as its
    realised grid exchange at the building's ``bus`` (the converter's AC terminal). Buses with
    no asset carry zeros. For the reactive power, ``asset_power(name)`` gives each load's
    realised power (:func:`vpp.sim.realised.inductive_q_kvar`).
``truth(horizon) -> dict[str, np.ndarray]``
    The true PV available and loads (kW) on any horizon: the perfect forecast.
``sessions_done() -> list[SessionOutcome]``
    Requested and delivered energy of every EV session that has departed.

Truth: :func:`vpp.park.profiles.site_series` (measured SimBench loads; PV = pvlib clear sky x
measured cloudiness) times ``1 + noise`` for loads (AR(1), seeded per asset and day); EV
sessions from :mod:`vpp.park.sessions` (seeded). The truth is computed a day at a time and cached.

Departures of the truth from the profiles (:class:`SimOptions`, :mod:`vpp.sim.truth`; every
one off by default), so that a forecast fed by the measured history is honestly wrong, as a
real park's is: a larger or slower load noise, load steps (:class:`LoadStep`: a production
line added on Monday) and moved weather (each day's cloudiness another day's, seeded). The
history the simulation is primed with is the same truth before the start, departures included
(a step dated before the start is already in the measured history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from controllers import tracking
from controllers.tracking import TrackingTarget
from vpp.accounting.counterfactual import uncontrolled_delivered_kwh, uncontrolled_shiftable_state
from vpp.park import meters, profiles, sessions
from vpp.park.battery_detail import (
    charge_for_room_kw,
    charge_limit_kw,
    discharge_for_energy_kw,
    stored_kw,
)
from vpp.park.model import (
    Battery,
    EvSession,
    Horizon,
    PedfBuilding,
    Site,
    window_start,
)
from vpp.park.state import PlantState, ShiftableState
from vpp.sim import truth as truth_mod
from vpp.sim.pedf import PedfOutcome, pedf_balance
from vpp.sim.truth import LoadStep, SimOptions, check_load_steps, load_names
from vpp.sim.truth import seeded_rng as _rng

__all__ = [
    "RECORD_FIELDS",
    "LoadStep",
    "SessionOutcome",
    "SimOptions",
    "SimulatedPark",
    "check_load_steps",
    "load_names",
]

_TRUTH_CACHE_DAYS = 48
RECORD_FIELDS = (
    "import_kw",
    "export_kw",
    "net_kw",
    "pv_available_kw",
    "pv_used_kw",
    "battery_kw",
    "battery_e_kwh",
    "ev_kw",
    "ev_to_car_kw",
    "flex_kw",
    "flex_baseline_kw",
    "shiftable_kw",
    "base_kw",
    "unserved_kw",
    "pv_spilled_kw",
    "tracking_kw",
)


@dataclass(frozen=True)
class SessionOutcome:
    session_id: str
    charger: str
    arrival: datetime
    departure: datetime
    requested_kwh: float
    delivered_kwh: float

    @property
    def unmet_kwh(self) -> float:
        return max(self.requested_kwh - self.delivered_kwh, 0.0)


@dataclass
class _Shift:
    window_start: datetime | None = None
    e_done_kwh: float = 0.0
    running_steps: int = 0


@dataclass
class _Records:
    at: list[datetime] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in RECORD_FIELDS})
    assets: dict[str, list[float]] = field(default_factory=dict)
    unserved: dict[str, list[float]] = field(default_factory=dict)  # load name -> kW
    spilled: dict[str, list[float]] = field(default_factory=dict)  # PV name -> kW


class SimulatedPark:
    """The park's physics over 15-minute steps (see the module docstring for the interface)."""

    def __init__(
        self,
        site: Site,
        seed: int = 0,
        start: datetime | None = None,
        options: SimOptions | None = None,
    ):
        self.site, self.seed = site, seed
        self.options = options or SimOptions()
        check_load_steps(site, self.options.load_steps)
        self.tz = ZoneInfo(site.location.tz)
        self.step = timedelta(minutes=site.dispatch.step_minutes)
        self.dt_h = self.step.total_seconds() / 3600.0
        self.steps_per_day = round(timedelta(days=1) / self.step)
        a = site.assets
        self._bats: dict[str, Battery] = {b.name: b for b in a.batteries}
        self._pedf_bats = {p.battery.name: p for p in a.pedf_buildings}
        self.battery_e_kwh = {
            b.name: b.soc_init_frac * b.e_kwh
            for b in [*a.batteries, *(p.battery for p in a.pedf_buildings)]
        }
        self._chargers = {c.name: c for c in a.ev_chargers}
        self._sessions: list[EvSession] = sorted(site.ev_sessions, key=lambda s: s.arrival)
        self._booked = {s.session_id for s in site.ev_sessions}
        self._delivered: dict[str, float] = {}
        self._days_drawn: set[date] = set()
        self._done: list[SessionOutcome] = []
        self._shift = {s.name: _Shift() for s in a.shiftable_loads}
        self._truth_cache: dict[date, dict[str, np.ndarray]] = {}
        self._month: tuple[int, int] | None = None
        self.month_peak_import_kw = 0.0
        self._last_state: PlantState | None = None
        self._rec = _Records()
        # The local loop's move of each battery in the last interval (kW, + = more charge).
        self.tracking_kw: dict[str, float] = {}
        # (interval start, session id, charger, kW drawn, kW into the car) per plugged car
        self._session_rows: list[tuple[datetime, str, str, float, float]] = []
        self._bus_of = _grid_terminals(site)
        # Per sub-meter, the month's peak import so far (kW), for a park with tenant meters
        # (vpp.park.meters); they start the run's month at 0.
        self._meter_of = meters.meter_of_bus(site) if site.metering.meters else {}
        self.meter_month_peak_import_kw: dict[str, float] = {}
        self.clock = start
        self.start = start
        if start is not None:
            self._before_start(start)

    def _before_start(self, start: datetime) -> None:
        """The park ran without the VPP before ``start`` (as the history the simulation is
        primed with): a shiftable load whose window is open has run at full power since it
        opened; a car plugged in before ``start`` gets its energy in :meth:`_add_session`."""
        for spec in self.site.assets.shiftable_loads:
            st = uncontrolled_shiftable_state(spec, start, self.site.location.tz, self.dt_h)
            if st is not None:
                self._shift[spec.name] = _Shift(
                    window_start(spec, start.astimezone(self.tz)), st.e_done_kwh, st.running_steps
                )
        for x in self._sessions:
            self._charged_before_start(x)

    def _charged_before_start(self, s: EvSession) -> None:
        """A car that arrived before the park's start charged uncontrolled until then."""
        charger = self._chargers.get(s.charger)
        if self.start is not None and charger is not None and s.arrival < self.start:
            self._delivered[s.session_id] = uncontrolled_delivered_kwh(s, charger, self.start)

    # ----------------------------------------------------------------------------------------
    # Truth
    # ----------------------------------------------------------------------------------------
    def _day_truth(self, d: date) -> dict[str, np.ndarray]:
        if d not in self._truth_cache:
            self._compute_days([d])
        return self._truth_cache[d]

    def _compute_days(self, days: list[date]) -> None:
        """Truth of consecutive ``days`` in one pass over the profiles (then per day, cached)."""
        days = sorted(set(days) - set(self._truth_cache))
        if not days:
            return
        while len(self._truth_cache) > _TRUTH_CACHE_DAYS:
            self._truth_cache.pop(min(self._truth_cache))
        spd = self.steps_per_day
        start = datetime.combine(days[0], time(0), tzinfo=self.tz)
        n_days = (days[-1] - days[0]).days + 1
        series = profiles.site_series(self.site, Horizon(start, self.step, spd * n_days))
        pv = {p.name for p in self.site.assets.pv_arrays}
        pv |= {p.pv.name for p in self.site.assets.pedf_buildings}
        if self.options.pv_weather_moved:
            moved = truth_mod.moved_weather_pv(
                self.site, self.options, self.seed, days[0], n_days, self.step
            )
            series.update(moved)
        for i in range(n_days):
            d = days[0] + timedelta(days=i)
            day = {name: arr[i * spd : (i + 1) * spd].copy() for name, arr in series.items()}
            if self.options.load_noise_frac > 0:
                for name in day:
                    if name not in pv:
                        day[name] = np.maximum(day[name] * (1.0 + self._noise(name, d)), 0.0)
            truth_mod.apply_load_steps(day, d, self.options.load_steps, self.tz, self.step)
            self._truth_cache[d] = day

    def weather_day(self, d: date) -> date:
        """The day whose measured cloudiness plays ``d`` (``d`` itself by default)."""
        return truth_mod.weather_day(self.options, self.seed, d)

    def _noise(self, name: str, d: date) -> np.ndarray:
        o, n = self.options, self.steps_per_day
        rng = _rng(self.seed, "noise", name, d.isoformat())
        e = rng.normal(size=n)
        x = np.empty(n)
        x[0] = e[0]
        c = math.sqrt(1.0 - o.load_noise_rho**2)
        for k in range(1, n):
            x[k] = o.load_noise_rho * x[k - 1] + c * e[k]
        return o.load_noise_frac * x

    def truth(self, horizon: Horizon) -> dict[str, np.ndarray]:
        """True PV available and loads (kW) on ``horizon`` (intervals of the park's step)."""
        if horizon.step != self.step:
            raise ValueError(f"truth: horizon step {horizon.step} != park step {self.step}")
        local = horizon.start.astimezone(self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        k0 = round((local - midnight) / self.step)
        n_days = (k0 + horizon.n + self.steps_per_day - 1) // self.steps_per_day
        days = [midnight.date() + timedelta(days=i) for i in range(n_days)]
        self._compute_days(days)
        per_day = [self._day_truth(d) for d in days]
        return {
            name: np.concatenate([t[name] for t in per_day])[k0 : k0 + horizon.n]
            for name in per_day[0]
        }

    def _truth_at(self, at: datetime) -> dict[str, float]:
        local = at.astimezone(self.tz)
        day = self._day_truth(local.date())
        k = (local.hour * 60 + local.minute) // round(self.step.total_seconds() / 60)
        return {name: float(arr[k]) for name, arr in day.items()}

    # ----------------------------------------------------------------------------------------
    # EV sessions
    # ----------------------------------------------------------------------------------------
    def _draw_until(self, at: datetime) -> None:
        """Draw the fleets' sessions of every day up to ``at``'s day (one car per charger)."""
        today = at.astimezone(self.tz).date()
        first = min(self._days_drawn) if self._days_drawn else today - timedelta(days=1)
        d = first
        while d <= today:
            if d not in self._days_drawn:
                self._days_drawn.add(d)
                for fleet in self.site.ev_fleets:
                    for s in sessions.sessions_for_day(
                        fleet,
                        self._chargers,
                        d,
                        self.site.location.tz,
                        self.seed,
                        self.site.calendar,
                    ):
                        self._add_session(s)
            d += timedelta(days=1)

    def _add_session(self, s: EvSession) -> None:
        for o in self._sessions:
            if o.charger == s.charger and o.arrival < s.departure and s.arrival < o.departure:
                return
        self._sessions.append(s)
        self._charged_before_start(s)

    def _plugged(self, at: datetime) -> list[EvSession]:
        return [s for s in self._sessions if s.arrival <= at < s.departure]

    def _retire(self, at: datetime) -> None:
        keep = []
        for s in self._sessions:
            if s.departure <= at:
                if s.arrival < at:  # it was here while the park ran
                    got = self._delivered.get(s.session_id, 0.0)
                    self._done.append(
                        SessionOutcome(
                            s.session_id, s.charger, s.arrival, s.departure, s.e_needed_kwh, got
                        )
                    )
            else:
                keep.append(s)
        self._sessions = keep

    def sessions_done(self) -> list[SessionOutcome]:
        return list(self._done)

    def sessions_open(self) -> list[SessionOutcome]:
        """Sessions plugged in now (not yet departed), with what they got so far."""
        at = self.clock
        out = []
        for s in self._sessions:
            if at is not None and s.arrival < at:
                got = self._delivered.get(s.session_id, 0.0)
                out.append(
                    SessionOutcome(
                        s.session_id, s.charger, s.arrival, s.departure, s.e_needed_kwh, got
                    )
                )
        return out

    # ----------------------------------------------------------------------------------------
    # PlantDriver
    # ----------------------------------------------------------------------------------------
    def read_state(self, at: datetime) -> PlantState:
        self._draw_until(at)
        self._retire(at)
        self._roll_month(at)
        known = [s for s in self._sessions if s.arrival <= at or s.session_id in self._booked]
        evs = tuple(
            replace(s, e_delivered_kwh=self._delivered.get(s.session_id, 0.0)) for s in known
        )
        shift = {}
        for spec in self.site.assets.shiftable_loads:
            st = self._shift[spec.name]
            w = window_start(spec, at.astimezone(self.tz))
            done = st.e_done_kwh if (w is not None and w == st.window_start) else 0.0
            shift[spec.name] = ShiftableState(done, st.running_steps)
        stale = self._stale(at)
        bat_e = dict(self.battery_e_kwh)
        if stale and self._last_state is not None:
            for name in stale & set(bat_e):
                bat_e[name] = self._last_state.battery_e_kwh.get(name, bat_e[name])
        state = PlantState(
            at=at,
            battery_e_kwh=bat_e,
            ev_sessions=evs,
            shiftable=shift,
            month_peak_import_kw=self.month_peak_import_kw,
            stale_assets=frozenset(stale),
            meter_month_peak_import_kw=dict(self.meter_month_peak_import_kw),
        )
        self._last_state = state
        return state

    def _stale(self, at: datetime) -> set[str]:
        p = self.options.p_stale
        if p <= 0:
            return set()
        names = [*self.battery_e_kwh, *self._chargers]
        names += [x.name for x in self.site.assets.pv_arrays]
        names += [x.name for x in self.site.assets.curtailable_loads]
        names += [x.name for x in self.site.assets.pedf_buildings]
        draws = _rng(self.seed, "stale", at.isoformat()).random(len(names))
        return {n for n, u in zip(names, draws, strict=True) if u < p}

    def start_month_peak(self, at: datetime, peak_kw: float) -> None:
        """The month's metered peak before ``at`` (kW): the month-to-date peak the park starts
        from, as a real park's meter has it on the day the VPP takes over."""
        local = at.astimezone(self.tz)
        self._month = (local.year, local.month)
        self.month_peak_import_kw = max(float(peak_kw), 0.0)

    def _roll_month(self, at: datetime) -> None:
        local = at.astimezone(self.tz)
        month = (local.year, local.month)
        if month != self._month:
            self._month, self.month_peak_import_kw = month, 0.0
            self.meter_month_peak_import_kw = {}

    def apply(
        self,
        at: datetime,
        setpoints_kw: dict[str, float],
        tracking: TrackingTarget | None = None,
    ) -> None:
        """Advance the park over the interval starting at ``at`` (see the module docstring).

        ``tracking``: the local loop's target for the interval (:mod:`controllers.tracking`);
        it moves the batteries it names on the interval's realised net import, within their
        room and their physical limits (the loop at its limit: instant and exact)."""
        self._draw_until(at)
        self._retire(at)
        self._roll_month(at)
        truth = self._truth_at(at)
        a = self.site.assets
        p: dict[str, float] = {}
        pv_avail = pv_used = 0.0
        for pv in a.pv_arrays:
            avail = min(truth[pv.name], pv.inverter_kw)
            p[pv.name] = -self._pv(pv.name, avail, setpoints_kw, pv.curtailable)
            pv_avail += avail
        flex = flex_base = 0.0
        for c in a.curtailable_loads:
            p[c.name] = self._curtail(truth[c.name], c.curtail_max_frac, setpoints_kw.get(c.name))
            flex += p[c.name]
            flex_base += truth[c.name]
        base = 0.0
        for b in a.base_loads:
            p[b.name] = truth[b.name]
            base += truth[b.name]
        bat = unserved = spilled = 0.0
        planned = {
            b.name: self._battery_power(b, setpoints_kw.get(b.name, 0.0)) for b in a.batteries
        }
        for pe in a.pedf_buildings:
            parts, out = self._pedf(pe, truth, setpoints_kw)
            p.update(parts)
            pv_avail += min(truth[pe.pv.name], pe.pv.inverter_kw)
            base += parts[pe.base_load.name]
            bat += parts[pe.battery.name]
            if pe.flexible_load:
                flex += parts[pe.flexible_load.name]
                flex_base += truth[pe.flexible_load.name]
            unserved += out.unserved_kw
            spilled += out.pv_spilled_kw
        ev, ev_car = self._evs(at, setpoints_kw, p)
        shift = self._shiftables(at, setpoints_kw, p)
        pv_used = -sum(p[x.name] for x in a.pv_arrays) - sum(p[x.pv.name] for x in a.pedf_buildings)
        held = self._tracked(at, tracking, base + flex + shift + ev + bat - pv_used, planned)
        for b in a.batteries:
            p[b.name] = self._battery(b, held[b.name])
            bat += p[b.name]
            self.tracking_kw[b.name] = p[b.name] - planned[b.name]
        net = base + flex + shift + ev + bat - pv_used
        imp, exp = max(net, 0.0), max(-net, 0.0)
        self.month_peak_import_kw = max(self.month_peak_import_kw, imp)
        self._meter_peaks(p)
        e_total = sum(self.battery_e_kwh.values())
        row = {
            "import_kw": imp,
            "export_kw": exp,
            "net_kw": net,
            "pv_available_kw": pv_avail,
            "pv_used_kw": pv_used,
            "battery_kw": bat,
            "battery_e_kwh": e_total,
            "ev_kw": ev,
            "ev_to_car_kw": ev_car,
            "flex_kw": flex,
            "flex_baseline_kw": flex_base,
            "shiftable_kw": shift,
            "base_kw": base,
            "unserved_kw": unserved,
            "pv_spilled_kw": spilled,
            # the local loop's move of the batteries (kW, + = more charge than planned)
            "tracking_kw": sum(self.tracking_kw.values()),
        }
        self._record(at, row, p)
        self.clock = at + self.step

    def _meter_peaks(self, p: dict[str, float]) -> None:
        """Raise each sub-meter's month peak by this interval's import on its buses."""
        if not self._meter_of:
            return
        net = dict.fromkeys(set(self._meter_of.values()), 0.0)
        for name, bus in self._bus_of.items():
            net[self._meter_of[bus]] += p.get(name, 0.0)
        for m, v in net.items():
            self.meter_month_peak_import_kw[m] = max(self.meter_month_peak_import_kw.get(m, 0.0), v)

    def _record(self, at: datetime, row: dict[str, float], p: dict[str, float]) -> None:
        r = self._rec
        r.at.append(at)
        for k, v in row.items():
            r.values[k].append(v)
        for name, v in p.items():
            r.assets.setdefault(name, [0.0] * (len(r.at) - 1)).append(v)

    def _pv(self, name: str, avail: float, sp: dict[str, float], curtailable: bool) -> float:
        if not curtailable or name not in sp or sp[name] is None or not math.isfinite(sp[name]):
            return avail
        return min(avail, max(-sp[name], 0.0))

    @staticmethod
    def _curtail(base: float, frac: float, cap: float | None) -> float:
        if cap is None or not math.isfinite(cap):
            return base
        return min(max(cap, base * (1.0 - frac)), base)

    def _battery_limits_kw(self, b: Battery) -> tuple[float, float]:
        """``(lo, hi)``: the most it can give (<= 0) and take (>= 0) this interval, kW."""
        e, dt = self.battery_e_kwh[b.name], self.dt_h
        if b.taper is not None or b.efficiency_segments:  # vpp.park.battery_detail
            hi = min(float(charge_limit_kw(b, e)), charge_for_room_kw(b, b.e_max_kwh - e, dt))
            return -discharge_for_energy_kw(b, e - b.e_min_kwh, dt), hi
        hi = min(b.p_charge_max_kw, max(b.e_max_kwh - e, 0.0) / (b.eta_charge * dt))
        lo = -min(b.p_discharge_max_kw, max(e - b.e_min_kwh, 0.0) * b.eta_discharge / dt)
        return lo, hi

    def _battery_move(self, b: Battery, p_kw: float) -> None:
        """Move the stored energy by ``p_kw`` (within its limits) over one interval."""
        if b.efficiency_segments:  # each segment at its own efficiency, in order
            pc, pd = max(p_kw, 0.0), max(-p_kw, 0.0)
            self.battery_e_kwh[b.name] += float(stored_kw(b, pc, pd)) * self.dt_h
            return
        eta = b.eta_charge if p_kw >= 0 else 1.0 / b.eta_discharge
        self.battery_e_kwh[b.name] += eta * p_kw * self.dt_h

    def _battery_power(self, b: Battery, p_kw: float) -> float:
        """The power the battery would take (+) or give (-) at setpoint ``p_kw``."""
        if p_kw is None or not math.isfinite(p_kw):
            return 0.0
        lo, hi = self._battery_limits_kw(b)
        return min(max(p_kw, lo), hi)

    def _tracked(
        self,
        at: datetime,
        t: TrackingTarget | None,
        net_without_batteries_kw: float,
        planned: dict[str, float],
    ) -> dict[str, float]:
        """Battery setpoints after the local loop: the planned ones moved by
        :func:`controllers.tracking.correct` on the meter the planned ones would give."""
        if t is None or not t.active(at):
            return planned
        meter = net_without_batteries_kw + sum(planned.values())
        moved = tracking.correct(t, meter, planned)
        return {n: self._battery_power(self._bats[n], moved.get(n, p)) for n, p in planned.items()}

    def _battery(self, b: Battery, p_kw: float) -> float:
        """Power actually taken (+) or given (-), and the SOC moved; within every limit."""
        p = self._battery_power(b, p_kw)
        self._battery_move(b, p)
        return p

    def _pedf(
        self, pe: PedfBuilding, truth: dict[str, float], sp: dict[str, float]
    ) -> tuple[dict[str, float], PedfOutcome]:
        """The building's interval: members' powers and exchange, its converter obeyed."""
        avail = min(truth[pe.pv.name], pe.pv.inverter_kw)
        pv = -self._pv(pe.pv.name, avail, sp, pe.pv.curtailable)
        base = truth[pe.base_load.name]
        f = pe.flexible_load
        flex_base = truth[f.name] if f else 0.0
        flex = self._curtail(flex_base, f.curtail_max_frac, sp.get(f.name)) if f else 0.0
        floor = flex_base * (1.0 - f.curtail_max_frac) if f else 0.0
        target = sp.get(pe.name)
        if target is None or not math.isfinite(target):
            want = sp.get(pe.battery.name, 0.0)
        else:
            target = min(max(target, -pe.converter_kw), pe.converter_kw)
            want = target - (pv + base + flex)
        if want is None or not math.isfinite(want):
            want = 0.0
        lo, hi = self._battery_limits_kw(pe.battery)
        bat = min(max(want, lo), hi)
        out = pedf_balance(pe.converter_kw, avail, pv, base, flex, floor, flex_base, bat, lo, hi)
        self._battery_move(pe.battery, out.battery_kw)
        parts = {
            pe.pv.name: out.pv_kw,
            pe.base_load.name: out.base_kw,
            pe.battery.name: out.battery_kw,
            pe.name: out.exchange_kw,
        }
        if f:
            parts[f.name] = out.flex_kw
        self._record_shortfall(pe, out)
        return parts, out

    def _record_shortfall(self, pe: PedfBuilding, out: PedfOutcome) -> None:
        """Per-asset unserved load and spilled PV of this interval (every interval)."""
        r = self._rec
        r.unserved.setdefault(pe.base_load.name, []).append(out.base_unserved_kw)
        r.spilled.setdefault(pe.pv.name, []).append(out.pv_spilled_kw)
        if pe.flexible_load:
            r.unserved.setdefault(pe.flexible_load.name, []).append(out.flex_unserved_kw)

    def _evs(self, at: datetime, sp: dict[str, float], p: dict[str, float]) -> tuple[float, float]:
        here = {s.charger: s for s in self._plugged(at)}
        total = to_car = 0.0
        dt = self.dt_h
        for name, c in self._chargers.items():
            s = here.get(name)
            want = sp.get(name, 0.0)
            if s is None or want is None or not math.isfinite(want):
                p[name] = 0.0
                continue
            p_max = min(c.p_max_kw, s.p_max_kw) if s.p_max_kw else c.p_max_kw
            got = self._delivered.get(s.session_id, 0.0)
            if want >= 0:
                need_kw = max(s.e_needed_kwh - got, 0.0) / (c.eta * dt)
                pk = min(want, p_max, need_kw)
                into = pk * c.eta
            elif c.v2g:
                room_kw = max(got + s.e_dischargeable_kwh, 0.0) * c.eta / dt
                pk = -min(-want, p_max, room_kw)
                into = pk / c.eta
            else:
                pk = into = 0.0
            self._delivered[s.session_id] = got + into * dt
            p[name] = pk
            self._session_rows.append((at, s.session_id, name, pk, into))
            total += pk
            to_car += into
        return total, to_car

    def _shiftables(self, at: datetime, sp: dict[str, float], p: dict[str, float]) -> float:
        total = 0.0
        local = at.astimezone(self.tz)
        for spec in self.site.assets.shiftable_loads:
            st = self._shift[spec.name]
            w = window_start(spec, local)
            if w is not None and w != st.window_start:
                st.window_start, st.e_done_kwh = w, 0.0
            want = sp.get(spec.name, 0.0)
            if w is None or want is None or not math.isfinite(want):
                pk = 0.0
            else:
                left_kw = max(spec.e_kwh - st.e_done_kwh, 0.0) / self.dt_h
                pk = min(max(want, 0.0), spec.p_max_kw, left_kw)
            st.e_done_kwh += pk * self.dt_h
            st.running_steps = st.running_steps + 1 if pk > 1e-6 else 0
            p[spec.name] = pk
            total += pk
        return total

    # ----------------------------------------------------------------------------------------
    # Records
    # ----------------------------------------------------------------------------------------
    def session_power(self) -> list[dict]:
        """The realised power of every plugged EV session, per interval: rows of
        ``{time, session_id, charger, p_kw, to_car_kw}`` (long form: a charger serves one
        car at a time)."""
        keys = ("time", "session_id", "charger", "p_kw", "to_car_kw")
        return [dict(zip(keys, row, strict=True)) for row in self._session_rows]

    def times(self) -> list[datetime]:
        return list(self._rec.at)

    def records(self) -> dict[str, np.ndarray]:
        """Realised interval values, one entry per applied interval (see RECORD_FIELDS)."""
        return {k: np.asarray(v, dtype=float) for k, v in self._rec.values.items()}

    def last(self, field: str) -> float:
        """The latest applied interval's value of a record field (no copy of the history)."""
        return self._rec.values[field][-1]

    def asset_power(self, name: str) -> np.ndarray:
        """One asset's realised power (kW, load convention) per applied interval."""
        return np.asarray(self._rec.assets.get(name, [0.0] * len(self._rec.at)), dtype=float)

    def asset_unserved_kw(self, name: str) -> np.ndarray:
        """A load's demand not supplied (kW, >= 0) per applied interval (zeros if never)."""
        return np.asarray(self._rec.unserved.get(name, [0.0] * len(self._rec.at)), dtype=float)

    def asset_pv_spilled_kw(self, name: str) -> np.ndarray:
        """A PV array's power neither used nor exported (kW, >= 0) per applied interval."""
        return np.asarray(self._rec.spilled.get(name, [0.0] * len(self._rec.at)), dtype=float)

    def bus_p_kw(self) -> dict[str, np.ndarray]:
        """Active power each bus drew (kW, load convention) per applied interval.

        Keys are ``site.bus_names()``, every bus present (zeros where nothing is connected);
        each array has one value per applied interval, in :meth:`times` order. A PEDF
        building counts once, as its realised exchange at its own bus. The sum over buses is
        the park's ``net_kw`` (``import_kw - export_kw``) every interval.
        """
        return self._bus_sum(self._bus_of)

    def _bus_sum(self, bus_of: dict[str, str]) -> dict[str, np.ndarray]:
        n = len(self._rec.at)
        out = {b: np.zeros(n) for b in self.site.bus_names()}
        for name, bus in bus_of.items():
            out[bus] += self.asset_power(name)
        return out


def _grid_terminals(site: Site) -> dict[str, str]:
    """Asset name -> the bus where its power meets the park network. PEDF members sit behind
    the building's converter: the building stands for them, at its own bus."""
    a = site.assets
    direct = [
        *a.pv_arrays,
        *a.batteries,
        *a.ev_chargers,
        *a.shiftable_loads,
        *a.curtailable_loads,
        *a.base_loads,
        *a.pedf_buildings,
    ]
    return {x.name: x.bus for x in direct}
