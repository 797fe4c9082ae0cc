"""``/docs`` and ``/redoc`` work offline (assets from an installed package, no external
host), the OpenAPI document declares the API-key schemes and every route behind a key lists
401, 403, 413, 422, 429 and 503; failed keys back off with 429, refused anonymous writes are
counted and not audited, and a key revoked from another engine is refused at once."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from tests.service_kit import headers, make_keys, make_runtime
from vpp.store import repo, tables
from vpp.store.db import make_engine

ERRORS = {"401", "403", "413", "422", "429", "503"}


@pytest.fixture
def api(db_url):
    rt = make_runtime(db_url)
    rt.run_cycle()
    keys = make_keys(rt.engine)
    with TestClient(create_app(rt.settings, rt), base_url="http://127.0.0.1:8000") as client:
        yield client, keys, rt


def _external_urls(html: str, server: str) -> list[str]:
    return [u for u in re.findall(r"https?://[^\s\"'<>)]+", html) if not u.startswith(server)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_the_servers_own_assets(api, page):
    client, _, _ = api
    r = client.get(page)
    assert r.status_code == 200
    assert _external_urls(r.text, "http://127.0.0.1:8000") == []
    assets = re.findall(r"""(?:src|href)=["']?(/[^"'\s>]+)""", r.text)
    js = [a for a in assets if a.endswith(".js")]
    assert js, r.text
    for url in assets:
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > 1000 or url.endswith(".png"), url
    if page == "/docs":
        assert {"/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css"} <= set(assets)
        assert '"validatorUrl": null' in r.text  # no badge loaded from validator.swagger.io


def test_openapi_declares_the_key_schemes_and_documents_the_errors(api):
    client, _, _ = api
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"] == {"type": "http", "scheme": "bearer"}
    protected = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not path.startswith("/api/v1/"):
                assert "security" not in op, (method, path)  # /health, /metrics are public
                continue
            protected += 1
            assert {"ApiKey": []} in op["security"] and {"Bearer": []} in op["security"]
            assert set(op["responses"]) >= ERRORS, (method, path, sorted(op["responses"]))
    assert protected >= 20


def _audit_rows(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.audit_log)).scalar()


def _metric(client, name: str, label: str) -> float:
    text = client.get("/metrics").text
    m = re.search(rf"^{name}_total\{{{label}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_wrong_secrets_back_off_with_429_and_anonymous_writes_are_counted_not_stored(api):
    from api.auth_limits import CLIENT_BURST, KEY_BURST

    client, keys, rt = api
    key_id = keys["operator"].split("_")[1]
    codes = [
        client.get("/api/v1/site", headers=headers(f"vpp_{key_id}_wrong{i}")).status_code
        for i in range(KEY_BURST + 3)
    ]
    assert codes == [401] * KEY_BURST + [429] * 3
    r = client.get("/api/v1/site", headers=headers(f"vpp_{key_id}_wrong"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # The key's holder, verified before, is not locked out (a cached key is not limited).
    assert client.get("/api/v1/site", headers=headers(keys["viewer"])).status_code == 200
    before = _audit_rows(rt)
    for _ in range(CLIENT_BURST + 5):  # no key: nothing to hash, never limited, never stored
        assert client.post("/api/v1/cycles").status_code == 401
        assert client.post("/api/v1/cycles", json={"x": "\x00"}).status_code == 401
    nul = client.request("DELETE", "/api/v1/keys/a%00b", headers=headers("vpp_nokey_x"))
    assert nul.status_code == 422
    assert _audit_rows(rt) == before
    assert _metric(client, "vpp_unattributed_writes", 'status="401"') == 2 * (CLIENT_BURST + 5)
    assert _metric(client, "vpp_unattributed_writes", 'status="422"') == 1
    assert _metric(client, "vpp_auth_refused", 'reason="rate_limited"') == 4
    # A write refused before authentication, with a key that verifies: audited by its name.
    admin = headers(keys["admin"])
    assert client.request("DELETE", "/api/v1/keys/a%00b", headers=admin).status_code == 422
    with rt.engine.connect() as conn:
        last = repo.audit_entries(conn, 1)[0]
    assert (last["key_name"], last["status_code"]) == ("test-admin", 422)


def test_a_key_revoked_by_another_engine_is_refused_within_the_recheck(api):
    """Revoked by another process: refused once ``key_recheck_s`` (1 s) has passed since its
    row was last read, without a read on every request (which cost the readers 4.7x)."""
    client, keys, rt = api
    for _ in range(2):  # verified, then served from the cache
        assert client.get("/api/v1/site", headers=headers(keys["utility"])).status_code == 200
    other = make_engine(str(rt.engine.url.render_as_string(hide_password=False)))
    with other.begin() as conn:  # what `vpp db revoke-key` does
        assert repo.revoke_key(conn, "test-utility")
    other.dispose()
    time.sleep(rt.settings.key_recheck_s + 0.05)
    r = client.get("/api/v1/site", headers=headers(keys["utility"]))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert _metric(client, "vpp_auth_refused", 'reason="revoked"') == 1
