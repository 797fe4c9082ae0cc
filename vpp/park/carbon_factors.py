"""Grid emission factor on a horizon: the annual value, or the hourly series when given, or a
dated series (:class:`vpp.park.series.EmissionFactorSeries`) where it covers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np

from vpp.park.model import Carbon, Horizon
from vpp.park.series import FALLBACK, Cover, IntervalSeries, merge, refuse_uncovered, resolve


def emission_factor_kg_per_kwh(carbon: Carbon, horizon: Horizon) -> np.ndarray:
    """The annual factor, or its 24-value hourly profile (local hour), on every interval."""
    ef = carbon.emission_factor
    if ef.hourly_ef_kg_per_kwh is None:
        return np.full(horizon.n, ef.ef_kg_per_kwh)
    hourly = np.asarray(ef.hourly_ef_kg_per_kwh, dtype=float)
    return np.array([hourly[t.hour] for t in horizon.times()])


def series_ef_kg_per_kwh(
    carbon: Carbon,
    horizon: Horizon,
    now: datetime,
    extra: IntervalSeries | None = None,
    refuse: bool = True,
) -> tuple[np.ndarray, Cover]:
    """The factor of every interval (kg/kWh): the dated series where it covers (a cleared
    value, else the latest forecast issued at or before ``now``), else the annual or hourly
    factor (:func:`emission_factor_kg_per_kwh`); the rule of :mod:`vpp.park.series`.

    ``extra``: rows posted to the service (after the file's; they win a tie). Raises
    :class:`vpp.park.series.SeriesMissingError` when the series is required and does not cover
    (``refuse`` False: the accounting after the fact, which counts the fallback in ``cover``).
    """
    base = emission_factor_kg_per_kwh(carbon, horizon)
    spec = carbon.emission_factor.series
    if spec is None and extra is None:
        return base, Cover("", "", horizon.n, 0, 0, horizon.n, (FALLBACK,) * horizon.n)
    rows = merge(spec.points if spec else None, extra)
    ef, cover = resolve(rows, horizon.start, horizon.step, horizon.n, now, base)
    if spec is not None:  # the park's word on what the factor is (average or marginal)
        cover = replace(cover, name=cover.name or spec.name or "(unnamed)", kind=spec.kind)
    if spec is not None and spec.required and refuse:
        refuse_uncovered(cover, horizon.times(), "carbon.emission_factor.series")
    return ef, cover


def factor_label(carbon: Carbon, cover: Cover) -> str:
    """Which factor a CO2 figure stands on, in words (the carbon report prints it)."""
    ef = carbon.emission_factor
    annual = f"{ef.region} {ef.year} annual {ef.ef_kg_per_kwh:.4f} kg/kWh ({ef.source})"
    if ef.hourly_ef_kg_per_kwh is not None:
        annual = f"{ef.region} {ef.year} hourly profile ({ef.source})"
    if not cover.name:
        return annual
    if cover.from_series == 0:
        return f"{annual}; series {cover.name!r} ({cover.kind}) does not cover the period"
    return (
        f"series {cover.name!r} ({cover.kind}) on {cover.from_series} of {cover.n} intervals "
        f"(cleared {cover.cleared}, forecast {cover.forecast}); {annual} on {cover.fallback}"
    )
