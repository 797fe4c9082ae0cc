"""What the controller knows about the park at the start of an interval, and its forecasts.

Filled by a plant driver (the simulated park, or field adapters) and by the forecasters;
consumed by :func:`vpp.plan.prepare.build_problem`. Plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from vpp.park.model import EvSession


@dataclass(frozen=True)
class ShiftableState:
    e_done_kwh: float = 0.0  # energy consumed so far in the window in progress
    running_steps: int = 0  # consecutive intervals it has been running up to now


@dataclass(frozen=True)
class Assumption:
    """A value the driver could not measure and stated instead, so that no figure built on it
    reads as measured: ``quantity`` of ``subject`` (an EV session id or an asset name) taken
    as ``value`` (in the unit ``quantity`` names) on ``basis``."""

    subject: str
    quantity: str  # e.g. "e_delivered_kwh"
    value: float
    basis: str  # e.g. "uncontrolled charging since arrival (no charger meter)"


@dataclass(frozen=True)
class DrProgress:
    """What a DR event has delivered so far, on the park meter, over its own past intervals.

    Counted over the event's *own* intervals (an interval another, stricter event also
    covers counts for that one: :func:`vpp.park.dr_rules.attribute`) whose metering has
    passed, against the baseline the plan uses; only metered intervals count, as the
    settlement counts them (:func:`vpp.accounting.dr_baseline.settle_run`), and those
    without a reading are counted apart in ``intervals_missing``.

    ``delivered_kwh`` is in the event's direction (+ = less import for peak shaving, more
    for valley filling); ``requested_kwh`` is what the event asked of the metered intervals
    (cleared or requested kW x hours; a cap-only event: the baseline above the cap).
    """

    delivered_kwh: float = 0.0
    requested_kwh: float = 0.0
    intervals_done: int = 0  # own past intervals with a reading
    intervals_missing: int = 0  # own past intervals without one (stale or lost meter data)
    e_over_cap_kwh: float = 0.0  # cap-only events: energy imported above the cap so far
    intervals_over_cap: int = 0  # cap-only events: metered intervals above the cap so far

    @property
    def ratio(self) -> float | None:
        """Delivered over requested so far (None when nothing was requested yet)."""
        return self.delivered_kwh / self.requested_kwh if self.requested_kwh > 0 else None


@dataclass(frozen=True)
class PlantState:
    """Measured state at ``at``. Missing batteries fall back to their configured initial SOC.

    ``assumptions`` lists every value in the state that was assumed rather than measured (a
    cold start: a car plugged in before the service, with no charger meter to read).
    ``dr_progress``: per called DR event id, what it delivered so far on the park meter
    (:class:`DrProgress`, :func:`vpp.accounting.dr_progress.progress`); an event without an
    entry has no metered past (its window has not begun, or no meter is read).
    """

    at: datetime
    battery_e_kwh: dict[str, float] = field(default_factory=dict)  # incl. PEDF batteries
    ev_sessions: tuple[EvSession, ...] = ()  # sessions plugged in now or announced
    shiftable: dict[str, ShiftableState] = field(default_factory=dict)
    month_peak_import_kw: float = 0.0
    stale_assets: frozenset[str] = frozenset()  # no fresh telemetry: hold at a safe setpoint
    assumptions: tuple[Assumption, ...] = ()
    dr_progress: dict[str, DrProgress] = field(default_factory=dict)
    # Per sub-meter (vpp.park.meters: a tenant's or ``common``), the month's peak import so
    # far (kW); a meter without an entry starts the month at 0.
    meter_month_peak_import_kw: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Forecasts:
    """Per-asset series on the horizon (kW, >= 0): PV available by PV array name (also the
    PEDF buildings' arrays), loads by base-load or curtailable-load name (also PEDF ones).

    ``p10`` / ``p90`` hold the same keys where a forecaster gives quantiles; the dispatch keeps
    ``risk_frac`` of the P90-P50 spread of the park's net load as headroom under its limits.
    """

    p50: dict[str, np.ndarray]
    p10: dict[str, np.ndarray] = field(default_factory=dict)
    p90: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "perfect"
