"""The runtime's demand-response lifecycle: which stored events it plans with, their status
over time (confirmed, active, completed, declined past the deadline), the baseline the plan
stands on and the settlement once a window is over.

A mixin of :class:`vpp.runtime.service.Runtime`, apart so that the runtime's module stays
about cycles. It uses the runtime's ``site``, ``settings``, ``engine``, ``clock``,
``metrics``, ``errors``, ``skipped_dr_events``, ``_unsettleable``, ``_readings`` and
``meter_history_version``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import update

from vpp.accounting import dr_baseline, dr_progress
from vpp.accounting.dr_history import DailyBaselines
from vpp.park.calendar import is_workday
from vpp.park.dr_checks import DrPark, event_problems
from vpp.park.model import PARK_METER, DemandResponseEvent, DrStatus
from vpp.park.state import DrProgress
from vpp.plan.dr_targets import DR_ACTIVE
from vpp.plan.prepare import horizon_for
from vpp.store import repo, tables
from vpp.store.codec import dr_from_json

log = logging.getLogger("vpp.runtime.service")  # the runtime's own log lines

NOT_CALLED = (DrStatus.DECLINED, DrStatus.CANCELLED)


def _advance_if_unchanged(conn, row: dict[str, Any], new: DrStatus, note: str) -> bool:
    """Store ``new`` as the event's status only if the stored event is still the version
    ``row`` read (a conditional update). A cancel or an update made by the API or a grid-side
    adapter while this cycle ran, committed between the read and this write, stands: the
    status follows from it at the next cycle. False when the row had changed."""
    version = row["version"] + 1
    res = conn.execute(
        update(tables.dr_events)
        .where(
            tables.dr_events.c.event_id == row["event_id"],
            tables.dr_events.c.version == row["version"],
        )
        .values(status=new.value, version=version, updated_at=datetime.now(UTC))
    )
    if res.rowcount != 1:
        return False
    repo.log_dr(conn, row["event_id"], new.value, "runtime", note)
    return True


class DrLifecycle:
    """DR events of a :class:`~vpp.runtime.service.Runtime` (a mixin; see the module doc)."""

    def dr_events(self) -> list[DemandResponseEvent]:
        """The stored DR events that pass the park's checks (:meth:`_valid_dr`)."""
        with self.engine.connect() as conn:
            rows = repo.list_dr(conn)
        return [e for _, e in self._valid_dr(rows)]

    def _valid_dr(
        self, rows: Iterable[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], DemandResponseEvent]]:
        """Stored rows with their events, but for those that fail the park's checks
        (:mod:`vpp.park.dr_checks`, with the window range's ahead side only: stored events
        age and must still be settled). Those are skipped, not planned or settled, logged
        once and listed in ``skipped_dr_events`` (``/health`` shows them): one stored event
        that arithmetic cannot handle (a window in 9999) must not stop every cycle."""
        bounds = self.settings.dr_bounds(past=False)
        park = DrPark.of(self.site)
        now = self.clock.now()
        out = []
        for r in rows:
            try:
                e = dr_from_json({**r["body"], "status": r["status"]})
                problems = [str(p) for p in event_problems(e, park, bounds, now)]
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                problems = [f"cannot be read: {type(exc).__name__}: {exc}"]
            if not problems:
                out.append((r, e))
                continue
            if r["event_id"] not in self.skipped_dr_events:
                log.error(
                    "DR event %s is skipped (not planned, not settled): %s",
                    r["event_id"],
                    "; ".join(problems),
                )
            self.skipped_dr_events[r["event_id"]] = "; ".join(problems)
        return out

    def _advance_dr(self, at: datetime) -> None:
        """Confirmed events become active in their window and completed after it."""
        with self.engine.begin() as conn:
            for r, e in self._valid_dr(repo.list_dr(conn)):
                end = max(w.end for w in e.windows)
                start = min(w.start for w in e.windows)
                new = None
                if e.status in (DrStatus.CONFIRMED, DrStatus.ACTIVE) and at >= end:
                    new = DrStatus.COMPLETED
                elif e.status is DrStatus.CONFIRMED and at >= start:
                    new = DrStatus.ACTIVE
                elif (
                    e.status is DrStatus.ANNOUNCED
                    and e.confirm_deadline is not None
                    and at > e.confirm_deadline
                ):
                    new = DrStatus.DECLINED  # not confirmed by the deadline
                if new is not None:
                    note = "confirm deadline passed" if new is DrStatus.DECLINED else "by time"
                    _advance_if_unchanged(conn, r, new, note)

    def _dr_plan_baseline(
        self, at: datetime, events: tuple[DemandResponseEvent, ...]
    ) -> np.ndarray | None:
        """The settlement's baseline (GB/T 37016-style, from the stored park meter) over the
        horizon starting at ``at``, for the plan; None when no called event touches the
        horizon or the history has no similar day (the plan then labels its own)."""
        horizon = horizon_for(self.site, at)
        called = [e for e in events if e.status not in NOT_CALLED]
        if not any(
            w.end > horizon.start and w.start < horizon.end for e in called for w in e.windows
        ):
            return None
        days = self._plan_baselines(at, called)
        try:
            return days.on(horizon)
        except ValueError:
            return None

    def _dr_progress(
        self, at: datetime, events: tuple[DemandResponseEvent, ...]
    ) -> dict[str, DrProgress]:
        """What each called event delivered so far on the stored park meter, against the
        plan's baseline (:func:`vpp.accounting.dr_progress.progress`): the feedback the
        plan re-aims from. Intervals without a reading are counted as missing; empty when
        no confirmed window has begun or the history has no similar day."""
        called = [e for e in events if e.status not in NOT_CALLED]
        step = timedelta(minutes=self.site.dispatch.step_minutes)
        past = dr_progress.past_horizon([e for e in called if e.status in DR_ACTIVE], at, step)
        if past is None:
            return {}
        try:
            base = self._plan_baselines(at, called).on(past)
        except ValueError:
            return {}
        with self.engine.connect() as conn:
            ts_s, p_kw = repo.meter_readings(conn, PARK_METER, past.start, past.end)
        kw = dr_baseline.interval_means(
            ts_s, p_kw, past.start.timestamp(), step.total_seconds(), past.n
        )
        return dr_progress.progress(called, past, kw, base)

    def _plan_baselines(self, at: datetime, called: list[DemandResponseEvent]) -> DailyBaselines:
        """The daily baselines from the complete metered days before ``at``'s day. They stay
        fixed for the day, so the meter history is read once a day (and again when the
        called events change or readings of a past day arrive), not in every cycle."""
        zone = ZoneInfo(self.site.location.tz)
        today = at.astimezone(zone).date()
        events = tuple(sorted((e.event_id, e.windows) for e in called))
        key = (today, self.meter_history_version, events)
        cached = getattr(self, "_plan_baselines_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        step = timedelta(minutes=self.site.dispatch.step_minutes)
        meter_start = datetime.combine(
            today - timedelta(days=dr_baseline.HISTORY_DAYS), datetime.min.time(), tzinfo=zone
        )
        end = datetime.combine(today, datetime.min.time(), tzinfo=zone)
        with self.engine.connect() as conn:
            ts_s, p_kw = repo.meter_readings(conn, PARK_METER, meter_start, end)
        n = round((end - meter_start) / step)
        kw = dr_baseline.interval_means(
            ts_s, p_kw, meter_start.timestamp(), step.total_seconds(), n
        )
        workday = functools.partial(is_workday, calendar=self.site.calendar)
        days = DailyBaselines(self.site.location.tz, step, called, workday)
        days.add_meter(meter_start, kw)
        self._plan_baselines_cache = (key, days)
        return days

    def _settle_dr(self, at: datetime) -> None:
        """Settle each completed event on the stored park meter data (GB/T 37016-style
        baseline), once the window's readings are in or ``stale_after_s`` after its end."""
        with self.engine.connect() as conn:
            rows = repo.unsettled_dr(conn)
        pairs = [(r, e) for r, e in self._valid_dr(rows) if r["event_id"] not in self._unsettleable]
        if not pairs:
            return
        zone = ZoneInfo(self.site.location.tz)
        step = timedelta(minutes=self.site.dispatch.step_minutes)
        called = [e for e in self.dr_events() if e.status not in NOT_CALLED]
        excluded = dr_baseline.event_days(called, zone)
        workday = functools.partial(is_workday, calendar=self.site.calendar)
        late = timedelta(seconds=self.settings.stale_after_s)
        for _, e in pairs:
            first = min(w.start for w in e.windows).astimezone(zone)
            end = max(w.end for w in e.windows)
            day0 = first.date() - timedelta(days=dr_baseline.HISTORY_DAYS)
            meter_start = datetime.combine(day0, datetime.min.time(), tzinfo=zone)
            with self.engine.connect() as conn:
                ts_s, p_kw = repo.meter_readings(conn, PARK_METER, meter_start, end)
            n = math.ceil((end - meter_start) / step)
            kw = dr_baseline.interval_means(
                ts_s, p_kw, meter_start.timestamp(), step.total_seconds(), n
            )
            try:
                s = dr_baseline.settle(
                    e, meter_start, step, kw, workday, excluded, called, self.site.dr_defaults
                )
            except ValueError as exc:
                if at >= end + late:
                    log.warning("DR event %s cannot be settled: %s", e.event_id, exc)
                    self.errors.note("settlement", f"DR event {e.event_id}: {exc}")
                    self._unsettleable.add(e.event_id)
                continue
            if s.intervals_metered < len(s.times) and at < end + late:
                continue  # readings of the window still to come
            with self.engine.begin() as conn:
                repo.save_settlement(conn, s)
                self._observe_settlement(repo.settlement_of(conn, e.event_id))
            d = s.delivery
            log.info(
                "DR event %s settled: %.1f kWh of %.1f (%s, %s baseline%s), %s, %.2f CNY",
                e.event_id,
                d.delivered_kwh,
                d.requested_kwh,
                "no ratio" if d.ratio is None else f"{100 * d.ratio:.0f} %",
                s.method,
                f"; intervals shared with {', '.join(s.shared_with)}" if s.shared_with else "",
                "effective" if d.effective else "not effective",
                s.compensation.total_cny if s.compensation else 0.0,
            )

    def _observe_settlement(self, row: dict[str, Any] | None) -> None:
        """Export a stored settlement (a ``dr_settlements`` row) as metrics."""
        if row is None:
            return
        m, event_id = self.metrics, row["event_id"]
        m.dr_delivered_kwh.labels(event_id, row["baseline_method"]).set(row["delivered_kwh"])
        if row["delivery_ratio"] is not None:  # no ratio exists when nothing was requested
            m.dr_delivery_ratio.labels(event_id).set(row["delivery_ratio"])
        m.dr_effective.labels(event_id).set(1.0 if row["effective"] else 0.0)
        if row.get("compliant_frac") is not None:
            m.dr_compliant_frac.labels(event_id).set(row["compliant_frac"])
            m.dr_over_cap_kwh.labels(event_id).set(row["e_over_cap_kwh"])
        if row.get("compensation_cny") is not None:
            m.dr_compensation_cny.labels(event_id).set(row["compensation_cny"])

    # --------------------------------------------------------------------------------------
    # Telemetry
    # --------------------------------------------------------------------------------------
    def _dr_realised(self, events: list[DemandResponseEvent]) -> None:
        """DR delivery as metered: the park meter's latest reading inside an event window."""
        park = self._readings.get(PARK_METER)
        if park is None or park.p_kw is None:
            return
        for e in events:
            if e.status not in (DrStatus.CONFIRMED, DrStatus.ACTIVE, DrStatus.COMPLETED):
                continue
            if any(w.start <= park.ts < w.end for w in e.windows):
                self.metrics.dr_realised_import_kw.labels(e.event_id).set(park.p_kw)
                if e.import_cap_kw is not None:
                    margin = e.import_cap_kw - park.p_kw
                    self.metrics.dr_realised_margin_kw.labels(e.event_id).set(margin)
