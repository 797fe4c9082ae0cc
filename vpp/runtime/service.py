"""The runtime of ``vpp run``: holds the park, the plant driver, the planner and the last
plan; runs cycles one at a time (read the plant, plan, store in one transaction, publish);
asks for a re-solve when a DR event changes or telemetry strays from the plan; settles DR
events on the stored meter data once their window is over.

The API (:mod:`api`) and the scheduler (:mod:`vpp.runtime.scheduler`) talk to one :class:`Runtime`.
Everything it uses is injected: settings, database engine, driver, the planner (in ``vpp
run`` a worker process, :class:`vpp.runtime.planner_process.ProcessPlanner`) or the forecaster,
controller and dispatch function it plans with in this process, and the clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Engine

from controllers.problem import Controller, DispatchProblem, DispatchResult
from controllers.tracking import TrackingTarget
from vpp.park.meters import per_meter
from vpp.park.model import PARK_METER, Site
from vpp.park.series import PostedSeries
from vpp.park.state import Forecasts, PlantState
from vpp.park.telemetry_checks import Refusal, TelemetryBounds, asset_ranges, check_readings
from vpp.plan.cycle import (
    CycleReport,
    DispatchFn,
    Forecaster,
    PlantDriver,
    fallback_cycle,
    plain_dispatch,
    tracking_for,
)
from vpp.plan.prepare import horizon_for
from vpp.runtime.clock import Clock
from vpp.runtime.dr_lifecycle import DrLifecycle
from vpp.runtime.health import RecentErrors
from vpp.runtime.meter_peaks import MeterPeaks
from vpp.runtime.metrics import Metrics
from vpp.runtime.planner import (
    CycleParts,
    InlinePlanner,
    Planner,
    PlanOutcome,
    PlanRequest,
    outcome,
)
from vpp.runtime.settings import Settings
from vpp.runtime.writer_lease import LeaseLostError, WriterLease
from vpp.store import repo
from vpp.store import series as store_series
from vpp.store.db import migrate
from vpp.store.lease import Holder

log = logging.getLogger(__name__)


@dataclass
class Current:
    """The plan in force: its cycle, the setpoints sent, the problem it solved."""

    cycle_id: int
    version: int
    at: datetime
    plan: DispatchResult
    setpoints_kw: dict[str, float]
    problem: DispatchProblem | None = None
    forecasts: Forecasts | None = None
    fallback: str | None = None
    status: str = ""
    tracking: TrackingTarget | None = None  # what the local loop holds (controllers.tracking)


@dataclass
class _Reading:
    ts: datetime
    p_kw: float | None
    e_kwh: float | None


@dataclass(frozen=True)
class IngestReport:
    """What became of a batch of readings: how many were stored, and the refused ones
    (never stored; their index in the batch, asset and reason)."""

    stored: int
    refused: tuple[Refusal, ...] = ()


@dataclass
class Runtime(DrLifecycle):
    site: Site
    settings: Settings
    engine: Engine
    driver: PlantDriver
    forecaster: Forecaster
    controller: Controller
    dispatch_fn: DispatchFn = plain_dispatch
    clock: Any = None
    metrics: Metrics = field(default_factory=Metrics)
    # What the devices are sent, from the cycle's report (default: every setpoint).
    commands_fn: Callable[[CycleReport], dict[str, float]] | None = None
    # Set by the scheduler: run a cycle soon (never two at once; a request made while one
    # runs queues one more right after it) and return a ticket; None = run inline.
    on_resolve: Callable[[str], int | None] | None = None
    # Set by the scheduler: wait(ticket, timeout_s) for the cycle serving a ticket to end.
    await_resolve: Callable[[int, float], bool] | None = None
    # Computes each cycle (a worker process in ``vpp run``); None: in this process with
    # the forecaster, controller and dispatch function above. The forecaster also serves
    # the fallbacks when the planner fails.
    planner: Planner | None = None
    current: Current | None = None
    last_error: str | None = None
    # Who this runtime is to the writer lease (``lease``); None: this process.
    holder: Holder | None = None

    def __post_init__(self) -> None:
        self.clock = self.clock or Clock(speed=self.settings.speed)
        # One writer per database: taken at start, renewed by the scheduler's heartbeat and
        # by each cycle's store, released at close; ``lease.status()`` is for /health.
        ttl_s = self.settings.lease_ttl_s
        self.lease = WriterLease(
            self.engine, self.site.name, ttl_s, self.holder, self.site.location.tz
        )
        if self.planner is None:
            self.planner = InlinePlanner(
                self.site, self.forecaster, self.controller, self.dispatch_fn
            )
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._readings: dict[str, _Reading] = {}
        self._recovered_sessions: list = []
        self._unsettleable: set[str] = set()  # DR events without a baseline (logged once)
        self.meter_history_version = 0  # park-meter readings of past days stored
        # Stored DR events that fail the park's checks, with why (logged once, then skipped).
        self.skipped_dr_events: dict[str, str] = {}
        self._last_replan = 0.0
        self._forecast_log: list[tuple[datetime, dict[str, np.ndarray]]] = []
        self.cycles_run = 0
        self.errors = RecentErrors()  # cycle, driver and settlement errors (/health)
        a = self.site.assets
        self._pv_names = {p.name for p in a.pv_arrays} | {p.pv.name for p in a.pedf_buildings}
        self._ranges = asset_ranges(self.site)
        self.meter_peaks = MeterPeaks(self.site)  # tenant sub-meters' month peaks so far

    # --------------------------------------------------------------------------------------
    # Start, recovery, shutdown
    # --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Migrate the database, take the writer lease (:class:`LeaseHeldError` naming the
        holder when another service has it) and bring back what a restart must not lose."""
        migrate(self.engine)
        self.lease.take()
        with self.engine.connect() as conn:
            row = repo.latest_plan(conn)
            readings = repo.last_readings(conn)
            self._recovered_sessions = repo.open_ev_sessions(conn, self.clock.now())
            if row is not None:
                sent = {s["asset"]: s["p_kw"] for s in repo.setpoints_of(conn, row["cycle_id"])}
                cyc = repo.cycle(conn, row["cycle_id"]) or {}
                self.current = Current(
                    row["cycle_id"],
                    row["version"],
                    cyc.get("at", row["horizon_start"]),
                    repo.plan_from_json(row["body"]),
                    sent,
                    fallback=cyc.get("fallback"),
                    status=row["status"],
                )
        # A reading stored from the future (before plausibility checks) would keep its asset
        # fresh until then: it does not count as the asset's latest.
        horizon = self.clock.now() + timedelta(seconds=self.settings.telemetry_future_skew_s)
        self._readings = {
            a: _Reading(r["ts"], r["p_kw"], r["e_kwh"])
            for a, r in readings.items()
            if r["ts"] <= horizon
        }
        with self.engine.connect() as conn:
            for s in repo.settlements(conn, limit=200):
                self._observe_settlement(s)
        log.info(
            "runtime started: plan v%s, %d DR events, %d EV sessions, %d assets with telemetry",
            self.current.version if self.current else "-",
            len(self.dr_events()),
            len(self._recovered_sessions),
            len(self._readings),
        )

    def close(self, timeout_s: float = 60.0) -> bool:
        """Refuse new cycles and wait for the running one to finish; False on time-out."""
        self._closing.set()
        got = self._lock.acquire(timeout=timeout_s)
        if got:
            self._lock.release()
            self.lease.release()  # no cycle runs or will: the next service may write
        return got

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    # --------------------------------------------------------------------------------------
    # DR events
    # --------------------------------------------------------------------------------------
    def ingest(self, rows: list[dict[str, Any]], source: str = "api") -> int:
        """Store the plausible readings of ``rows``; the number stored (see
        :meth:`ingest_checked` for the refused ones)."""
        return self.ingest_checked(rows, source).stored

    def ingest_checked(self, rows: list[dict[str, Any]], source: str = "api") -> IngestReport:
        """Store the readings of ``rows`` that the asset could have reported
        (:func:`vpp.park.telemetry_checks.check_readings`), refuse the others; ask for a
        re-solve when a stored one strays from the plan.

        Parameters
        ----------
        rows : list of dict
            Readings ``{asset, ts, p_kw, e_kwh}`` (kW load convention, kWh stored energy).
        source : str
            Stored with each row (``api``, ``driver``, ``meter``).

        Returns
        -------
        IngestReport
            The count stored and the refused rows (index in ``rows``, asset, reason).
        """
        refused = check_readings(rows, self._ranges, self.clock.now(), self._telemetry_bounds())
        if refused:
            drop = {x.index for x in refused}
            rows = [r for i, r in enumerate(rows) if i not in drop]
            for x in refused:
                self.metrics.telemetry_refused.labels(source, x.field).inc()
            log.warning(
                "%d of %d %s readings refused as implausible, e.g. #%d %s: %s",
                len(refused),
                len(rows) + len(refused),
                source,
                refused[0].index,
                refused[0].asset,
                refused[0].reason,
            )
        for r in rows:
            r.setdefault("source", source)
        with self.engine.begin() as conn:
            n = repo.ingest_telemetry(conn, rows)
        self.metrics.telemetry_rows.labels(source).inc(n)
        far = self._note_readings(rows)
        if far and source == "api":
            self.request_resolve("telemetry")
        return IngestReport(n, tuple(refused))

    def _telemetry_bounds(self) -> TelemetryBounds:
        s = self.settings
        return TelemetryBounds(
            s.telemetry_future_skew_s, s.telemetry_p_margin_frac, s.telemetry_e_margin_frac
        )

    def _note_readings(self, rows: Iterable[dict[str, Any]]) -> bool:
        """Update the newest reading per asset; True when one is far from its setpoint."""
        cur, thr, far = self.current, self.settings.replan_threshold_kw, False
        zone = ZoneInfo(self.site.location.tz)
        midnight = (
            self.clock.now().astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        for r in rows:
            if r["asset"] == PARK_METER and r["ts"] < midnight:
                self.meter_history_version += 1  # a past day changed: DR baselines again
            old = self._readings.get(r["asset"])
            if old is None or r["ts"] >= old.ts:
                self._readings[r["asset"]] = _Reading(r["ts"], r.get("p_kw"), r.get("e_kwh"))
            p = r.get("p_kw")
            if cur is None or p is None:
                continue
            ref = cur.setpoints_kw.get(r["asset"])
            if r["asset"] == PARK_METER:
                ref = float(cur.plan.p_net_kw[0])
            if ref is not None and abs(p - ref) > thr:
                far = True
        return far

    def stale_assets(self, at: datetime) -> frozenset[str]:
        """Assets that have reported before but not within ``stale_after_s``."""
        limit = at - timedelta(seconds=self.settings.stale_after_s)
        return frozenset(a for a, r in self._readings.items() if r.ts < limit and a != PARK_METER)

    def readings(self) -> dict[str, _Reading]:
        return dict(self._readings)

    # --------------------------------------------------------------------------------------
    # Cycles
    # --------------------------------------------------------------------------------------
    def request_resolve(self, reason: str) -> int | None:
        """A DR event changed or telemetry strayed: run a cycle at once (rate-limited for
        telemetry). The scheduler's ticket for :meth:`wait_resolved`; None when the cycle
        ran inline (already done) or none was asked for."""
        now = time.monotonic()
        if reason == "telemetry" and now - self._last_replan < self.settings.replan_min_gap_s:
            return None
        self._last_replan = now
        self.metrics.resolves.labels(reason).inc()
        if self.on_resolve is not None:
            return self.on_resolve(reason)
        self.run_cycle(trigger=reason)
        return None

    def wait_resolved(self, ticket: int | None, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (wall clock) for the cycle serving ``ticket`` to end;
        True at once without a ticket or a scheduler to wait on."""
        if ticket is None or self.await_resolve is None:
            return True
        return self.await_resolve(ticket, timeout_s)

    def run_cycle(self, trigger: str = "schedule", at: datetime | None = None) -> Current | None:
        """One control cycle; None when the runtime is shutting down or does not hold the
        writer lease (``lease.status()`` says why; nothing is stored or sent)."""
        with self._lock:
            if self.closing:
                return None
            try:
                if not self.lease.renew():
                    raise LeaseLostError(self.lease.detail)
                return self._cycle(trigger, at or self.clock.now())
            except LeaseLostError:
                log.warning("cycle (%s) not run: writer lease %s", trigger, self.lease.detail)
                return None
            except Exception as exc:
                self.metrics.cycle_failures.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.errors.note("cycle", self.last_error)
                log.exception("cycle (%s) failed", trigger)
                raise

    def _cycle(self, trigger: str, at: datetime) -> Current:
        started = datetime.now(UTC)
        self._advance_dr(at)
        events = tuple(self.dr_events())
        last = self.current.plan if self.current else None
        t0 = time.perf_counter()
        state = self._noted("driver", _DriverView(self.driver, self, at).read_state, at)
        state = replace(state, dr_progress=self._dr_progress(at, events))  # DR feedback
        if per_meter(self.site):  # each sub-meter's month peak, from the stored readings
            peaks = self.meter_peaks.at(self.engine, at)
            state = replace(state, meter_month_peak_import_kw=peaks)
        state_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        baseline = self._dr_plan_baseline(at, events)
        out = self._plan(PlanRequest(at, state, events, last, baseline, self._posted(at)))
        planner_s = time.perf_counter() - t0
        rep, parts = out.report, out.parts
        rep.timings_s = {
            "state_s": state_s,
            **{k: v for k, v in rep.timings_s.items() if k != "total_s"},
            "planner_s": planner_s,  # the worker's phases above, and the hop to it
            "ipc_s": max(planner_s - rep.timings_s.get("total_s", 0.0), 0.0),
        }
        t0 = time.perf_counter()
        rec = self._record(rep, parts, trigger, started, state)
        with self.engine.begin() as conn:
            self.lease.fence(conn)  # first: no other service can take it until this commits
            cycle_id = repo.save_cycle(conn, rec)
            version = repo.plan_version(conn, cycle_id)
            rep.timings_s["store_s"] = time.perf_counter() - t0
            repo.set_timings(conn, cycle_id, {**rec.timings_s, **rep.timings_s})
        # Stored first, then sent: after a crash the stored plan is the one to resend.
        t0 = time.perf_counter()
        commands = self.commands_fn(rep) if self.commands_fn else rep.setpoints_kw
        self._noted("driver", self.driver.apply, at, commands)
        tracked = tracking_for(self.site, rep)
        track = getattr(self.driver, "track", None)  # the local loop on the park meter
        if track is not None:
            self._noted("driver", track, at, tracked)
        rep.timings_s["publish_s"] = time.perf_counter() - t0
        rep.timings_s["total_s"] = sum(
            rep.timings_s[k] for k in ("state_s", "planner_s", "store_s", "publish_s")
        )
        with self.engine.begin() as conn:  # a timing only: losing it loses nothing else
            repo.set_timings(conn, cycle_id, {**rec.timings_s, **rep.timings_s})
        self._driver_telemetry(at, state)
        self._dr_realised(events)
        try:
            self._settle_dr(at)
        except Exception as exc:  # the plan is stored and sent: the cycle stands
            self.errors.note("settlement", f"{type(exc).__name__}: {exc}")
            log.exception("DR settlement failed (tried again next cycle)")
        self.current = Current(
            cycle_id,
            version,
            at,
            rep.result,
            rep.setpoints_kw,
            rep.problem,
            rep.forecasts,
            rep.fallback,
            rep.result.status,
            tracked,
        )
        self.cycles_run += 1
        self.last_error = None
        self._observe(rep, parts, trigger, state, rec)
        log.info(
            "cycle %d at %s (%s): %s %s%s, %.2f s",
            cycle_id,
            at.isoformat(timespec="minutes"),
            trigger,
            rep.controller,
            rep.result.status,
            f", fallback {rep.fallback}" if rep.fallback else "",
            rep.timings_s["total_s"],
        )
        return self.current

    def _noted(self, kind: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``; an exception is noted under ``kind`` (``/health``) and raised."""
        try:
            return fn(*args)
        except Exception as exc:
            self.errors.note(kind, f"{type(exc).__name__}: {exc}")
            raise

    def _posted(self, at: datetime) -> PostedSeries:
        """The price and emission-factor rows posted for the horizon at ``at`` (the park
        file's series come with the site)."""
        h = horizon_for(self.site, at)
        with self.engine.connect() as conn:
            return store_series.posted_for(conn, h.start, h.start + h.n * h.step)

    def _plan(self, req: PlanRequest) -> PlanOutcome:
        """The planner's outcome; when the planner fails (its process died or overran),
        the fallbacks computed here: the last plan shifted, else the rule controller."""
        t0 = time.perf_counter()
        try:
            return self.planner.plan(req)
        except Exception as exc:
            log.exception("planner failed; falling back in the service process")
            error = f"planner: {type(exc).__name__}: {exc}"
        failed_s = time.perf_counter() - t0
        rep = fallback_cycle(
            self.site,
            req.at,
            req.state,
            self.forecaster,
            error,
            req.dr_events,
            req.last_plan,
            req.dr_baseline_kw,
            req.posted,
        )
        rep.timings_s["planner_failed_s"] = failed_s
        return outcome(rep, req.dr_events, self.site.dr_defaults)

    def _record(
        self,
        rep: CycleReport,
        parts: CycleParts,
        trigger: str,
        started: datetime,
        state: PlantState,
    ) -> repo.CycleRecord:
        r = rep.result
        return repo.CycleRecord(
            at=rep.at,
            started_at=started,
            finished_at=datetime.now(UTC),
            trigger=trigger,
            controller=rep.controller,
            fallback=rep.fallback,
            solver=r.solver,
            solver_status=r.status,
            objective_cny=_finite(r.objective_cny),
            terms_cny={k: _finite(v) for k, v in r.terms_cny.items()},
            timings_s={**rep.timings_s, **{f"solver.{k}": v for k, v in r.timings_s.items()}},
            relaxed=parts.relaxed,
            violations=list(rep.violations) + parts.network_violations,
            errors=list(rep.errors),
            clamps=[
                {
                    "asset": c.asset,
                    "proposed_kw": _finite(c.proposed_kw),
                    "sent_kw": c.sent_kw,
                    "reason": c.reason,
                }
                for c in rep.clamps
            ],
            stale_assets=sorted(state.stale_assets),
            plan=parts.plan,
            plan_horizon=r.horizon,
            plan_status=r.status,
            forecasts=parts.forecasts,
            forecast_source=parts.forecast_source,
            setpoints_kw=rep.setpoints_kw,
            clamp_reasons={c.asset: c.reason for c in rep.clamps},
            ev_sessions=state.ev_sessions,
            dr_expected=parts.dr_expected,
        )

    def _driver_telemetry(self, at: datetime, state: PlantState) -> None:
        """Store the readings the driver offers (``telemetry(at)``: dicts or objects with
        ``asset``, ``ts``, ``p_kw``, ``e_kwh``); a driver without telemetry stores none."""
        source = getattr(self.driver, "telemetry", None)
        if not callable(source):
            return
        rows: list[dict[str, Any]] = []
        for x in source(at) or ():
            d = x if isinstance(x, dict) else vars(x)
            rows.append({k: d.get(k) for k in ("asset", "ts", "p_kw", "e_kwh")})
        rows = [r for r in rows if r.get("asset") and r.get("ts") is not None]
        if rows:
            self.ingest(rows, source="driver")

    def _observe(self, rep, parts, trigger, state, rec) -> None:
        m, r = self.metrics, rep.result
        for phase, s in rep.timings_s.items():
            if phase != "total_s":
                m.cycle_phase_s.labels(phase.removesuffix("_s")).observe(s)
        m.cycle_phase_s.labels("total").observe(rep.timings_s.get("total_s", 0.0))
        m.cycles.labels(trigger, rep.controller, r.status, rep.fallback or "none").inc()
        m.last_cycle_ts.set(time.time())
        m.relaxed.set(len(r.relaxed))
        for k, v in r.terms_cny.items():
            m.objective.labels(k).set(_finite(v) or 0.0)
        m.violations.set(len(rep.violations))
        m.network_violations.set(parts.network_violation_count)
        for c in rep.clamps:
            m.clamped.labels(c.reason.split(" [")[0][:40]).inc()
        m.stale_assets.set(len(state.stale_assets))
        net0 = float(r.p_net_kw[0])
        m.park_import_kw.set(max(net0, 0.0))
        m.park_export_kw.set(max(-net0, 0.0))
        for b in rep.problem.batteries:
            m.soc_frac.labels(b.spec.name).set(b.e_init_kwh / b.spec.e_kwh)
        for pe in rep.problem.pedfs:
            m.soc_frac.labels(pe.spec.battery.name).set(pe.e_init_kwh / pe.spec.battery.e_kwh)
        here = [s for s in state.ev_sessions if s.arrival <= rep.at < s.departure]
        m.ev_delivered_kwh.set(sum(s.e_delivered_kwh for s in here))
        m.ev_requested_kwh.set(sum(s.e_needed_kwh for s in here))
        for event_id, exp in (rec.dr_expected or {}).items():
            if "response_mean_kw" in exp:
                m.dr_target_kw.labels(event_id).set(exp["target_kw"])
                m.dr_expected_kw.labels(event_id).set(exp["response_mean_kw"])
        self._forecast_error(rep.at, rep.forecasts)

    def _forecast_error(self, at: datetime, fc: Forecasts | None) -> None:
        """Compare earlier forecasts with the readings that arrived since (loads exactly;
        PV against what it delivered, which a curtailment lowers), by lead time in steps."""
        if fc is None:
            return
        step = timedelta(minutes=self.site.dispatch.step_minutes)
        fresh = [
            (a, r.ts, r.p_kw)
            for a, r in self._readings.items()
            if r.p_kw is not None and a in fc.p50 and at - r.ts <= step
        ]
        for start, p50 in self._forecast_log:
            for asset, ts, measured in fresh:
                k = round((ts - start) / step)
                series = p50.get(asset)
                if k >= 1 and series is not None and k < len(series):
                    value = -measured if asset in self._pv_names else measured
                    self.metrics.forecast_error_kw.labels(str(k)).observe(
                        abs(float(series[k]) - value)
                    )
        self._forecast_log.append((at, dict(fc.p50)))
        self._forecast_log = [(s, f) for s, f in self._forecast_log if at - s < 24 * step][-8:]

    # --------------------------------------------------------------------------------------
    # Views for the API
    # --------------------------------------------------------------------------------------
    def recovered_sessions(self) -> list:
        return list(self._recovered_sessions)


class _DriverView:
    """The driver as the cycle sees it: stale assets from the runtime's telemetry added,
    EV sessions recovered from the database merged in; the state read is kept."""

    def __init__(self, inner: PlantDriver, runtime: Runtime, at: datetime):
        self.inner, self.runtime, self.state = inner, runtime, None

    def read_state(self, at: datetime) -> PlantState:
        s = self.inner.read_state(at)
        stale = frozenset(s.stale_assets) | self.runtime.stale_assets(at)
        known = {x.session_id for x in s.ev_sessions}
        busy = {x.charger for x in s.ev_sessions if x.departure > at}
        extra = tuple(
            x
            for x in self.runtime.recovered_sessions()
            if x.session_id not in known and x.charger not in busy and x.departure > at
        )
        recovered = self.runtime.recovered_sessions()
        merged = tuple(_with_delivered(x, recovered, s.assumptions) for x in s.ev_sessions)
        # An energy stored before a restart beats the driver's assumption about it.
        stored = {x.session_id for x in recovered}
        kept = tuple(
            a for a in s.assumptions if a.quantity != "e_delivered_kwh" or a.subject not in stored
        )
        self.state = replace(s, stale_assets=stale, ev_sessions=merged + extra, assumptions=kept)
        return self.state

    def apply(self, at: datetime, setpoints_kw: dict[str, float]) -> None:
        self.inner.apply(at, setpoints_kw)


def _with_delivered(s, recovered, assumptions=()):
    """A session's delivered energy never goes back below what was stored before a restart;
    when the driver only assumed it (a cold start, no charger meter), the stored value wins."""
    assumed = any(
        a.subject == s.session_id and a.quantity == "e_delivered_kwh" for a in assumptions
    )
    for r in recovered:
        if r.session_id == s.session_id and (assumed or r.e_delivered_kwh > s.e_delivered_kwh):
            return replace(s, e_delivered_kwh=r.e_delivered_kwh)
    return s


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)
