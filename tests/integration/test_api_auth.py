"""The auth matrix: every route, every role; 401 (no or bad key) and 403 (role) distinct;
every write audited with the key's name."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth_limits import AuthLimits
from tests.service_kit import ROLES, headers, make_keys, make_runtime
from vpp.store import repo

READ, OPERATE, DR, ADMIN = "read", "operate", "dr_write", "admin"
MAY = {
    READ: {"viewer", "operator", "utility", "admin"},
    OPERATE: {"operator", "admin"},
    DR: {"utility", "admin"},
    ADMIN: {"admin"},
}
# Every route of the API and the permission it needs (None: public). A new route without an
# entry here fails test_every_route_is_in_the_matrix.
MATRIX = {
    ("GET", "/health"): None,
    ("GET", "/metrics"): None,
    ("GET", "/api/v1/site"): READ,
    ("GET", "/api/v1/assets"): READ,
    ("GET", "/api/v1/setpoints"): READ,
    ("GET", "/api/v1/plan"): READ,
    ("GET", "/api/v1/forecasts"): READ,
    ("GET", "/api/v1/flexibility"): READ,
    ("GET", "/api/v1/cycles"): READ,
    ("GET", "/api/v1/cycles/{cycle_id}"): READ,
    ("POST", "/api/v1/cycles"): OPERATE,
    ("POST", "/api/v1/telemetry"): OPERATE,
    ("GET", "/api/v1/dr-events"): READ,
    ("POST", "/api/v1/dr-events"): DR,
    ("GET", "/api/v1/dr-events/{event_id}"): READ,
    ("PATCH", "/api/v1/dr-events/{event_id}"): DR,
    ("POST", "/api/v1/dr-events/{event_id}/cancel"): DR,
    ("POST", "/api/v1/dr-events/{event_id}/confirm"): OPERATE,
    ("POST", "/api/v1/dr-events/{event_id}/decline"): OPERATE,
    ("POST", "/api/v1/keys"): ADMIN,
    ("GET", "/api/v1/keys"): ADMIN,
    ("DELETE", "/api/v1/keys/{name}"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    ("GET", "/api/v1/runtime-settings"): ADMIN,
    ("PATCH", "/api/v1/runtime-settings"): ADMIN,
    ("GET", "/api/v1/me"): READ,  # the operator's page (#19)
    ("GET", "/api/v1/now"): READ,
    ("GET", "/api/v1/network"): READ,
    ("GET", "/api/v1/month-to-date"): READ,
    ("GET", "/api/v1/devices"): READ,  # field devices and their faults (#17)
    ("GET", "/api/v1/tenants"): READ,  # tenant sub-meters, month to date (#21 item 3)
    ("GET", "/api/v1/prices"): READ,  # price and emission-factor series (#21)
    ("POST", "/api/v1/prices"): OPERATE,
    ("GET", "/api/v1/emission-factors"): READ,
    ("POST", "/api/v1/emission-factors"): OPERATE,
}
PARAMS = {"{cycle_id}": "1", "{event_id}": "no-such-event", "{name}": "no-such-key"}


@pytest.fixture(scope="module")
def api(module_db_url):
    rt = make_runtime(module_db_url)
    rt.run_cycle()
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt)) as client:
        yield client, keys, rt


def _routes(app) -> set[tuple[str, str]]:
    """Every operation the OpenAPI document lists (it lists every route of the app)."""
    return {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}


def test_every_route_is_in_the_matrix(api):
    client, _, _ = api
    assert _routes(client.app) == set(MATRIX)


def _call(client, method: str, path: str, key: str | None):
    for k, v in PARAMS.items():
        path = path.replace(k, v)
    return client.request(method, path, headers=headers(key) if key else {})


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_matrix(api, method, path):
    client, keys, _ = api
    # Each route's wrong-key refusal on its own: the matrix holds more protected routes than
    # a client may fail in a burst (api.auth_limits.CLIENT_BURST, whose back-off
    # test_api_docs tests), and a lock here would answer the later tests 429.
    client.app.state.keys.limits = AuthLimits.default()
    perm = MATRIX[(method, path)]
    anonymous = _call(client, method, path, None)
    if perm is None:
        assert anonymous.status_code in (200, 503)
        return
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers.get("www-authenticate") == "Bearer"
    assert _call(client, method, path, "vpp_0123456789abcdef_wrong").status_code == 401
    for role in ROLES:
        r = _call(client, method, path, keys[role])
        if role in MAY[perm]:
            assert r.status_code not in (401, 403), f"{role}: {r.status_code} {r.text}"
            assert r.status_code < 500, r.text
        else:
            assert r.status_code == 403, f"{role} may not {perm}: got {r.status_code}"
            assert role in r.json()["detail"]


def test_writes_are_audited_with_the_key_name(api):
    client, keys, rt = api
    client.post("/api/v1/cycles", headers=headers(keys["viewer"]))  # refused: 403
    client.post("/api/v1/cycles", headers=headers(keys["operator"]))  # accepted
    with rt.engine.connect() as conn:
        log = repo.audit_entries(conn, 5)
    assert (log[0]["key_name"], log[0]["status_code"]) == ("test-operator", 202)
    assert (log[1]["key_name"], log[1]["status_code"]) == ("test-viewer", 403)
    got = client.get("/api/v1/audit", headers=headers(keys["admin"])).json()
    assert got[0]["path"] == "/api/v1/cycles"


def test_a_revoked_key_is_refused(api):
    client, keys, _ = api
    admin = headers(keys["admin"])
    made = client.post("/api/v1/keys", json={"name": "gw-1", "role": "operator"}, headers=admin)
    assert made.status_code == 201
    key = made.json()["key"]
    assert client.get("/api/v1/site", headers=headers(key)).status_code == 200
    assert client.delete("/api/v1/keys/gw-1", headers=admin).status_code == 200
    assert client.get("/api/v1/site", headers=headers(key)).status_code == 401
    listed = client.get("/api/v1/keys", headers=admin).json()
    assert all("hash" not in k and "key" not in k for k in listed)


def test_x_api_key_header_works(api):
    client, keys, _ = api
    assert client.get("/api/v1/site", headers={"X-API-Key": keys["viewer"]}).status_code == 200
