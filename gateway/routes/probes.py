"""/health: 200 when the broker, the result backend and Vault (with the gateway's own token) answer,
503 naming each part that does not (gateway/health/readiness.py: parallel probes, each within 0.75 s).
/ping: liveness only, touching nothing behind the gateway (load balancers, and the HTTP ceiling in bench/)."""
from __future__ import annotations

from flask import Blueprint

from gateway.http.contract import declare, returns
from gateway.http.schemas import Status
from gateway.services import services

bp = Blueprint("health", __name__)


@bp.route("/health", methods=["GET", "POST"])
@declare("Readiness: broker, result backend, Vault and the gateway's Vault token", tag="health")
@returns(200, Status, "Everything answers")
@returns(503, Status, "Something is down; the message names each part (broker, result backend, vault, vault token)")
def health() -> tuple[dict, int]:
    down = services().readiness.down()
    if down:
        return {"message": f"Unavailable: {', '.join(down)}", "code": 0}, 503
    return {"message": "All right", "code": 1}, 200


@bp.get("/ping")
@declare("Liveness: answers without touching anything behind the gateway", tag="health")
@returns(200, Status, "Alive")
def ping() -> dict:
    return {"message": "pong", "code": 1}
