"""Operations: telemetry ingest and cycle requests (operator), API keys, audit log and
runtime settings (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from api.auth import Perm, Principal, Role, create_key, require
from api.schemas import (
    IngestResult,
    KeyCreated,
    KeyIn,
    RefusedReading,
    RuntimeSettingsPatch,
    TelemetryBatch,
)
from vpp.park.model import PARK_METER
from vpp.store import repo

router = APIRouter(tags=["operations"])
Operator = Annotated[Principal, Depends(require(Perm.OPERATE))]
Admin = Annotated[Principal, Depends(require(Perm.ADMIN))]


@router.post(
    "/telemetry",
    summary="ingest a batch of readings (operator, device gateway)",
    response_model_exclude_none=True,
)
def ingest(request: Request, batch: TelemetryBatch, _: Operator) -> IngestResult:
    """Readings no asset could report (stamped more than ``telemetry_future_skew_s`` ahead of
    the service's clock, a power beyond the asset's range, an energy above its capacity) are
    refused and listed in ``refused``; the others are stored. A batch refused whole gets a
    422 listing every refused reading; an unknown asset refuses the whole batch (422)."""
    rt = request.app.state.runtime
    known = set(rt.site.assets.names()) | {PARK_METER}
    bad = [
        {
            "loc": ["body", "readings", i, "asset"],
            "msg": f"unknown asset {r.asset!r}; see GET /api/v1/assets (or 'park' for the meter)",
            "type": "value_error",
            "input": r.asset,
        }
        for i, r in enumerate(batch.readings)
        if r.asset not in known
    ]
    if bad:
        raise RequestValidationError(bad[:20])
    rows = [r.model_dump() for r in batch.readings]
    report = rt.ingest_checked(rows, source="api")
    request.state.audit_detail = {"readings": report.stored, "refused": len(report.refused)}
    refused = [
        RefusedReading(index=x.index, asset=x.asset, field=x.field, reason=x.reason)
        for x in report.refused
    ]
    if refused and report.stored == 0:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", "readings", x.index, x.field],
                    "msg": x.reason,
                    "type": "implausible",
                    "input": rows[x.index][x.field],
                }
                for x in refused
            ]
        )
    return IngestResult(stored=report.stored, refused=refused or None)


@router.post("/cycles", status_code=202, summary="ask for a cycle now (operator)")
def run_cycle(request: Request, _: Operator) -> dict[str, Any]:
    request.app.state.runtime.request_resolve("operator")
    return {"requested": True}


@router.post("/keys", status_code=201, summary="create an API key (admin)")
def new_key(request: Request, body: KeyIn, _: Admin) -> KeyCreated:
    try:
        key = create_key(request.app.state.runtime.engine, body.name, Role(body.role))
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    request.state.audit_detail = {"key": body.name, "role": body.role}
    return KeyCreated(name=body.name, role=body.role, key=key)


@router.get("/keys", summary="list API keys, without secrets (admin)")
def keys(request: Request, _: Admin) -> list[dict[str, Any]]:
    with request.app.state.runtime.engine.connect() as conn:
        rows = repo.list_keys(conn)
    return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]


@router.delete("/keys/{name}", summary="revoke an API key (admin)")
def revoke(request: Request, name: str, _: Admin) -> dict[str, Any]:
    with request.app.state.runtime.engine.begin() as conn:
        if not repo.revoke_key(conn, name):
            raise HTTPException(404, f"no API key named {name!r}")
    request.app.state.keys.clear()
    request.state.audit_detail = {"key": name}
    return {"revoked": name}


@router.get("/audit", summary="the audit log of API writes, newest first (admin)")
def audit(
    request: Request, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    with request.app.state.runtime.engine.connect() as conn:
        rows = repo.audit_entries(conn, limit)
    return [{**r, "at": r["at"].isoformat()} for r in rows]


@router.get("/runtime-settings", summary="thresholds of the running service (admin)")
def runtime_settings(request: Request, _: Admin) -> dict[str, Any]:
    s = request.app.state.runtime.settings
    return {
        "replan_threshold_kw": s.replan_threshold_kw,
        "stale_after_s": s.stale_after_s,
        "replan_min_gap_s": s.replan_min_gap_s,
        "speed": s.speed,
    }


@router.patch("/runtime-settings", summary="change thresholds of the running service (admin)")
def patch_runtime_settings(
    request: Request, body: RuntimeSettingsPatch, _: Admin
) -> dict[str, Any]:
    s = request.app.state.runtime.settings
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    for k, v in changes.items():
        setattr(s, k, v)
    request.state.audit_detail = changes
    return runtime_settings(request, _)
