"""Demand-response events to and from the JSON stored in ``dr_events.body``; JSON encoded
ahead of the write (:class:`EncodedJson`)."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from vpp.park.model import (
    DemandResponseEvent,
    DrCallClass,
    DrContractType,
    DrDirection,
    DrStatus,
    DrWindow,
)

_TIMES = ("announce_time", "confirm_deadline")


def dr_to_json(e: DemandResponseEvent) -> dict[str, Any]:
    """JSON-ready fields of an event (times ISO 8601, ``min_duration`` in minutes)."""
    out: dict[str, Any] = {}
    for f in fields(e):
        v = getattr(e, f.name)
        if f.name == "windows":
            v = [{"start": w.start.isoformat(), "end": w.end.isoformat()} for w in v]
        elif f.name in _TIMES:
            v = v.isoformat() if v else None
        elif f.name == "min_duration":
            f_name, v = "min_duration_minutes", v.total_seconds() / 60
            out[f_name] = v
            continue
        elif f.name == "effective_band_frac":
            v = list(v)
        elif hasattr(v, "value"):
            v = v.value
        out[f.name] = v
    return out


def dr_from_json(d: dict[str, Any]) -> DemandResponseEvent:
    def t(v):
        return None if v is None else datetime.fromisoformat(v)

    return DemandResponseEvent(
        event_id=d["event_id"],
        direction=DrDirection(d["direction"]),
        windows=tuple(DrWindow(t(w["start"]), t(w["end"])) for w in d["windows"]),
        requested_kw=float(d["requested_kw"]),
        issuer=d.get("issuer", ""),
        call_class=DrCallClass(d.get("call_class", "day_ahead")),
        contract_type=DrContractType(d.get("contract_type", "invitation")),
        announce_time=t(d.get("announce_time")),
        confirm_deadline=t(d.get("confirm_deadline")),
        cleared_kw=d.get("cleared_kw"),
        import_cap_kw=d.get("import_cap_kw"),
        price_cap_cny_per_mwh=d.get("price_cap_cny_per_mwh"),
        price_floor_cny_per_mwh=d.get("price_floor_cny_per_mwh"),
        subsidy_cny_per_kwh=d.get("subsidy_cny_per_kwh"),
        subsidy_cny_per_kw=d.get("subsidy_cny_per_kw"),
        nonperformance_cny_per_kwh=d.get("nonperformance_cny_per_kwh"),
        baseline_method=d.get("baseline_method", "gbt37016_5of10"),
        effective_band_frac=tuple(d.get("effective_band_frac", (0.8, 1.2))),
        min_duration=timedelta(minutes=float(d.get("min_duration_minutes", 60))),
        status=DrStatus(d.get("status", "announced")),
        binding=bool(d.get("binding", False)),
    )


class EncodedJson(str):
    """JSON text encoded before the write (in the planner process): a ``JsonDoc`` column
    stores it as it is instead of encoding it again in the service's process."""


def encode_json(doc: Any) -> EncodedJson:
    return EncodedJson(json.dumps(doc, separators=(",", ":")))
