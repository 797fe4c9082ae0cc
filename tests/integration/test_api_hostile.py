"""Malformed and hostile input: schemathesis generates requests from the OpenAPI document
(valid and invalid bodies, odd strings, huge numbers) with an admin key, which may call every
route; no request may get a 5xx."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api.app import create_app
from tests.service_kit import T0, TZ, dr_body, headers, make_keys, make_runtime
from vpp.store import tables

EXAMPLES = 8  # per operation and mode: bounded time
FUZZ_EXAMPLES = 150  # hostile bodies over all write routes: bounded time


@pytest.fixture(scope="module")
def hostile_app(module_db_url):
    rt = make_runtime(module_db_url)
    rt.run_cycle()
    rt.on_resolve = lambda reason: None  # re-solves are tested elsewhere; keep this fast
    keys = make_keys(rt.engine)
    app = create_app(rt.settings, rt)
    app.state.test_admin_headers = headers(keys["admin"])
    return app


@pytest.fixture(scope="module")
def api_schema(hostile_app):
    return schemathesis.openapi.from_asgi("/openapi.json", hostile_app)


def _check_operation(op, mode, auth: dict[str, str]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(op.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(headers=auth)
        case.validate_response(response, checks=[not_a_server_error])

    with contextlib.suppress(Unsatisfiable):  # no input of this mode (e.g. no parameters)
        run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(api_schema, hostile_app, mode):
    # schemathesis' own pytest plugin does not run on pytest 9; hypothesis drives it here.
    auth = hostile_app.state.test_admin_headers
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for op in operations:
        _check_operation(op, mode, auth)


def test_a_nul_character_in_path_or_query_is_a_422_on_every_backend(hostile_app):
    # PostgreSQL refuses text holding NUL: a path or query parameter that reaches a query
    # must be refused before (found on PostgreSQL, where it was a 500).
    from fastapi.testclient import TestClient

    from vpp.store import repo

    auth = hostile_app.state.test_admin_headers
    with TestClient(hostile_app, raise_server_exceptions=False) as client:
        for method, url in (
            ("GET", "/api/v1/dr-events/a%00b"),
            ("DELETE", "/api/v1/keys/a%00b"),
            ("POST", "/api/v1/dr-events/a%00b/cancel"),
            ("GET", "/api/v1/plan?asset=a%00"),
            ("GET", "/api/v1/forecasts?asset=%00"),
        ):
            r = client.request(method, url, headers=auth)
            assert r.status_code == 422, (method, url, r.status_code, r.text)
            assert "NUL" in r.json()["detail"][0]["msg"]
        rt = hostile_app.state.runtime
        with rt.engine.connect() as conn:
            audited = repo.audit_entries(conn, 5)
    refused = [a for a in audited if a["status_code"] == 422 and "\\x00" in a["path"]]
    assert {a["method"] for a in refused} == {"DELETE", "POST"}  # writes are audited still


# ------------------------------------------------------------------------------------------
# Hostile input, case by case (issue "Bad input never reaches a plan"), on every backend
# ------------------------------------------------------------------------------------------
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e309", "-1e400")


def _client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def _stored(rt) -> dict[str, int]:
    """Rows of every table but the audit log (a refused write is audited, nothing else)."""
    from sqlalchemy import func, select

    from vpp.store import tables

    with rt.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar()
            for t in tables.metadata.sorted_tables
            if t.name != "audit_log"
        }


def _reading(ts=T0, **kw) -> dict:
    return {"asset": "B02-bess", "ts": ts.isoformat(), "p_kw": 10.0, **kw}


def test_a_non_finite_number_is_a_422_naming_the_field_on_every_write(hostile_app):
    # Python's json reads NaN and Infinity, and 1e309 as infinity: each was a 500 with a
    # traceback (the 422 echoing it could not be written as JSON).
    auth, rt = hostile_app.state.test_admin_headers, hostile_app.state.runtime
    bodies = {
        ("POST", "/api/v1/telemetry"): ('{"readings": [%s]}', ["readings", 0, "p_kw"]),
        ("POST", "/api/v1/dr-events"): ('{"requested_kw": %s}', ["requested_kw"]),
        ("PATCH", "/api/v1/dr-events/E-NONE"): ('{"requested_kw": %s}', ["requested_kw"]),
        ("POST", "/api/v1/keys"): ('{"name": "k", "role": %s}', ["role"]),
        ("PATCH", "/api/v1/runtime-settings"): ('{"stale_after_s": %s}', ["stale_after_s"]),
        ("POST", "/api/v1/cycles"): ('{"ignored": [%s]}', ["ignored", 0]),
    }
    before = _stored(rt)
    with _client(hostile_app) as client:
        for (method, url), (template, loc) in bodies.items():
            for raw in NON_FINITE:
                value = raw
                if url.endswith("telemetry"):
                    value = json.dumps(_reading()).replace("10.0", raw)
                r = client.request(
                    method,
                    url,
                    content=template % value,
                    headers={**auth, "content-type": "application/json"},
                )
                assert r.status_code == 422, (method, url, raw, r.text)
                err = r.json()["detail"][0]
                assert err["loc"] == ["body", *loc] and err["type"] == "finite_number"
                assert "Traceback" not in r.text
    assert _stored(rt) == before


def test_a_body_over_the_limit_is_a_413(hostile_app):
    auth, rt = hostile_app.state.test_admin_headers, hostile_app.state.runtime
    limit = rt.settings.max_body_bytes
    assert limit == 1_048_576  # the default
    pad = " " * (limit + 1 - len('{"readings": []}'))
    before = _stored(rt)
    with _client(hostile_app) as client:
        r = client.post(
            "/api/v1/telemetry",
            content='{"readings": []}' + pad,
            headers={**auth, "content-type": "application/json"},
        )
        assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]
        chunks = (b" " * 65536 for _ in range(limit // 65536 + 2))  # no Content-Length
        r = client.post("/api/v1/keys", content=chunks, headers=auth)
        assert r.status_code == 413
        ok = client.post("/api/v1/telemetry", json={"readings": [_reading()]}, headers=auth)
        assert ok.status_code == 200
    assert _stored(rt)["telemetry"] == before["telemetry"] + 1


def test_a_422_quotes_a_short_prefix_of_the_offending_value(hostile_app):
    # A 10 MB field came back as a 10.4 MB 422; now the body limit stops it (413), and a
    # field within the limit is quoted to its first 100 characters.
    auth = hostile_app.state.test_admin_headers
    with _client(hostile_app) as client:
        r = client.post(
            "/api/v1/keys", json={"name": "x" * 500_000, "role": "viewer"}, headers=auth
        )
        assert r.status_code == 422 and len(r.content) < 1_000
        err = r.json()["detail"][0]
        assert err["loc"] == ["body", "name"] and err["input"].startswith("x" * 100)
        assert "cut from 500000 characters" in err["input"]
        many = client.post("/api/v1/telemetry", json={"readings": [1] * 100_000}, headers=auth)
        assert many.status_code == 422 and len(many.content) < 20_000
        assert many.json()["detail"][-1]["msg"] == "99950 more errors not shown"
        r = client.post("/api/v1/keys", json={"name": "k", "role": "x" * 20_000}, headers=auth)
        assert r.status_code == 422 and len(r.content) < 1_000


def test_implausible_readings_are_refused_listed_and_never_planned_on(hostile_app):
    # Year 9999 kept its asset from ever going stale; a battery energy 5,000 times its
    # capacity (2000 kWh) was stored.
    auth, rt = hostile_app.state.test_admin_headers, hostile_app.state.runtime
    before = _stored(rt)["telemetry"]
    batch = [
        _reading(e_kwh=900.0),
        _reading(ts=T0.replace(year=9999)),
        _reading(e_kwh=5000 * 2000.0),
        _reading(p_kw=1e6),
        {"asset": "park", "ts": T0.isoformat(), "p_kw": 1200.0},
    ]
    with _client(hostile_app) as client:
        r = client.post("/api/v1/telemetry", json={"readings": batch}, headers=auth)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["stored"] == 2
        assert [(x["index"], x["asset"], x["field"]) for x in got["refused"]] == [
            (1, "B02-bess", "ts"),
            (2, "B02-bess", "e_kwh"),
            (3, "B02-bess", "p_kw"),
        ]
        assert "300 s" in got["refused"][0]["reason"]
        assert "capacity 2000 kWh" in got["refused"][1]["reason"]
        whole = client.post("/api/v1/telemetry", json={"readings": batch[1:3]}, headers=auth)
        assert whole.status_code == 422  # nothing plausible: refused whole
        assert [e["loc"][-2:] for e in whole.json()["detail"]] == [[0, "ts"], [1, "e_kwh"]]
    assert _stored(rt)["telemetry"] == before + 2
    assert rt.readings()["B02-bess"].ts == T0  # the refused reading is not its latest
    later = T0 + timedelta(seconds=rt.settings.stale_after_s + 60)
    assert "B02-bess" in rt.stale_assets(later)


def test_a_reading_stored_from_the_future_does_not_keep_an_asset_fresh(module_db_url):
    # Readings stored before these checks: a restart must not take them as the latest.
    from vpp.store import repo

    rt = make_runtime(module_db_url)
    with rt.engine.begin() as conn:
        repo.ingest_telemetry(
            conn, [{"asset": "B04-ups-bess", "ts": T0.replace(year=9999), "p_kw": 0.0}]
        )
    again = make_runtime(module_db_url)
    assert "B04-ups-bess" not in again.readings()
    with again.engine.begin() as conn:  # leave the shared database as it was
        conn.execute(tables.telemetry.delete().where(tables.telemetry.c.asset == "B04-ups-bess"))


# ------------------------------------------------------------------------------------------
# Fuzz: hypothesis bodies over every write route
# ------------------------------------------------------------------------------------------
_BIG = "__1E309__"  # written into the body as the literal 1e309
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([_BIG, "", "\x00", "x" * 5000, "9999-12-31T23:59:59+00:00", "park"]),
    st.text(max_size=30),
)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["readings", "asset", "ts", "p_kw", "e_kwh", "name", "role", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _valid(route: tuple[str, str]) -> dict:
    """A valid body per write route, to mutate one field of."""
    return {
        "/api/v1/telemetry": {"readings": [_reading(e_kwh=900.0)]},
        "/api/v1/dr-events": dr_body("E-FUZZ"),
        "/api/v1/dr-events/{event_id}": {"requested_kw": 100.0},
        "/api/v1/dr-events/{event_id}/confirm": {"note": "ok"},
        "/api/v1/dr-events/{event_id}/decline": {"note": "no"},
        "/api/v1/keys": {"name": "fuzz-key", "role": "viewer"},
        "/api/v1/runtime-settings": {"replan_threshold_kw": 150.0},
    }.get(route[1], {})


@st.composite
def _body(draw, route):
    """A hostile body: random JSON, or a valid body with one field (or one reading's
    field) replaced by a hostile value."""
    if draw(st.booleans()):
        doc = draw(_json)
    else:
        doc = _valid(route)
        target = doc["readings"][0] if "readings" in doc else doc
        if target:
            key = draw(st.sampled_from([*sorted(target), "extra"]))
            target[key] = draw(_json)
    text = json.dumps(doc, allow_nan=True).replace(f'"{_BIG}"', "1e309")
    return text


def _write_routes(app) -> list[tuple[str, str]]:
    """Every write route of the OpenAPI document (a new one is fuzzed without asking)."""
    return sorted(
        (m.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        for m in ops
        if m.upper() in {"POST", "PUT", "PATCH", "DELETE"}
    )


def test_fuzzed_writes_get_no_5xx_store_nothing_when_refused_and_cycles_still_run(hostile_app):
    auth, rt = hostile_app.state.test_admin_headers, hostile_app.state.runtime
    routes = _write_routes(hostile_app)
    assert len(routes) >= 10
    ids = st.sampled_from(["E-NONE", "SG-ZJ-001", "a b", "%25", "x" * 300, "é"])

    with _client(hostile_app) as client:

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(data=st.data())
        def run(data):
            method, path = route = data.draw(st.sampled_from(routes))
            url = path.replace("{event_id}", data.draw(ids)).replace("{name}", data.draw(ids))
            body = data.draw(_body(route))
            before = _stored(rt)
            r = client.request(
                method, url, content=body, headers={**auth, "content-type": "application/json"}
            )
            assert r.status_code < 500, (method, url, body[:300], r.text[:300])
            assert "Traceback" not in r.text
            if r.status_code >= 400:
                assert _stored(rt) == before, (method, url, body[:300], r.status_code)

        run()
    rt.clock.set(T0 + timedelta(minutes=15))
    try:
        assert rt.run_cycle() is not None and rt.last_error is None
    finally:
        rt.clock.set(T0)


# ------------------------------------------------------------------------------------------
# DR events no utility meant: the park's checks (vpp.park.dr_checks) with the window range
# around the service's clock; each a 422 naming the field and the bound. Runs on SQLite and
# PostgreSQL (module_db_url).
# ------------------------------------------------------------------------------------------
def _window(start: datetime, length: timedelta) -> dict[str, str]:
    return {"start": start.isoformat(), "end": (start + length).isoformat()}


HOUR = timedelta(hours=1)
HOSTILE_DR = [
    (
        "window in 9999",
        {"windows": [_window(datetime(9999, 12, 31, 10, tzinfo=TZ), HOUR)]},
        ["windows", 0, "start"],
        "years 2000-2099",
    ),
    (
        "window in 2001",
        {"windows": [_window(datetime(2001, 7, 15, 14, tzinfo=TZ), HOUR)]},
        ["windows", 0, "end"],
        "at most 1 day before now",
    ),
    (
        "window a month ahead",
        {"windows": [_window(T0 + timedelta(days=30), HOUR)]},
        ["windows", 0, "start"],
        "at most 7 days after now",
    ),
    (
        "1-second window",
        {"windows": [_window(T0 + HOUR, timedelta(seconds=1))]},
        ["windows", 0, "end"],
        "at least 15 min (one dispatch step), got 1 s",
    ),
    (
        "31-day window",
        {"windows": [_window(T0 + HOUR, timedelta(days=31))]},
        ["windows", 0, "end"],
        "at most 24 h, got 744 h",
    ),
    (
        "overlapping windows",
        {"windows": [_window(T0 + HOUR, 2 * HOUR), _window(T0 + 2 * HOUR, 2 * HOUR)]},
        ["windows", 1, "start"],
        "overlaps windows[0]",
    ),
    (
        "requested_kw 100 times the connection",
        {"requested_kw": 999_999.0},
        ["requested_kw"],
        "must be in [0, 12000] kW (import_max_kw + export_max_kw), got 999999",
    ),
    (
        "cleared_kw beyond the connection",
        {"cleared_kw": 50_000.0},
        ["cleared_kw"],
        "must be in [0, 12000] kW",
    ),
    (
        "import cap beyond the connection",
        {"import_cap_kw": 900_000.0},
        ["import_cap_kw"],
        "must be in [-2000, 10000] kW",
    ),
    (
        "script as baseline method",
        {"baseline_method": "<script>alert(1)</script>"},
        ["baseline_method"],
        "gbt37016_5of10",
    ),
    ("NUL in issuer", {"issuer": "State\x00Grid"}, ["issuer"], "U+0000"),
    ("right-to-left override in issuer", {"issuer": "SG \u202eabc"}, ["issuer"], "U+202E"),
    (
        "confirm deadline after the window",
        {"confirm_deadline": (T0 + 3 * HOUR).isoformat()},
        ["confirm_deadline"],
        "must not be after the first window's start",
    ),
]


@pytest.mark.parametrize("name, fields, loc, bound", HOSTILE_DR, ids=[c[0] for c in HOSTILE_DR])
def test_dr_events_no_utility_meant_are_422_naming_field_and_bound(
    hostile_app, name, fields, loc, bound
):
    from fastapi.testclient import TestClient

    auth = hostile_app.state.test_admin_headers
    event_id = "H-" + "".join(c if c.isalnum() else "-" for c in name)
    with TestClient(hostile_app, raise_server_exceptions=False) as client:
        r = client.post("/api/v1/dr-events", json=dr_body(event_id, **fields), headers=auth)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert any(d["loc"] == ["body", *loc] and bound in d["msg"] for d in detail), detail
        assert client.get(f"/api/v1/dr-events/{event_id}", headers=auth).status_code == 404
        # the same bound holds for a patch of a valid event
        ok = f"OK-{event_id}"
        assert client.post("/api/v1/dr-events", json=dr_body(ok), headers=auth).status_code == 201
        patchable = {k: v for k, v in fields.items() if k in PATCHABLE}
        if patchable:
            r = client.patch(f"/api/v1/dr-events/{ok}", json=patchable, headers=auth)
            assert r.status_code == 422, r.text
            assert any(d["loc"] == ["body", *loc] for d in r.json()["detail"])


PATCHABLE = {"windows", "requested_kw", "cleared_kw", "import_cap_kw", "confirm_deadline"}


def test_a_stored_event_that_is_now_invalid_is_skipped_not_every_cycle_broken(db_url, caplog):
    """A 9999 window stored before these checks: cycles go on, the event is logged once and
    skipped, another event still completes and is settled for, /health names it."""
    from fastapi.testclient import TestClient

    from vpp.store import repo

    rt = make_runtime(db_url)
    rt.on_resolve = lambda reason: None
    bad = dr_body("OLD-9999")
    bad["windows"] = [_window(datetime(9999, 12, 31, 10, tzinfo=TZ), HOUR)]
    with rt.engine.begin() as conn:
        repo.insert_dr(conn, "OLD-9999", "confirmed", bad, "before-the-checks")
    keys = make_keys(rt.engine)
    app = create_app(rt.settings, rt)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(
            "/api/v1/dr-events", json=dr_body("SG-FINE"), headers=headers(keys["admin"])
        )
        assert r.status_code == 201, r.text
        with caplog.at_level(logging.ERROR, logger="vpp.runtime.service"):
            for k in range(12):  # 08:00 .. 10:45: SG-FINE's window 08:30-09:30 is over
                rt.clock.set(T0 + k * timedelta(minutes=15))
                rt.run_cycle()
        assert rt.last_error is None
        skipped = [m for m in caplog.messages if "OLD-9999 is skipped" in m]
        assert len(skipped) == 1 and "years 2000-2099" in skipped[0]
        events = {e.event_id for e in rt.dr_events()}
        assert events == {"SG-FINE"}
        fine = client.get("/api/v1/dr-events/SG-FINE", headers=headers(keys["viewer"])).json()
        assert fine["status"] == "completed"
        health = client.get("/health").json()
    assert "OLD-9999" in health["dr_events_skipped"]
    assert any("DR event OLD-9999 is skipped" in p for p in health["problems"])
    assert health["status"] == "degraded" and health["ready"] is True
