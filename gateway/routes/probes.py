"""/health: 200 when the broker, the result backend and Vault (with the gateway's own token) answer,
503 naming each part that does not (gateway/health/readiness.py: parallel probes, each within 0.75 s).
/ping: liveness only, touching nothing behind the gateway (load balancers, and the HTTP ceiling in bench/).
/livez and /readyz, Kubernetes' probes: /livez is /ping (a dependency outage must not get the pod
restarted); /readyz is /health, and 503 as soon as the gateway drains (gateway/health/drain.py), so the
load balancer stops sending it new requests before it stops taking them."""
from __future__ import annotations

from flask import Blueprint, current_app

from gateway.health.drain import drain_of
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


@bp.get("/livez")
@declare("Kubernetes liveness: 200 while the process serves, touching nothing behind the gateway", tag="health")
@returns(200, Status, "Alive")
def livez() -> dict:
    return {"message": "alive", "code": 1}


@bp.get("/readyz")
@declare("Kubernetes readiness: what /health checks, and 503 at once while the gateway drains", tag="health")
@returns(200, Status, "Ready for new requests")
@returns(503, Status, "Draining (the message says so), or a part is down (the message names each)")
def readyz() -> tuple[dict, int]:
    if drain_of(current_app).state() is not None:
        return {"message": "Draining", "code": 0}, 503
    return health()
