"""Serves the OpenAPI document and the Swagger UI (assets from the ``flask-swagger-ui``
package: no CDN, works offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, send_from_directory

from simfarm.gateway.auth import public
from simfarm.gateway.openapi.builder import build_openapi
from simfarm.gateway.openapi.registry import Body, document

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
_HERE = Path(__file__).resolve().parent
_CACHE_KEY = "simfarm.openapi"
_OWN_ASSETS = {"swagger-init.js"}
_VENDOR_ASSETS = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}
_HTML = Body(None, "HTML page", media_type="text/html")


def swagger_dist() -> Path:
    """Folder of the vendored Swagger UI files."""
    return Path(str(resources.files("flask_swagger_ui"))) / "dist"


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, built once (routes do not change after start-up)."""
    cached: dict[str, Any] | None = current_app.extensions.get(_CACHE_KEY)
    if cached is None:
        cached = build_openapi(current_app, strict=False)
        current_app.extensions[_CACHE_KEY] = cached
    return cached


@bp.get("/openapi.json")
@public
@document(tags=["meta"], responses={200: Body(dict[str, Any], "OpenAPI 3.1 document")})
def openapi_json() -> Response:
    """The OpenAPI 3.1 document of this gateway."""
    return jsonify(openapi_document())


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>simfarm API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" href="docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui" data-url="openapi.json"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/swagger-init.js"></script></body></html>
"""


@bp.get("/docs")
@public
@document(tags=["meta"], responses={200: _HTML})
def swagger_ui() -> Response:
    """Interactive API documentation (Swagger UI)."""
    return Response(_PAGE, mimetype="text/html")


@bp.get("/docs/assets/<name>")
@public
@document(
    tags=["meta"],
    path_params={"name": "file name"},
    responses={200: Body(None, "static file", media_type="application/octet-stream")},
    errors=(404,),
)
def swagger_asset(name: str) -> Response:
    """Files of the Swagger UI page."""
    if name in _OWN_ASSETS:
        folder = _HERE / "static"
    elif name in _VENDOR_ASSETS:
        folder = swagger_dist()
    else:
        abort(404)
    response = send_from_directory(folder, name, max_age=3600)
    return response
