"""The operator's page: one HTML page, its script and style, served by the API's own app at
``/`` with every file from this package (no CDN, no web font: the park's control room may
have no internet). The page signs in with an API key and calls the API with it; it holds
no privilege of its own (what it offers follows ``GET /api/v1/me``, and the API checks every
call). Data the other resources do not give come from :mod:`api.routes.ui_data`.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib.resources import files

from fastapi import FastAPI, Request, Response

STATIC_URL = "/ui/static"
# The page's files change with the package only: a browser may keep them an hour; the page
# itself is revalidated on every load.
ASSET_CACHE = "public, max-age=3600"
# Only this origin's scripts, styles, images and connections: the page can reach nothing else.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _files(static) -> dict[str, tuple[bytes, str, str]]:
    """Every file of the page, read once: path -> (bytes, media type, ETag)."""
    out: dict[str, tuple[bytes, str, str]] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            else:
                data = child.read_bytes()
                kind = mimetypes.guess_type(child.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind.endswith("javascript"):
                    kind += "; charset=utf-8"
                out[name] = (data, kind, '"' + hashlib.sha256(data).hexdigest()[:20] + '"')

    walk(static, "")
    return out


def install_ui(app: FastAPI) -> None:
    """Serve the page at ``/`` (and ``/ui``) and its files under :data:`STATIC_URL`, from
    memory (read once: a page load costs no file reads, and a browser revalidates by ETag)."""
    static = files("api.ui") / "static"
    assets = _files(static)
    page = assets.pop("index.html")[0]
    headers = {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    @app.get("/", include_in_schema=False)
    @app.get("/ui", include_in_schema=False)
    async def operator_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    @app.get(STATIC_URL + "/{path:path}", include_in_schema=False)
    async def operator_page_file(path: str, request: Request) -> Response:
        hit = assets.get(path)
        if hit is None:
            return Response(status_code=404)
        data, kind, etag = hit
        common = {"ETag": etag, "Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=common)
        return Response(data, media_type=kind, headers=common)
