"""Shared fixtures: databases.

``db_url`` runs a test once on SQLite (a file in the test's tmp dir) and once on the real
PostgreSQL at 127.0.0.1:5432 (database ``test``, user ``postgres`` or ``root``), in a fresh
schema per test that is dropped afterwards, so parallel runs never see each other's rows.
``module_db_url`` does the same for a module-scoped fixture (one database per module and
backend). PostgreSQL unreachable: the case is skipped, unless ``VPP_REQUIRE_SERVICES=1``
(CI), where it fails.
"""

from __future__ import annotations

import ast
import contextlib
import os
import sys
import threading
import uuid

import pytest


def _serialise_ast_parse() -> None:
    """CPython before 3.11.8 keeps the AST constructor's recursion depth in state shared by
    every thread (gh-106905): two threads in ``ast.parse`` at once can raise
    ``SystemError: AST constructor recursion depth mismatch``. The suite runs services with
    threads while Hypothesis, schemathesis and pytest parse source; one such race failed a
    CI run (``test_api_hostile``, as a FlakyFailure). One lock around ``ast.parse`` here."""
    if sys.version_info >= (3, 11, 8) or getattr(ast.parse, "_vpp_serialised", False):
        return
    lock, parse = threading.RLock(), ast.parse

    def serialised(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)

    serialised._vpp_serialised = True  # type: ignore[attr-defined]
    ast.parse = serialised


_serialise_ast_parse()

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
PG_USERS = ("postgres", "root")


def _pg_user() -> tuple[str | None, str]:
    import psycopg

    errors = []
    for user in PG_USERS:
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=PG_DB, connect_timeout=3
            ):
                return user, ""
        except Exception as exc:
            errors.append(f"{user}: {exc}".strip())
    return None, "; ".join(errors)


@pytest.fixture(scope="session")
def pg_user() -> str:
    user, why = _pg_user()
    if user is None:
        msg = f"PostgreSQL at {PG_HOST}:{PG_PORT}/{PG_DB} unreachable ({why})"
        if os.environ.get("VPP_REQUIRE_SERVICES") == "1":
            pytest.fail(msg + " and VPP_REQUIRE_SERVICES=1: the database tests must run")
        pytest.skip(msg)
    return user


@contextlib.contextmanager
def _fresh_schema(pg_user: str):
    """A URL whose connections use a fresh schema, dropped on exit."""
    import psycopg

    schema = f"vpp_t_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    conninfo = dict(host=PG_HOST, port=PG_PORT, user=pg_user, dbname=PG_DB)
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql+psycopg://{pg_user}@{PG_HOST}:{PG_PORT}/{PG_DB}"
            f"?options=-csearch_path%3D{schema}"
        )
    finally:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_url(pg_user: str):
    """A URL whose connections use a fresh schema (dropped after the test)."""
    with _fresh_schema(pg_user) as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url(pg_user: str):
    """``pg_url`` shared by the tests of a module (a module-scoped app, a running service)."""
    with _fresh_schema(pg_user) as url:
        yield url


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vpp.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory) -> str:
    """``db_url`` for module-scoped fixtures: one database per module and backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'vpp.sqlite3'}"
    return request.getfixturevalue("module_pg_url")


MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    """The Mosquitto broker at 127.0.0.1:1883 (``scripts/services.sh`` starts it): skipped
    when unreachable, unless ``VPP_REQUIRE_SERVICES=1`` (CI), where it fails. Tests keep to
    topics of their own (``uuid``), so parallel runs never see each other's messages."""
    import socket

    try:
        with socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2):
            pass
    except OSError as exc:
        msg = f"MQTT broker at {MQTT_HOST}:{MQTT_PORT} unreachable ({exc})"
        if os.environ.get("VPP_REQUIRE_SERVICES") == "1":
            pytest.fail(msg + " and VPP_REQUIRE_SERVICES=1: the broker tests must run")
        pytest.skip(msg)
    return MQTT_HOST, MQTT_PORT
