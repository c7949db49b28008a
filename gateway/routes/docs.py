"""/openapi.json (OpenAPI 3.1, generated from the route declarations: gateway/openapi.py) and /docs
(Swagger UI, loaded from a CDN by the reader's browser; the gateway serves only this small page)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from gateway import openapi
from gateway.contract import declare, returns
from gateway.services import services

bp = Blueprint("docs", __name__)
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14"
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Job gateway API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"></head>
<body><div id="ui"></div><script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "/openapi.json", dom_id: "#ui"}});</script></body></html>
"""


@bp.get("/openapi.json")
@declare("This document")
@returns(200, description="OpenAPI 3.1")
def document() -> dict:
    app = current_app._get_current_object()
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = openapi.build(app, services().settings)
    return app.extensions["openapi"]


@bp.get("/docs")
@declare("Interactive documentation")
@returns(200, description="HTML", content_type="text/html")
def docs() -> Response:
    return Response(PAGE, content_type="text/html; charset=utf-8")
