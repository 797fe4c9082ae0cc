"""The park's bill over a run, from what the park did (pure computation on arrays).

Three lines besides the energy itself, each with the rule it follows:

* **Demand charge**, per calendar month on that month's realised peak import. A month the run
  covers only in part is pro-rated by the share of the month it covers (covered intervals x
  their length / the month's length: a one-day run in July pays 1/31 of July's charge). The
  bill of a real month is the unprorated figure; ``prorate=False`` gives it.
* **Stored energy**: energy left in the batteries at the end against the start, valued at the
  planner's own terminal value (a battery's configured ``terminal_value_cny_per_kwh``, else
  the run's mean import price x its discharge efficiency:
  :meth:`vpp.park.model.Battery.terminal_value`, the rule the planner uses). A run that ends
  with emptier batteries took energy it did not pay for; that energy is a cost here, and a
  fuller end a credit.
* **DR compensation** comes from the settlement (:mod:`vpp.accounting.dr_baseline`) and is
  subtracted from the total by :mod:`vpp.accounting.kpis`.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from vpp.park.model import Battery


@dataclass(frozen=True)
class MonthDemand:
    """One calendar month's demand charge within a run."""

    month: str  # YYYY-MM, local time
    peak_import_kw: float  # the month's peak: the run's, or the metered one before it
    covered_frac: float  # share of the month's hours the run covers, 0-1
    rate_cny_per_kw_month: float
    charge_cny: float  # after pro-rating (when asked)
    full_month_cny: float  # rate x peak, what a whole month at this peak would be billed
    peak_before_run_kw: float = 0.0  # metered in the month before the run began
    run_peak_import_kw: float = 0.0  # the run's own peak


def demand_charges(
    import_kw: np.ndarray,
    times: Sequence[datetime],
    step: timedelta,
    rate_cny_per_kw_month: float,
    tz: str,
    prorate: bool = True,
    peak_before_kw: dict[str, float] | None = None,
) -> list[MonthDemand]:
    """Demand charge of every calendar month the series touches.

    Parameters
    ----------
    import_kw : realised import per interval (kW, >= 0).
    times : interval starts (tz-aware), one per value.
    step : interval length.
    rate_cny_per_kw_month : the tariff's monthly demand charge (CNY per kW of peak).
    tz : the park's time zone (months are local).
    prorate : pro-rate a partly covered month by the share of it the run covers.
    peak_before_kw : per month (``YYYY-MM``), the peak already metered in that month before
        the run: the month's bill is set by the higher of it and the run's own peak.
    """
    zone = ZoneInfo(tz)
    peak: dict[tuple[int, int], float] = {}
    hours: dict[tuple[int, int], float] = {}
    step_h = step.total_seconds() / 3600.0
    for t, p in zip(times, import_kw, strict=True):
        local = t.astimezone(zone)
        key = (local.year, local.month)
        peak[key] = max(peak.get(key, 0.0), float(p))
        hours[key] = hours.get(key, 0.0) + step_h
    out = []
    before = peak_before_kw or {}
    for key in sorted(peak):
        month_h = 24.0 * calendar.monthrange(*key)[1]
        frac = min(hours[key] / month_h, 1.0)
        label = f"{key[0]:04d}-{key[1]:02d}"
        prior = float(before.get(label, 0.0))
        top = max(peak[key], prior)
        full = rate_cny_per_kw_month * top
        out.append(
            MonthDemand(
                month=label,
                peak_import_kw=top,
                covered_frac=frac,
                rate_cny_per_kw_month=rate_cny_per_kw_month,
                charge_cny=full * frac if prorate else full,
                full_month_cny=full,
                peak_before_run_kw=prior,
                run_peak_import_kw=peak[key],
            )
        )
    return out


@dataclass(frozen=True)
class StoredEnergy:
    """The batteries' energy at the end of a run against the start, and what it is worth."""

    e_start_kwh: float
    e_end_kwh: float
    value_cny: float  # end - start, valued; > 0: more stored at the end (a credit)
    value_cny_per_kwh: dict[str, float]  # the value used per battery

    @property
    def change_kwh(self) -> float:
        return self.e_end_kwh - self.e_start_kwh

    @property
    def cost_cny(self) -> float:
        """The change as a cost line of the bill: energy taken out is paid for."""
        return -self.value_cny


def stored_energy(
    batteries: Sequence[Battery],
    e_start_kwh: Mapping[str, float],
    e_end_kwh: Mapping[str, float],
    mean_import_price_cny_per_kwh: float,
) -> StoredEnergy:
    """Value the change of stored energy at the planner's terminal value (see module doc).

    Parameters
    ----------
    batteries : every battery of the park (PEDF buildings' batteries included).
    e_start_kwh, e_end_kwh : energy per battery at the run's start and end (kWh).
    mean_import_price_cny_per_kwh : the run's mean import price.
    """
    value = 0.0
    per: dict[str, float] = {}
    e0 = e1 = 0.0
    for b in batteries:
        v = b.terminal_value(mean_import_price_cny_per_kwh)
        start, end = float(e_start_kwh[b.name]), float(e_end_kwh[b.name])
        per[b.name] = v
        value += v * (end - start)
        e0, e1 = e0 + start, e1 + end
    return StoredEnergy(e0, e1, value, per)
