"""/health: 200 when the broker, the result backend and Vault answer, 503 naming what does not.
/ping: liveness only, touching nothing behind the gateway (load balancers, and the HTTP ceiling in bench/)."""
from __future__ import annotations

from flask import Blueprint
from redis.exceptions import RedisError

from gateway.contract import declare, returns
from gateway.schemas import Status
from gateway.services import services

bp = Blueprint("health", __name__)


@bp.route("/health", methods=["GET", "POST"])
@declare("Readiness: broker, result backend and Vault")
@returns(200, Status, "Everything answers")
@returns(503, Status, "Something is down; the message names it")
def health() -> tuple[dict, int]:
    down = [name for name, check in _checks().items() if not check()]
    if down:
        return {"message": f"Unavailable: {', '.join(down)}", "code": 0}, 503
    return {"message": "All right", "code": 1}, 200


@bp.get("/ping")
@declare("Liveness: answers without touching anything behind the gateway")
@returns(200, Status, "Alive")
def ping() -> dict:
    return {"message": "pong", "code": 1}


def _checks() -> dict:
    found = services()
    return {"broker": lambda: _ping(found.broker), "result backend": lambda: _ping(found.store.redis),
            "vault": found.identity.healthy}


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except RedisError:
        return False
