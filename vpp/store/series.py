"""Posted price and emission-factor series in the store (table ``market_series``).

Rows are only added; reading a window gives them in the order they were posted, so the later
of two rows for the same interval and issue time wins (:func:`vpp.park.series.merge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select

from vpp.park.price_series import Row, series_of
from vpp.park.series import IntervalSeries, PostedSeries
from vpp.store import tables as t

QUANTITIES = ("price", "ef")
LOOK_BACK = timedelta(hours=1)  # an hourly row that began before a horizon still covers it


def save_points(
    conn: Connection,
    quantity: str,
    name: str,
    kind: str,
    step_minutes: int,
    rows: Sequence[Row],
    posted_by: str,
) -> int:
    """Store checked rows (:func:`vpp.park.price_series.row_problems` passed); the count."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity: expected one of {QUANTITIES}, got {quantity!r}")
    if not rows:
        return 0
    conn.execute(
        insert(t.market_series),
        [
            {
                "quantity": quantity,
                "name": name,
                "kind": kind,
                "step_minutes": step_minutes,
                "interval_start": r.start,
                "issued_at": r.issued,
                "value": r.value,
                "export_value": r.export_value,
                "posted_by": posted_by,
            }
            for r in rows
        ],
    )
    return len(rows)


def points_between(
    conn: Connection, quantity: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Stored rows of ``quantity`` whose interval starts in ``[start, end)``, oldest post
    first."""
    c = t.market_series.c
    q = (
        select(t.market_series)
        .where(c.quantity == quantity, c.interval_start >= start, c.interval_start < end)
        .order_by(c.id)
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def series_between(
    conn: Connection, quantity: str, start: datetime, end: datetime
) -> IntervalSeries | None:
    """The posted series over ``[start, end)``: the rows of the series (name and step)
    posted last, in posting order; None when nothing was posted there."""
    rows = points_between(conn, quantity, start - LOOK_BACK, end)
    if not rows:
        return None
    last = rows[-1]
    mine = [
        r for r in rows if (r["name"], r["step_minutes"]) == (last["name"], last["step_minutes"])
    ]
    return series_of(
        (
            Row(f"id {r['id']}", r["interval_start"], r["value"], r["issued_at"], r["export_value"])
            for r in mine
        ),
        last["name"],
        last["step_minutes"],
        last["kind"],
        "posted",
    )


def posted_for(conn: Connection, start: datetime, end: datetime) -> PostedSeries:
    """Both posted series over a horizon ``[start, end)``."""
    return PostedSeries(
        prices=series_between(conn, "price", start, end),
        ef=series_between(conn, "ef", start, end),
    )
