"""One time convention in every API answer: ISO 8601 with the offset, in the park's zone
(+08:00 for the demo park), whatever the store returned (UTC) or the client sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from api.app import create_app
from api.times import localise
from tests.service_kit import T0, dr_body, headers, make_keys, make_runtime

OFFSET = re.compile(r"[+-]\d{2}:\d{2}$")


def _times(doc, out=None):
    out = [] if out is None else out
    if isinstance(doc, dict):
        for v in doc.values():
            _times(v, out)
    elif isinstance(doc, list):
        for v in doc:
            _times(v, out)
    elif isinstance(doc, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", doc):
        out.append(doc)
    return out


def test_every_time_in_the_answers_is_in_the_parks_zone(db_url):
    rt = make_runtime(db_url)
    keys = make_keys(rt.engine)
    utc_start = (T0 + timedelta(hours=2)).astimezone(UTC)
    body = dr_body("SG-TZ", start=utc_start)
    body["windows"] = [
        {k: datetime.fromisoformat(v).astimezone(UTC).isoformat().replace("+00:00", "Z")
         for k, v in w.items()}
        for w in body["windows"]
    ]  # fmt: skip
    with TestClient(create_app(rt.settings, rt)) as client:
        rt.run_cycle()
        h = headers(keys["utility"])
        made = client.post("/api/v1/dr-events", json=body, headers=h)
        assert made.status_code == 201, made.text
        docs = [
            made.json(),
            client.get("/api/v1/cycles", headers=h).json(),
            client.get("/api/v1/setpoints", headers=h).json(),
            client.get("/api/v1/plan", headers=h).json(),
            client.get("/health").json(),
        ]
    rt.engine.dispose()
    found = [t for d in docs for t in _times(d)]
    assert len(found) > 20
    assert all(t.endswith("+08:00") for t in found), [t for t in found if "+08:00" not in t]
    w = docs[0]["fields"]["windows"][0]
    # The instant the client sent, written in the park's zone.
    start = datetime.fromisoformat(w["start"])
    assert start == utc_start + timedelta(minutes=30) and w["start"].endswith("+08:00")


def test_localise_keeps_instants_and_leaves_other_strings() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    doc = {"a": "2026-07-15T00:00:00Z", "b": ["SG-2026-07-15", 1.5], "c": [1.0, 2.0]}
    out = localise(doc, zone)
    assert out["a"] == "2026-07-15T08:00:00+08:00"
    assert out["b"] == ["SG-2026-07-15", 1.5] and out["c"] == [1.0, 2.0]
    assert OFFSET.search(out["a"])
