"""/metrics for Prometheus. Open by default (serve the gateway on a private network, or scrape through
one); with `metrics.token` in .secrets.json, scrapers must send `Authorization: Bearer <token>`."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from gateway import metrics
from gateway.errors import Unauthorized
from gateway.extensions import services

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    token = (services().settings.secrets.get("metrics") or {}).get("token")
    if token:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered.strip().encode(), token.encode()):
            raise Unauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return metrics.render(services().broker_collector)
