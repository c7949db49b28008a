"""/ (a small JSON index: name, version, where to start), /openapi.json (OpenAPI 3.1, generated from
the route declarations: gateway/http/openapi.py), /docs (Swagger UI, operations grouped by their tags)
and /docs/assets/<name>, which serves Swagger UI's files from gateway/static: vendored from npm
(gateway/static/swagger-ui/NOTICE), so the page works offline and loads nothing from a CDN.

The page's Content-Security-Policy admits only this origin (images also as data: URIs, which Swagger
UI's stylesheet uses for its icons), and no framing. Asset URLs carry a hash of the file's content,
so browsers may keep them for a year: a new file is a new URL.
"""
from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory, url_for

from gateway.http import openapi
from gateway.http.contract import declare, returns
from gateway.http.schemas import Index
from gateway.services import services

bp = Blueprint("docs", __name__)
STATIC = Path(__file__).resolve().parents[1] / "static"
ASSET_MAX_AGE = 365 * 24 * 3600
PAGE_ASSETS = ("swagger-ui/swagger-ui.css", "swagger-ui/swagger-ui-bundle.js", "docs.js")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Job gateway API</title>
<link rel="stylesheet" href="{}"></head>
<body><div id="ui"></div><script src="{}"></script><script src="{}"></script></body></html>
"""


@bp.get("/")
@declare("What this is and where to start: links to the documentation, the OpenAPI document and the health check", tag="docs")
@returns(200, Index, "Name, version and links")
def index() -> dict:
    return {"name": openapi.TITLE, "version": openapi.VERSION,
            "links": {"docs": url_for("docs.docs"), "openapi": url_for("docs.document"), "health": url_for("health.health")}}


@bp.get("/openapi.json")
@declare("This document", tag="docs")
@returns(200, description="OpenAPI 3.1")
def document() -> dict:
    app = current_app
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = openapi.build(app, services().settings)
    return app.extensions["openapi"]


@bp.get("/docs")
@declare("Interactive documentation", tag="docs")
@returns(200, description="HTML", content_type="text/html")
def docs() -> Response:
    response = Response(_page(), content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CSP
    return response


@bp.get("/docs/assets/<path:name>")
@declare("A file of the documentation page (Swagger UI's script and stylesheet, their licence)", tag="docs", errors=(404,))
@returns(200, description="The file", content_type="*/*")
def asset(name: str) -> Response:
    response = send_from_directory(STATIC, name, max_age=ASSET_MAX_AGE)
    response.cache_control.immutable = True
    return response


@cache
def _page() -> str:
    """The page, naming each asset with a hash of its content (computed once per process)."""
    return PAGE.format(*(f"/docs/assets/{name}?v={_digest(name)}" for name in PAGE_ASSETS))


def _digest(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16]
