"""Malformed and hostile input: schemathesis generates requests from the OpenAPI document
(valid and invalid bodies, odd strings, huge numbers) with an admin key, which may call every
route; no request may get a 5xx."""

from __future__ import annotations

import contextlib

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api.app import create_app
from tests.service_kit import headers, make_keys, make_runtime

EXAMPLES = 8  # per operation and mode: bounded time


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
