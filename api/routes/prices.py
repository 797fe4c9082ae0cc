"""Price and emission-factor series from the market interface: ``POST /prices`` and
``POST /emission-factors`` (operator) store one issue of a series (cleared, or a forecast
with its issue time); ``GET`` shows the stored rows and what the current horizon resolves to.

The next cycle plans on them by the rule of :mod:`vpp.park.series`: for each interval a
cleared value, else the latest forecast issued at or before the cycle's time, else the
tariff's TOU price (the annual factor); posted rows come after the park file's series and
win a tie. A refused post (422, naming the field) stores nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from api.auth import Perm, Principal, require
from api.schemas import FactorSeriesIn, PriceSeriesIn, SeriesStored
from vpp.park.carbon_factors import series_ef_kg_per_kwh
from vpp.park.price_series import EXPORT, START, VALUE_COLUMN, Row, row_problems
from vpp.park.series import SeriesMissingError
from vpp.park.tariff import series_prices_cny_per_kwh
from vpp.plan.prepare import horizon_for
from vpp.store import series as store

router = APIRouter(tags=["prices"])
Reader = Annotated[Principal, Depends(require(Perm.READ))]
Operator = Annotated[Principal, Depends(require(Perm.OPERATE))]
MAX_ROWS_SHOWN = 5000


def _refuse(problems: list[tuple[list[Any], str]]) -> None:
    if problems:
        raise RequestValidationError(
            [{"loc": ["body", *loc], "msg": msg, "type": "series"} for loc, msg in problems]
        )


def _check(rows: list[Row], step: int, kind: str, negative: bool) -> None:
    """422 for rows the park file's checks refuse (field path, value). A step other than the
    park file's series is fine: the two meet on the finer step (vpp.park.series.merge)."""
    problems: list[tuple[list[Any], str]] = []
    for p in row_problems(rows, step, kind, negative):
        where, _, rest = p.partition(": ")
        if where == "step_minutes":
            problems.append((["step_minutes"], rest))
            continue
        column, _, msg = rest.partition(": ")
        i = int(where.removeprefix("points[").removesuffix("]"))
        name = {START: "interval_start", EXPORT: EXPORT}.get(column, column)
        problems.append((["points", i, name], msg))
    _refuse(problems)


def _stored(name: str, rows: list[Row], issued: datetime | None) -> SeriesStored:
    return SeriesStored(
        series=name,
        stored=len(rows),
        cleared=issued is None,
        issued_at=issued,
        first_interval=min(r.start for r in rows),
        last_interval=max(r.start for r in rows),
    )


@router.post("/prices", status_code=201, summary="store prices of a series (operator)")
def post_prices(request: Request, body: PriceSeriesIn, who: Operator) -> SeriesStored:
    """One issue of a price series; 201 with the count stored. The next cycle plans on it."""
    rt = request.app.state.runtime
    spec = rt.site.tariff.energy_series
    rows = [
        Row(f"points[{i}]", p.interval_start, p.price_cny_per_kwh, body.issued_at,
            p.export_price_cny_per_kwh)
        for i, p in enumerate(body.points)
    ]  # fmt: skip
    negative = bool(spec and spec.allow_negative)
    _check(rows, body.step_minutes, "energy", negative)
    with rt.engine.begin() as conn:
        store.save_points(conn, "price", body.series, "energy", body.step_minutes, rows, who.name)
    request.state.audit_detail = {"series": body.series, "rows": len(rows)}
    return _stored(body.series, rows, body.issued_at)


@router.post("/emission-factors", status_code=201, summary="store grid emission factors (operator)")
def post_factors(request: Request, body: FactorSeriesIn, who: Operator) -> SeriesStored:
    """One issue of an emission-factor series (``average`` or ``marginal``); 201."""
    rt = request.app.state.runtime
    spec = rt.site.carbon.emission_factor.series
    rows = [
        Row(f"points[{i}]", p.interval_start, p.ef_kg_per_kwh, body.issued_at)
        for i, p in enumerate(body.points)
    ]
    problems: list[tuple[list[Any], str]] = []
    if spec is not None and body.kind != spec.kind:
        problems.append((["kind"], f"the park's series is {spec.kind}, got {body.kind}"))
    _refuse(problems)
    _check(rows, body.step_minutes, body.kind, False)
    with rt.engine.begin() as conn:
        store.save_points(conn, "ef", body.series, body.kind, body.step_minutes, rows, who.name)
    request.state.audit_detail = {"series": body.series, "rows": len(rows)}
    return _stored(body.series, rows, body.issued_at)


def _window(rt, start: datetime | None, end: datetime | None) -> tuple[Any, datetime, datetime]:
    h = horizon_for(rt.site, rt.clock.now())
    return h, start or h.start, end or h.start + h.n * h.step


def _rows_json(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    return [
        {
            "series": r["name"],
            "kind": r["kind"],
            "step_minutes": r["step_minutes"],
            "interval_start": r["interval_start"],
            "issued_at": r["issued_at"],
            column: r["value"],
            **({EXPORT: r["export_value"]} if column == VALUE_COLUMN["energy"] else {}),
            "received_at": r["received_at"],
            "posted_by": r["posted_by"],
        }
        for r in rows[-MAX_ROWS_SHOWN:]
    ]


def _cover_json(cover, values, h) -> dict[str, Any]:
    return {
        "series": cover.name or None,
        "intervals": cover.n,
        "cleared": cover.cleared,
        "forecast": cover.forecast,
        "fallback": cover.fallback,
        "times": list(h.times()),
        "source": list(cover.source),
        "values": [round(float(v), 6) for v in values],
    }


@router.get("/prices", summary="stored prices and the current horizon's prices")
def get_prices(
    request: Request,
    _: Reader,
    start: Annotated[AwareDatetime | None, Query()] = None,
    end: Annotated[AwareDatetime | None, Query()] = None,
) -> dict[str, Any]:
    """``posted``: the stored rows with interval start in ``[start, end)`` (default: the
    current horizon; the last 5,000); ``horizon``: the import price of each interval of the
    current horizon by the rule (``source`` cleared, forecast or fallback to the TOU price)."""
    rt = request.app.state.runtime
    h, lo, hi = _window(rt, start, end)
    now = rt.clock.now()
    with rt.engine.connect() as conn:
        rows = store.points_between(conn, "price", lo, hi)
        posted = store.posted_for(conn, h.start, h.start + h.n * h.step)
    out: dict[str, Any] = {"posted": _rows_json(rows, VALUE_COLUMN["energy"]), "horizon": None}
    try:
        imp, _exp, cover = series_prices_cny_per_kwh(
            rt.site.tariff, h, now, rt.site.calendar, posted.prices
        )
        out["horizon"] = _cover_json(cover, imp, h)
    except (SeriesMissingError, ValueError) as exc:
        out["error"] = str(exc)
    return out


@router.get("/emission-factors", summary="stored factors and the current horizon's factors")
def get_factors(
    request: Request,
    _: Reader,
    start: Annotated[AwareDatetime | None, Query()] = None,
    end: Annotated[AwareDatetime | None, Query()] = None,
) -> dict[str, Any]:
    """As ``GET /prices``, for the grid emission factor (kg/kWh; fallback: the annual one)."""
    rt = request.app.state.runtime
    h, lo, hi = _window(rt, start, end)
    with rt.engine.connect() as conn:
        rows = store.points_between(conn, "ef", lo, hi)
        posted = store.posted_for(conn, h.start, h.start + h.n * h.step)
    out: dict[str, Any] = {"posted": _rows_json(rows, "ef_kg_per_kwh"), "horizon": None}
    try:
        ef, cover = series_ef_kg_per_kwh(rt.site.carbon, h, rt.clock.now(), posted.ef)
        out["horizon"] = _cover_json(cover, ef, h)
    except (SeriesMissingError, ValueError) as exc:
        out["error"] = str(exc)
    return out
