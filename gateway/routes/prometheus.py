"""/metrics for Prometheus. Open by default (serve the gateway on a private network, or scrape through
one); with `metrics.token` in .secrets.json, scrapers must send `Authorization: Bearer <token>`."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from gateway.health import metrics
from gateway.http.contract import contract_of, declare, returns
from gateway.http.errors import Unauthorized
from gateway.services import services

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@declare("Prometheus metrics", tag="health", errors=(401,))
@returns(200, description="Prometheus text format", content_type="text/plain")
def scrape() -> Response:
    token = (services().settings.secrets.get("metrics") or {}).get("token")
    if token:
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered.strip().encode(), token.encode()):
            raise Unauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return metrics.render(services().broker_collector)


contract_of(scrape).security = [{}, {"bearerAuth": []}]
