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
class PlantState:
    """Measured state at ``at``. Missing batteries fall back to their configured initial SOC."""

    at: datetime
    battery_e_kwh: dict[str, float] = field(default_factory=dict)  # incl. PEDF batteries
    ev_sessions: tuple[EvSession, ...] = ()  # sessions plugged in now or announced
    shiftable: dict[str, ShiftableState] = field(default_factory=dict)
    month_peak_import_kw: float = 0.0
    stale_assets: frozenset[str] = frozenset()  # no fresh telemetry: hold at a safe setpoint


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
