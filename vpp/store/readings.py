"""Interval means of the stored readings (the edge: SQL in, arrays out), shared by the web
page's figures (:mod:`api.ui.figures`, :mod:`api.ui.network_view`) and the tenants' accounts
(:mod:`vpp.store.metered_buses`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection, func, select

from vpp.park.model import Horizon
from vpp.store import metered, tables


def asset_means(
    conn: Connection, names: Sequence[str], h: Horizon, column: str = "p_kw"
) -> np.ndarray:
    """Per asset (rows, in ``names`` order) and interval of ``h`` (columns): the mean of the
    stored readings of ``column`` (kW or kWh); NaN where none."""
    out = np.full((len(names), h.n), np.nan)
    if not names:
        return out
    tel = tables.telemetry
    col = tel.c[column]
    k = metered._bucket(conn, tel.c.ts, h).label("k")
    q = (
        select(tel.c.asset, k, func.avg(col))
        .where(
            tel.c.asset.in_(list(names)),
            tel.c.ts >= h.start,
            tel.c.ts < h.end,
            col.is_not(None),
        )
        .group_by(tel.c.asset, k)
    )
    row = {n: i for i, n in enumerate(names)}
    for asset, kk, v in conn.execute(q):
        i = int(kk)
        if 0 <= i < h.n and v is not None:
            out[row[asset], i] = float(v)
    return out


def hold_last(a: np.ndarray, before: float = np.nan) -> np.ndarray:
    """Each row's gaps (NaN) held at the row's last value before them; ``before`` where the
    row has no value yet."""
    if a.size == 0:
        return a.copy()
    ok = np.isfinite(a)
    idx = np.where(ok, np.arange(a.shape[1]), -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = np.take_along_axis(a, np.maximum(idx, 0), axis=1)
    return np.where(idx < 0, before, out)
