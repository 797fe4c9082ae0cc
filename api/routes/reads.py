"""Read-only resources (role viewer or above): site, assets, setpoints, plan, forecasts,
flexibility envelope, cycle history."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import Perm, Principal, require
from controllers import relaxations
from controllers.session_power import sessions_of
from vpp.accounting import flexibility
from vpp.plan.prepare import ASSUMED, FACTORS, PRICES
from vpp.store import repo

router = APIRouter(tags=["site"])
Reader = Annotated[Principal, Depends(require(Perm.READ))]


def _current(request: Request):
    cur = request.app.state.runtime.current
    if cur is None:
        raise HTTPException(503, "no plan yet: the first cycle has not run; see GET /health")
    return cur


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _arr(a) -> list[float] | None:
    return None if a is None else [round(float(x), 3) for x in np.asarray(a)]


@router.get("/site", summary="the park: location, connection, tariff, dispatch settings")
def site(request: Request, _: Reader) -> dict[str, Any]:
    s = request.app.state.runtime.site
    return {
        "name": s.name,
        "location": asdict(s.location),
        "connection": asdict(s.connection),
        "tariff": s.tariff.name,
        "dispatch": asdict(s.dispatch),
        "buses": [b.name for b in s.buses],
        "asset_count": len(s.assets.names()),
    }


def _asset_rows(site) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for kind, group in site.assets.by_kind():
        for x in group:
            d = asdict(x)
            for k, v in d.items():
                if not isinstance(v, str | int | float | bool | type(None)):
                    d[k] = (
                        str(v) if not isinstance(v, dict) else {kk: str(vv) for kk, vv in v.items()}
                    )
            rows.append({"name": x.name, "kind": kind, "bus": x.bus, "spec": d})
    return rows


@router.get("/assets", summary="every asset with its kind, bus and ratings")
def assets(request: Request, _: Reader) -> list[dict[str, Any]]:
    return _asset_rows(request.app.state.runtime.site)


class SetpointOut(BaseModel):
    asset: str
    kind: str
    p_kw: float
    held: str | None = None  # why the asset is held at its safe setpoint (stale telemetry)


class TrackedBatteryOut(BaseModel):
    name: str
    planned_kw: float | None
    lo_kw: float | None = Field(description="the least it may be sent (kW, load convention)")
    hi_kw: float | None = Field(description="the most it may be sent (kW, load convention)")


class TrackingOut(BaseModel):
    """The local loop's target over the interval (controllers.tracking): the batteries move
    on the park meter's readings to keep its net import within ``floor_kw``..``cap_kw`` and,
    with an ``aim_kw`` (a followed DR interval), at it. A gateway that runs its own loop
    uses this; null bounds are none."""

    start: datetime
    end: datetime
    planned_import_kw: float | None
    cap_kw: float | None
    floor_kw: float | None
    aim_kw: float | None
    batteries: list[TrackedBatteryOut]
    why: list[str]


class SetpointsOut(BaseModel):
    cycle_id: int
    plan_version: int
    at: datetime
    fallback: str | None
    setpoints: list[SetpointOut]
    tracking: TrackingOut | None = Field(
        None,
        description="what the batteries hold at the park meter between cycles; null when "
        "the park does not track (dispatch.grid_point_tracking) or no battery may move",
    )


def _setpoints_doc(cur, asset: str | None) -> dict[str, Any]:
    kinds = {n: s.kind for n, s in cur.plan.assets.items()}
    held = {n: s.held for n, s in cur.plan.assets.items() if s.held}
    sp = cur.setpoints_kw if asset is None else {asset: cur.setpoints_kw[asset]}
    return {
        "cycle_id": cur.cycle_id,
        "plan_version": cur.version,
        "at": cur.at.isoformat(),
        "fallback": cur.fallback,
        "setpoints": [
            {"asset": a, "kind": kinds.get(a, "unknown"), "p_kw": round(p, 3), "held": held.get(a)}
            for a, p in sp.items()
        ],
        "tracking": cur.tracking.as_dict() if cur.tracking is not None else None,
    }


@router.get(
    "/setpoints",
    summary="the setpoint of every device for the current interval",
    response_model=SetpointsOut,
    response_class=Response,
    responses={200: {"model": SetpointsOut, "content": {"application/json": {}}}},
)
async def setpoints(
    request: Request,
    _: Reader,
    asset: Annotated[str | None, Query(max_length=100, description="one asset only")] = None,
) -> Response:
    """Served from memory (the hot path of device gateways): the body of the whole set is
    encoded once per plan."""
    cur = _current(request)
    if asset is not None:
        if asset not in cur.setpoints_kw:
            raise HTTPException(404, f"asset {asset!r} has no setpoint; see GET /api/v1/assets")
        return Response(json.dumps(_setpoints_doc(cur, asset)), media_type="application/json")
    hit = getattr(request.app.state, "setpoints_body", None)
    if hit is None or hit[0] is not cur:
        hit = (cur, json.dumps(_setpoints_doc(cur, None)).encode())
        request.app.state.setpoints_body = hit
    return Response(hit[1], media_type="application/json")


@router.get("/plan", summary="the current plan over the horizon")
def plan(
    request: Request,
    _: Reader,
    asset: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    cur = _current(request)
    r = cur.plan
    lines = relaxations.alarm_lines(r.relaxed)
    chosen = r.assets
    if asset is not None:
        if asset not in chosen:
            raise HTTPException(404, f"asset {asset!r} is not in the plan")
        chosen = {asset: chosen[asset]}
    return {
        "cycle_id": cur.cycle_id,
        "plan_version": cur.version,
        "controller": r.controller,
        "status": r.status,
        "fallback": cur.fallback,
        "horizon": {
            "start": r.horizon.start.isoformat(),
            "step_minutes": r.horizon.step.total_seconds() / 60,
            "n": r.horizon.n,
        },
        "times": [t.isoformat() for t in r.horizon.times()],
        "p_net_kw": _arr(r.p_net_kw),
        "objective_cny": r.objective_cny if np.isfinite(r.objective_cny) else None,
        "objective_cost_cny": _finite(r.objective_cost_cny),
        "objective_penalty": _finite(r.objective_penalty),
        # The grid-friendly preference (controllers.grid_friendly): a weight, not money.
        "objective_preference": _finite(r.objective_preference),
        "terms_cny": r.terms_cny,
        "relaxed": [x.text for x in lines],
        "relaxation_lines": [x.to_json_dict() for x in lines],
        "assumptions": [m for m in r.messages if m.startswith(ASSUMED)],
        # where the prices and emission factors came from (series cover, TOU fallbacks)
        "prices": [m for m in r.messages if m.startswith((PRICES, FACTORS))],
        "assets": {
            n: {
                "kind": s.kind,
                "bus": s.bus,
                "p_kw": _arr(s.p_kw),
                "e_kwh": _arr(s.e_kwh),
                "held": s.held or None,  # held at its safe setpoint: p_kw is what it is sent
                # an EV charger: the power of each session it serves (kW per step)
                **(
                    {"sessions": {k: _arr(v) for k, v in sessions_of(s.detail).items()}}
                    if s.kind == "ev_charger"
                    else {}
                ),
            }
            for n, s in chosen.items()
        },
        "held": {n: s.held for n, s in r.assets.items() if s.held},
    }


@router.get("/forecasts", summary="forecasts of the current plan, with quantiles")
def forecasts(
    request: Request,
    _: Reader,
    asset: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    cur = _current(request)
    with request.app.state.runtime.engine.connect() as conn:
        rows = repo.forecasts_of(conn, cur.cycle_id)
    if asset is not None:
        rows = [r for r in rows if r["asset"] == asset]
        if not rows:
            raise HTTPException(404, f"no forecast for asset {asset!r} in cycle {cur.cycle_id}")
    return {
        "cycle_id": cur.cycle_id,
        "horizon_start": rows[0]["horizon_start"].isoformat() if rows else None,
        "step_minutes": rows[0]["step_minutes"] if rows else None,
        "source": rows[0]["source"] if rows else None,
        "assets": {
            r["asset"]: {"p10_kw": r["p10_kw"], "p50_kw": r["p50_kw"], "p90_kw": r["p90_kw"]}
            for r in rows
        },
    }


@router.get("/flexibility", summary="min and max park import per interval of the horizon")
def flexibility_envelope(request: Request, _: Reader) -> dict[str, Any]:
    """For each interval, the lowest and highest park import the VPP can hold *in that
    interval* given the planned state of its storage and the plugged-in EVs (intervals are
    independent: holding an extreme in one changes what the next can do). Assets held at
    their safe setpoint (``held``, as in ``/plan`` and ``/setpoints``) offer nothing."""
    cur = _current(request)
    if cur.problem is None:
        raise HTTPException(503, "the envelope needs a cycle run since the last restart")
    env = flexibility.envelope(cur.problem, cur.plan)
    return {
        "cycle_id": cur.cycle_id,
        "held": {n: s.held for n, s in cur.plan.assets.items() if s.held},
        "times": [t.isoformat() for t in cur.plan.horizon.times()],
        "p_import_min_kw": _arr(env.p_import_min_kw),
        "p_import_max_kw": _arr(env.p_import_max_kw),
        "p_planned_kw": _arr(cur.plan.p_net_kw),
    }


def _cycle_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in ("at", "started_at", "finished_at"):
        out[k] = row[k].isoformat()
    return out


@router.get("/cycles", summary="cycle history: timings, solver status, fallbacks, diagnostics")
def cycles(
    request: Request,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[dict[str, Any]]:
    with request.app.state.runtime.engine.connect() as conn:
        return [_cycle_json(r) for r in repo.cycles(conn, limit, offset)]


@router.get("/cycles/{cycle_id}", summary="one cycle with the setpoints it sent")
def cycle(request: Request, _: Reader, cycle_id: int) -> dict[str, Any]:
    with request.app.state.runtime.engine.connect() as conn:
        row = repo.cycle(conn, cycle_id) if 0 < cycle_id < 2**31 else None  # an INTEGER id
        if row is None:
            raise HTTPException(404, f"no cycle {cycle_id}")
        sent = repo.setpoints_of(conn, cycle_id)
    out = _cycle_json(row)
    out["setpoints"] = [
        {"asset": s["asset"], "p_kw": s["p_kw"], "clamp_reason": s["clamp_reason"]} for s in sent
    ]
    return out


@router.get("/devices", summary="field devices: state, last command, faults, OCPP compliance")
def devices(request: Request, _: Reader) -> dict[str, Any]:
    """Every field device of ``vpp run --driver field`` (:mod:`vpp.drivers.field`): its
    protocol and address, ``state`` (ok or fault, and why: no answer, offline, a command
    refused), what its last accepted command allows (``sent_kw``, load convention) and for
    which cycle; ``noncompliant``: chargers whose station exceeds its charging profile
    (planned at their metered draw); the OCPP server and the MQTT link; ``tracking``: what
    the local loop on the park meter did this interval and the last (corrections written,
    the last per battery, the last meter reading, failures). Without field devices:
    ``{"devices": {}}``."""
    report = getattr(request.app.state.runtime.driver, "health", None)
    return report() if callable(report) else {"devices": {}}


@router.get(
    "/tenants",
    summary="each tenant sub-meter this month: energy, bill, peak, CO2, coal, intensity, saving",
)
def tenants_month(request: Request, _: Reader) -> dict[str, Any]:
    """Month to date (the first of the month, park time, to the interval running now), per
    sub-meter of the park (``metering`` in the park file: each tenant's meter, then the
    park's ``common`` meter over the buses in none), from the stored readings of every asset
    summed per bus (:mod:`vpp.store.metered_buses`): import and export, the bill at the
    meter's own tariff (energy and the demand charge on its own peak so far, the whole
    month's rate, as ``GET /month-to-date``), CO2, standard coal by both methods, intensity
    against the tenant's value added, and the saving against the same buses without the VPP,
    allocated by each meter's own reduction (:mod:`vpp.accounting.tenants`). ``park_bill_cny``
    is what the utility bills under the park's contract (``netted``: the connection;
    ``per_meter``: the sum of the meters'). Intervals without a park-meter reading count
    nothing. Every figure is measured."""
    from datetime import time as dtime
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from vpp.accounting import tenants
    from vpp.park.model import Horizon
    from vpp.store.metered_buses import read_buses

    rt = request.app.state.runtime
    site = rt.site
    zone = ZoneInfo(site.location.tz)
    step = timedelta(minutes=site.dispatch.step_minutes)
    now = rt.clock.now().astimezone(zone)
    start = datetime.combine(now.date().replace(day=1), dtime(0), tzinfo=zone)
    n = int((now - start) // step)
    h = Horizon(start, step, max(n, 1))
    with rt.engine.connect() as conn:
        buses = read_buses(conn, site, h)
    ok = buses.metered & (np.arange(h.n) < n)

    def cut(d: dict) -> dict:
        return {b: np.where(ok, v, 0.0) for b, v in d.items()}

    doc = tenants.tenant_report(
        site, h, cut(buses.bus_p_kw), cut(buses.pv_kw), cut(buses.no_vpp_bus_p_kw), prorate=False
    ).to_dict()
    return {
        "month": f"{start.year:04d}-{start.month:02d}",
        "from": start.isoformat(),
        "to": (start + n * step).isoformat(),
        "intervals": n,
        "intervals_metered": int(ok.sum()),
        "unmetered_assets": list(buses.unmetered_assets),
        **doc,
    }
