"""``/docs`` (Swagger UI) and ``/redoc`` served offline, and the errors the OpenAPI document
lists for every route that needs a key.

The JavaScript and CSS come from the files the ``fastapi-offline`` package ships (Swagger UI
5, ReDoc 2), mounted at ``/static/docs``: a controller on an isolated plant network has no
CDN. Only the files are used, not its ``FastAPIOffline`` class. The security schemes
(``X-API-Key`` header, ``Authorization: Bearer``) come from :func:`api.auth.require`.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/static/docs"
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "description": "what was wrong"}},
    "required": ["detail"],
}
# Every route behind a key may answer these (the guards run before the route).
ERRORS = {
    "401": "missing, unknown or revoked API key (`WWW-Authenticate: Bearer`)",
    "403": "the key's role may not do this",
    "413": "request body larger than `VPP_MAX_BODY_BYTES`",
    "422": "invalid input: the field, the bound; a NUL character; a non-finite number",
    "429": "too many failed API key attempts from this client or on this key id; "
    "wait `Retry-After` seconds",
    "503": "not ready (no plan yet) or the store is unreachable",
}


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from packaged assets and document the auth errors.

    Create ``app`` with ``docs_url=None, redoc_url=None``; this adds both pages (outside the
    OpenAPI document) and replaces ``app.openapi``.
    """
    static = files("fastapi_offline") / "static"
    app.mount(STATIC_URL, StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            # No validator badge: it would load an image from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    base = app.openapi  # FastAPI's: builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with_auth_errors(base())
        return app.openapi_schema

    app.openapi = openapi


def with_auth_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with :data:`ERRORS` listed on every operation that has a security
    requirement (FastAPI's own 422 schema is kept where it lists one)."""
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            if not op.get("security"):
                continue
            responses = op.setdefault("responses", {})
            for code, text in ERRORS.items():
                responses.setdefault(code, {"description": text, "content": ref})
    return doc
