"""Price and emission-factor series as data, and the rule that puts them on a horizon.

A series is a list of intervals (start in UTC, a fixed step), each with a value and, for a
*forecast*, the time it was issued; a row without an issue time is *cleared* (the market's
settled price, or the factor as published after the fact). The series is read from a CSV file
(:mod:`vpp.park.price_series`) or posted to the service (``POST /prices``,
``POST /emission-factors``) and stored.

The rule (:func:`resolve`), for each interval of a horizon, at the time ``now``:

1. a cleared value if the series has one for the interval;
2. otherwise the latest forecast issued at or before ``now`` (a forecast issued later is not
   known yet at ``now`` and is ignored);
3. otherwise the fallback: the tariff's time-of-use price, or the annual (or hourly) factor.
   The :class:`Cover` returned says how many intervals fell back, and the caller refuses the
   horizon when the series is ``required`` (:class:`SeriesMissingError`); nothing falls back
   silently.

A horizon interval finer than the series' step takes the series interval that contains it; a
horizon interval coarser than the step takes the mean of the series intervals inside it
(each resolved by the rule; an uncovered part takes the fallback, and the interval counts as
fallen back). Pure computation: times are compared as UTC seconds.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

SeriesKind = Literal["energy", "average", "marginal"]
#: Where an interval's value came from (:attr:`Cover.source`).
CLEARED, FORECAST, FALLBACK = "cleared", "forecast", "fallback"


class SeriesMissingError(ValueError):
    """A required series does not cover the horizon (the message says which intervals)."""


@dataclass(frozen=True)
class IntervalSeries:
    """Values on fixed-step intervals; the rows in the order they were read or posted.

    ``start``: each interval's start (timezone-aware; compared in UTC); ``issued``: the time
    a forecast row was issued, None for a cleared row; ``export_value``: an export price per
    row (CNY/kWh, None where the row gives none) or None for a series without the column.
    """

    name: str
    step_minutes: int
    start: tuple[datetime, ...] = ()
    value: tuple[float, ...] = ()
    issued: tuple[datetime | None, ...] = ()
    export_value: tuple[float | None, ...] | None = None
    kind: SeriesKind = "energy"
    source: str = ""  # the file it was read from, or "posted"

    @functools.cached_property
    def utc_s(self) -> tuple[np.ndarray, np.ndarray]:
        """Interval starts and issue times as UTC seconds (NaN: cleared), computed once."""
        start_s = np.array([_utc_s(t) for t in self.start], dtype=float)
        issued_s = np.array([math.nan if t is None else _utc_s(t) for t in self.issued])
        return start_s, issued_s.astype(float)

    @functools.cached_property
    def value_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Values and export values as float arrays (NaN where a row gives none)."""
        value = np.array(self.value, dtype=float)
        if self.export_value is None:
            return value, None
        return value, np.array([math.nan if v is None else v for v in self.export_value])


@dataclass(frozen=True)
class EnergySeries:
    """A tariff's energy price from a spot-market series, on top of the tariff's fixed parts.

    The import price of an interval the series covers is the series price plus
    ``network_cny_per_kwh`` (transmission and distribution, 输配电价) plus
    ``fund_cny_per_kwh`` (government funds and surcharges, 政府性基金及附加); the demand
    charge stays the tariff's. An interval the series does not cover takes the tariff's
    time-of-use price (which includes both already), or, with ``required``, the horizon is
    refused. Export: the series' ``export_price_cny_per_kwh`` column where given, else the
    tariff's export price.
    """

    file: str = ""  # CSV, relative to the file that names it ("": only posted to the service)
    name: str = ""  # the series' name (default: the file's stem; posted rows name it)
    step_minutes: int = 15  # the file's interval length: 5, 15, 30 or 60
    required: bool = False  # refuse a horizon the series does not cover (no TOU fallback)
    network_cny_per_kwh: float = 0.0  # transmission and distribution, added to a series price
    fund_cny_per_kwh: float = 0.0  # government funds and surcharges, added to a series price
    allow_negative: bool = False  # a market whose price may go below zero
    points: IntervalSeries | None = None  # read from ``file`` by the loader


@dataclass(frozen=True)
class EmissionFactorSeries:
    """A dated grid emission-factor series beside the annual factor (``kind``: ``average``
    for location-based reporting, ``marginal`` for what a shifted kWh changes). Intervals the
    series does not cover take the annual (or hourly) factor, or, with ``required``, the
    horizon is refused."""

    file: str = ""  # CSV with ef_kg_per_kwh, relative to the park file
    name: str = ""  # the series' name (default: the file's stem)
    kind: Literal["average", "marginal"] = "average"  # what the factor means (reported)
    step_minutes: int = 60  # the file's interval length: 5, 15, 30 or 60
    required: bool = False  # refuse a horizon the series does not cover (no annual fallback)
    points: IntervalSeries | None = None  # read from ``file`` by the loader


@dataclass(frozen=True)
class PostedSeries:
    """Rows posted to the service for a horizon (prices, emission factors), read from the
    store each cycle and taken after the park file's (:func:`merge`)."""

    prices: IntervalSeries | None = None
    ef: IntervalSeries | None = None


@dataclass(frozen=True)
class Cover:
    """How a series covered a horizon: counts of intervals by where their value came from."""

    name: str
    kind: str
    n: int
    cleared: int = 0
    forecast: int = 0
    fallback: int = 0
    source: tuple[str, ...] = field(default=(), repr=False)  # per interval: CLEARED ...

    @property
    def from_series(self) -> int:
        return self.cleared + self.forecast

    def text(self, what: str, fallback_name: str) -> str:
        """``prices: series 'gd_da' (energy) covers 96 of 96 intervals (cleared 96, ...)``."""
        if not self.name:
            return f"{what}: no series; all {self.n} intervals at the {fallback_name}"
        return (
            f"{what}: series {self.name!r} ({self.kind}) covers {self.from_series} of "
            f"{self.n} intervals (cleared {self.cleared}, forecast {self.forecast}); "
            f"{self.fallback} at the {fallback_name}"
        )


def split(s: IntervalSeries, step_minutes: int) -> IntervalSeries:
    """``s`` on a finer step that divides its own: each row becomes the rows of the
    intervals it contains (same value, issue time and export price)."""
    k = s.step_minutes // step_minutes
    if k == 1:
        return s
    if k * step_minutes != s.step_minutes:
        raise ValueError(f"series {s.name!r}: {step_minutes} min does not divide its step")
    sub = [timedelta(minutes=step_minutes * j) for j in range(k)]

    def rep(xs):
        return tuple(x for x in xs for _ in range(k))

    return replace(
        s,
        step_minutes=step_minutes,
        start=tuple(t + d for t in s.start for d in sub),
        value=rep(s.value),
        issued=rep(s.issued),
        export_value=None if s.export_value is None else rep(s.export_value),
    )


def merge(a: IntervalSeries | None, b: IntervalSeries | None) -> IntervalSeries | None:
    """``a``'s rows then ``b``'s (``b`` wins where both give the same interval and issue
    time: a posted row over the file's). The name is ``a``'s when both exist; two steps
    meet on the finer one (:func:`split`; steps are 5, 15, 30 or 60 minutes)."""
    if a is None or not a.start:
        return b if b is not None and b.start else a
    if b is None or not b.start:
        return a
    step = math.gcd(a.step_minutes, b.step_minutes)
    a, b = split(a, step), split(b, step)
    exp = None
    if a.export_value is not None or b.export_value is not None:
        none_a, none_b = (None,) * len(a.start), (None,) * len(b.start)
        exp = (a.export_value or none_a) + (b.export_value or none_b)
    out = IntervalSeries(
        a.name,
        a.step_minutes,
        a.start + b.start,
        a.value + b.value,
        a.issued + b.issued,
        exp,
        a.kind,
        f"{a.source} + {b.source}",
    )
    # The UTC seconds of both parts, joined: a year's file is not converted again each cycle.
    out.__dict__["utc_s"] = tuple(
        np.concatenate([x, y]) for x, y in zip(a.utc_s, b.utc_s, strict=True)
    )
    return out


def _utc_s(t: datetime) -> float:
    return t.astimezone(UTC).timestamp()


def _pick(
    series: IntervalSeries, values: np.ndarray, at_s: np.ndarray, now_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """The value at each instant ``at_s`` by the rule, and its source code (2 cleared,
    1 forecast, 0 none; the value is NaN for none)."""
    step_s = series.step_minutes * 60.0
    start_s, issued_s = series.utc_s
    cleared = np.isnan(issued_s)
    slot = np.floor(at_s / step_s).astype(np.int64)
    out = np.full(at_s.shape, np.nan)
    code = np.zeros(at_s.shape, dtype=int)
    if slot.size == 0:
        return out, code
    lo, hi = int(slot.min()), int(slot.max())
    row_slot = np.floor(start_s / step_s).astype(np.int64)
    # Rows known at now, with a value, inside the horizon (a year's file costs no more).
    usable = (cleared | (issued_s <= now_s)) & np.isfinite(values)
    usable &= (row_slot >= lo) & (row_slot <= hi)
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        return out, code
    # Rank: a cleared row over any forecast, then the latest issue; the later row on a tie.
    rank = np.where(cleared[idx], np.inf, issued_s[idx])
    order = idx[np.lexsort((idx, rank, row_slot[idx]))]
    rel = row_slot[order] - lo
    last = np.r_[rel[1:] != rel[:-1], True]  # the best row of each slot sorts last
    table = np.full(hi - lo + 1, np.nan)
    table_code = np.zeros(hi - lo + 1, dtype=int)
    table[rel[last]] = values[order[last]]
    table_code[rel[last]] = np.where(cleared[order[last]], 2, 1)
    return table[slot - lo], table_code[slot - lo]


def _instants(horizon_start: datetime, step: timedelta, n: int, sub_minutes: int) -> np.ndarray:
    """UTC seconds of the sample instants: ``k`` per interval, ``sub_minutes`` apart."""
    step_min = round(step.total_seconds() / 60)
    k = max(step_min // sub_minutes, 1)
    t0 = _utc_s(horizon_start)
    offs = np.arange(n)[:, None] * step.total_seconds() + np.arange(k)[None, :] * sub_minutes * 60
    return t0 + offs


def resolve(
    series: IntervalSeries | None,
    horizon_start: datetime,
    step: timedelta,
    n: int,
    now: datetime,
    fallback: np.ndarray,
    adder: float = 0.0,
    export: bool = False,
) -> tuple[np.ndarray, Cover]:
    """The value of every interval of a horizon by the module's rule.

    Parameters
    ----------
    series : the rows (None or empty: every interval falls back).
    horizon_start, step, n : the horizon (``Horizon.start``, ``.step``, ``.n``).
    now : the time the horizon is evaluated at; forecasts issued after it are unknown.
    fallback : the value of each interval without the series (shape ``(n,)``; CNY/kWh for a
        price, kg/kWh for a factor).
    adder : added to every value taken from the series (the tariff's network and fund
        surcharges, CNY/kWh).
    export : take the series' export column instead of its value (rows without one do not
        cover).

    Returns
    -------
    values : shape ``(n,)``.
    cover : the counts (:class:`Cover`), with each interval's source.
    """
    fallback = np.broadcast_to(np.asarray(fallback, dtype=float), (n,))
    if series is None or not series.start or n == 0:
        name = "" if series is None else series.name
        kind = "" if series is None else series.kind
        return fallback.copy(), Cover(name, kind, n, 0, 0, n, (FALLBACK,) * n)
    values = series.value_arrays[1 if export else 0]
    if values is None:
        return fallback.copy(), Cover(series.name, series.kind, n, 0, 0, n, (FALLBACK,) * n)
    step_min = round(step.total_seconds() / 60)
    sub = math.gcd(step_min, series.step_minutes)
    at_s = _instants(horizon_start, step, n, sub)
    val, code = _pick(series, values, at_s, _utc_s(now))
    val = np.where(code > 0, val + adder, fallback[:, None])
    out = val.mean(axis=1)
    src = tuple(
        FALLBACK if (c == 0).any() else (CLEARED if (c == 2).all() else FORECAST) for c in code
    )
    cover = Cover(
        series.name,
        series.kind,
        n,
        src.count(CLEARED),
        src.count(FORECAST),
        src.count(FALLBACK),
        src,
    )
    return out, cover


def refuse_uncovered(cover: Cover, times: list[datetime], what: str) -> None:
    """Raise :class:`SeriesMissingError` when any interval fell back (a required series)."""
    if cover.fallback == 0:
        return
    missing = [t for t, s in zip(times, cover.source, strict=True) if s == FALLBACK]
    raise SeriesMissingError(
        f"{what}: series {cover.name or '(none)'!r} is required but does not cover "
        f"{len(missing)} of {cover.n} intervals (first {missing[0].isoformat()}, last "
        f"{missing[-1].isoformat()})"
    )
