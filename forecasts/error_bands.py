"""Forecast bands calibrated on the forecaster's own recent error.

A forecaster's P10/P90 are a claim; what its P50 missed by, measured, is a fact. The dispatch
keeps a margin of ``risk_frac`` x (P90 - P50) under every limit (:mod:`vpp.plan.prepare`), so
a band that is too narrow (the configured profiles give none at all; the naive model's band is
the spread of a week-lag difference, not of its own error) leaves limits unprotected, and a
biased forecast (a building drawing 20 % above its profile all week) is protected only if the
band is taken from the error itself, bias included.

:class:`ErrorBands` records every P50 issued and every value measured afterwards, and keeps
per asset and per lead-time group the *relative* error
``(measured - p50) / (p50 + floor)`` of the last ``window_days``, where ``floor`` is a
twentieth of the largest P50 issued for that asset (so that a forecast near zero, PV at dawn,
does not blow the ratio up). Its P10 and P90 give the calibrated band:
``p50 + q x (p50 + floor)``. The band is asymmetric when the forecast is biased: a forecast
that runs low all week gets a wide P90 and a P10 at or above its P50.

Leads are grouped (``LEAD_EDGES``): the next interval, the next hour, the next three hours,
the next twelve, the rest, so each group has samples enough within a week. A group with fewer
than ``min_samples`` samples, or whose samples were measured over fewer than ``min_intervals``
distinct intervals (default: a day's), keeps the forecaster's own band: every cycle's forecast
covers a measured interval, so 48 samples of the long leads can come from a single hour, and
on a park started on a Monday the first afternoon's errors of a forecaster that only knew the
weekend (eight times the P50 at offices) became the band of every lead beyond twelve hours, a
margin that put the import limit 1,100 kW below zero (configs/parks/flat_offpeak.yaml).
Pure computation: the caller feeds it the issued forecasts and the measurements
(:class:`vpp.plan.calibrated.CalibratedForecaster`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np

from vpp.park.state import Forecasts

LEAD_EDGES = (1, 4, 12, 48)  # lead (intervals ahead) groups: [0,1) [1,4) [4,12) [12,48) [48,..)
FLOOR_FRAC = 0.05  # floor of the relative error's denominator: this share of the largest P50


def lead_group(k: np.ndarray | int) -> np.ndarray:
    """The lead group (0 .. len(LEAD_EDGES)) of lead ``k`` (intervals ahead, 0 = the first)."""
    return np.searchsorted(np.asarray(LEAD_EDGES), np.asarray(k), side="right")


class ErrorBands:
    """Per-asset, per-lead-group relative forecast errors of the last ``window_days``.

    ``issue(start_s, p50)`` records a forecast whose first interval starts at ``start_s``
    (Unix seconds); ``observe(name, t_s, value_kw)`` records what was measured over the
    interval starting at ``t_s`` and matches it against every recorded forecast covering it;
    ``calibrate(forecasts, start_s)`` returns the forecasts with calibrated P10/P90.

    ``nonneg_zero``: assets whose band is zero where their P50 is zero (PV at night).
    """

    def __init__(
        self,
        step_s: float,
        window_days: float = 7.0,
        min_samples: int = 48,
        quantiles: tuple[float, float] = (10.0, 90.0),
        nonneg_zero: frozenset[str] = frozenset(),
        min_intervals: int | None = None,
    ):
        if step_s <= 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        self.step_s = float(step_s)
        self.window_s = float(window_days) * 86400.0
        self.min_samples = int(min_samples)
        day = max(round(86400.0 / self.step_s), 1)
        self.min_intervals = day if min_intervals is None else int(min_intervals)
        self.q = quantiles
        self.nonneg_zero = nonneg_zero
        self._issued: deque[tuple[int, dict[str, np.ndarray]]] = deque()
        self._scale: dict[str, float] = {}
        # (asset, group) -> the intervals and the relative errors measured there, oldest first
        self._err: dict[tuple[str, int], _Errors] = {}
        self._seen: set[tuple[str, int]] = set()  # (asset, interval) already observed
        self._longest = 0  # the longest forecast issued (intervals)

    # -- recording -------------------------------------------------------------------------
    def _k(self, t_s: float) -> int:
        return int(np.floor(t_s / self.step_s + 1e-9))

    def issue(self, start_s: float, p50: dict[str, np.ndarray]) -> None:
        """Record the P50 of a forecast whose first interval starts at ``start_s``."""
        k0 = self._k(start_s)
        if self._issued and self._issued[-1][0] == k0:
            self._issued.pop()  # a re-solve of the same interval replaces the earlier one
        self._issued.append((k0, {n: np.asarray(v, dtype=float).copy() for n, v in p50.items()}))
        for n, v in p50.items():
            if len(v):
                self._scale[n] = max(self._scale.get(n, 0.0), float(np.max(np.abs(v))))
        horizon = max((len(v) for v in p50.values()), default=0)
        self._longest = max(self._longest, horizon)
        while self._issued and self._issued[0][0] + 4 * horizon < k0:
            self._issued.popleft()

    def observe(self, name: str, t_s: float, value_kw: float) -> None:
        """What ``name`` measured over the interval starting at ``t_s`` (kW)."""
        if not np.isfinite(value_kw):
            return
        k = self._k(t_s)
        if (name, k) in self._seen:
            return
        self._seen.add((name, k))
        floor = FLOOR_FRAC * self._scale.get(name, 0.0)
        found = []
        for k0, arrs in reversed(self._issued):  # newest first: stop past the longest lead
            lead = k - k0
            if lead >= self._longest:
                break
            p = arrs.get(name)
            if p is None or lead < 0 or lead >= len(p):
                continue
            found.append((k0, p))
        for k0, p in reversed(found):  # samples kept in the order of issue
            lead = k - k0
            den = abs(p[lead]) + floor
            if den <= 0:
                continue
            if name in self.nonneg_zero and p[lead] <= 0:
                continue
            g = int(lead_group(lead))
            self._errors(name, g).add(k, (value_kw - p[lead]) / den)
        self._forget(k)

    def note_scale(self, name: str, kw: float) -> None:
        """``name`` reaches ``kw`` (the floor of its relative error is a share of its largest)."""
        self._scale[name] = max(self._scale.get(name, 0.0), abs(float(kw)))

    def observe_replayed(self, name: str, t_s: float, forecast_kw: float, value_kw: float) -> None:
        """A forecaster that says the same for an interval whatever the time it is asked
        (the configured profiles) said ``forecast_kw`` for the interval starting at ``t_s``;
        ``value_kw`` was measured: the error counts for every lead group."""
        if not (np.isfinite(value_kw) and np.isfinite(forecast_kw)):
            return
        k = self._k(t_s)
        if (name, k) in self._seen:
            return
        self._seen.add((name, k))
        self._scale[name] = max(self._scale.get(name, 0.0), abs(float(forecast_kw)))
        if name in self.nonneg_zero and forecast_kw <= 0:
            return
        den = abs(forecast_kw) + FLOOR_FRAC * self._scale[name]
        if den <= 0:
            return
        e = (value_kw - forecast_kw) / den
        for g in range(len(LEAD_EDGES) + 1):
            self._errors(name, g).add(k, e)
        self._forget(k)

    def _errors(self, name: str, g: int) -> _Errors:
        q = self._err.get((name, g))
        if q is None:
            q = self._err[(name, g)] = _Errors()
        return q

    def _forget(self, k_now: int) -> None:
        k_old = k_now - int(self.window_s / self.step_s)
        for q in self._err.values():
            q.drop_before(k_old)
        if len(self._seen) > 200_000:
            self._seen = {x for x in self._seen if x[1] >= k_old}

    # -- reading ---------------------------------------------------------------------------
    def quantiles(self, name: str) -> dict[int, tuple[float, float]]:
        """Per lead group with enough samples: the relative error's (P10, P90)."""
        out = {}
        for g in range(len(LEAD_EDGES) + 1):
            q = self._err.get((name, g))
            if q is None or len(q) < self.min_samples or q.distinct < self.min_intervals:
                continue
            e = np.fromiter(q.e, dtype=float, count=len(q))
            lo, hi = np.percentile(e, self.q)
            out[g] = (float(lo), float(hi))
        return out

    def samples(self, name: str) -> int:
        return sum(len(q) for (n, _), q in self._err.items() if n == name)

    def calibrate(self, forecasts: Forecasts) -> Forecasts:
        """``forecasts`` with P10/P90 taken from the measured error where a lead group has
        ``min_samples``; elsewhere (and for assets never measured) the forecaster's own."""
        p10, p90 = dict(forecasts.p10), dict(forecasts.p90)
        changed = False
        for name, p50 in forecasts.p50.items():
            qs = self.quantiles(name)
            if not qs:
                continue
            p50 = np.asarray(p50, dtype=float)
            n = len(p50)
            groups = lead_group(np.arange(n))
            lo = np.asarray(p10.get(name, p50), dtype=float).copy()
            hi = np.asarray(p90.get(name, p50), dtype=float).copy()
            floor = FLOOR_FRAC * self._scale.get(name, 0.0)
            den = np.abs(p50) + floor
            for g, (q_lo, q_hi) in qs.items():
                m = groups == g
                lo[m] = np.maximum(p50[m] + q_lo * den[m], 0.0)
                hi[m] = np.maximum(p50[m] + q_hi * den[m], 0.0)
            if name in self.nonneg_zero:
                dark = p50 <= 0
                lo[dark], hi[dark] = 0.0, 0.0
            p10[name], p90[name] = lo, hi
            changed = True
        if not changed:
            return forecasts
        return replace(forecasts, p10=p10, p90=p90, source=f"{forecasts.source}+calibrated")


class _Errors:
    """Relative errors of one asset and lead group with the interval each was measured in,
    oldest first (two deques: the errors are read as one array each cycle)."""

    __slots__ = ("distinct", "e", "k")

    def __init__(self) -> None:
        self.k: deque[int] = deque()
        self.e: deque[float] = deque()
        self.distinct = 0  # distinct measured intervals among the samples

    def __len__(self) -> int:
        return len(self.e)

    def add(self, k: int, e: float) -> None:
        # Samples arrive in the order their intervals were measured (k never falls).
        if not self.k or self.k[-1] != k:
            self.distinct += 1
        self.k.append(k)
        self.e.append(float(e))

    def drop_before(self, k_old: int) -> None:
        while self.k and self.k[0] < k_old:
            k = self.k.popleft()
            self.e.popleft()
            if not self.k or self.k[0] != k:
                self.distinct -= 1
