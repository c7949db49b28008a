"""Completion webhooks: when a job ends (done or error), POST its TaskInfo to the client's callback.

Delivery is its own task on the `webhooks` queue, sent after the job's result is stored, so a slow or
dead receiver never delays or fails the job. At least once: retried with exponential backoff and
jitter until a 2xx or `webhooks.max_attempts`; a receiver may see a delivery twice (same body and
task uuid) and should treat it as idempotent.

Signature (SPEC-style, like Stripe's): header `X-Gateway-Timestamp: <unix seconds>` and
`X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`, the secret being
the client's `webhooks.secrets.<client_id>` in .secrets.json.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from datetime import datetime, timezone
from typing import Any

import requests
from loguru import logger
from redis import Redis

from tasks import app, worker_settings
from tasks.headers import CALLBACK_HEADER, CLIENT_HEADER

QUEUE = "webhooks"
TASK_NAME = "gateway.deliver_webhook"
TIMEOUT = 5.0


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx (or could not be reached); worth another attempt."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, tolerance: float = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps (replays)."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def enqueue_for(task_request: Any) -> None:
    """Called by the worker's outcome signals: queue a delivery if the job asked for one."""
    get = task_request.get if hasattr(task_request, "get") else (lambda key: None)
    url, client_id = get(CALLBACK_HEADER), get(CLIENT_HEADER)
    if url and client_id and task_request.id:
        app.send_task(TASK_NAME, kwargs={"task_id": task_request.id, "url": url, "client_id": client_id},
                      queue=QUEUE, argsrepr="()", kwargsrepr=f"{{'task_id': '{task_request.id}'}}")


@app.task(name=TASK_NAME, bind=True, acks_late=True)
def deliver_webhook(self, task_id: str, url: str, client_id: str) -> dict[str, Any]:
    settings = worker_settings()
    conf = settings.config["webhooks"]
    secret = ((settings.secrets.get("webhooks") or {}).get("secrets") or {}).get(client_id)
    if not secret:
        logger.warning("webhook for task {} dropped: no secret for its client", task_id)
        return {"delivered": False, "reason": "no secret"}
    body = json.dumps(task_info(settings, task_id), separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-Gateway-Timestamp": str(timestamp),
               "X-Gateway-Signature": sign(secret, timestamp, body), "X-Gateway-Task": task_id}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")
    except (requests.RequestException, DeliveryFailed) as exc:
        attempt = self.request.retries + 1
        if attempt >= conf["max_attempts"]:
            logger.warning("webhook for task {} given up after {} attempts: {}", task_id, attempt, exc.__class__.__name__)
            return {"delivered": False, "attempts": attempt}
        delay = min(conf["backoff_max"], conf["backoff"] * 2 ** self.request.retries) * random.uniform(0.5, 1.0)
        logger.info("webhook for task {} failed ({}), retry in {:.1f}s", task_id, exc.__class__.__name__, delay)
        raise self.retry(countdown=delay, max_retries=conf["max_attempts"] - 1) from None
    logger.info("webhook for task {} delivered", task_id)
    return {"delivered": True, "attempts": self.request.retries + 1}


def task_info(settings: Any, task_id: str) -> dict[str, Any]:
    """The TaskInfo body the gateway would answer for this task, built from the same Redis keys."""
    from gateway.schemas import TaskInfo
    from gateway.status import describe
    from gateway.store import TaskStore

    store = TaskStore(_redis(settings.result_url), settings.config["results"]["expires"])
    record, meta = store.load(task_id)
    if record is None:
        return {"uuid": task_id, "status": "error", "code": 1, "message": "Task record expired"}
    info = describe(record, meta, datetime.now(timezone.utc), settings.config["results"]["expired_grace"])
    return TaskInfo().dump(info)


_clients: dict[str, Redis] = {}


def _redis(url: str) -> Redis:
    if url not in _clients:
        _clients[url] = Redis.from_url(url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5)
    return _clients[url]
