"""Completion webhooks: when a job ends (done or error), POST its TaskInfo to the client's callback.

Delivery is its own task on the `webhooks` queue, sent after the job's result is stored
(tasks/outcomes.py), so a slow or dead receiver never delays or fails the job. At least once: retried
with the shared backoff (jobs/retry.py) until a 2xx or `webhooks.max_attempts`; a receiver may see a
delivery twice (same body and task uuid) and should treat it as idempotent.

Signature (jobs/webhooks.py): header `X-Gateway-Timestamp: <unix seconds>` and
`X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`, the secret being
the client's `webhooks.secrets.<client_id>` in .secrets.json.
"""
from __future__ import annotations

import json
import time
from typing import Any

import requests
from loguru import logger
from redis import Redis

from jobs import webhooks
from jobs.retry import backoff
from jobs.store import TaskStore
from jobs.taskinfo import task_info as describe_task
from settings import Settings
from tasks.app import app
from tasks.runtime import worker_settings

TIMEOUT = 5.0


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx (or could not be reached); worth another attempt."""


@app.task(name=webhooks.TASK_NAME, bind=True, acks_late=True)
def deliver_webhook(self, task_id: str, url: str, client_id: str) -> dict[str, Any]:
    settings = worker_settings()
    conf = settings.config["webhooks"]
    secret = webhooks.secret_for(settings.secrets, client_id)
    if not secret:
        logger.warning("webhook for task {} dropped: no secret for its client", task_id)
        return {"delivered": False, "reason": "no secret"}
    body = json.dumps(task_info(settings, task_id), separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "X-Gateway-Timestamp": str(timestamp),
               "X-Gateway-Signature": webhooks.sign(secret, timestamp, body), "X-Gateway-Task": task_id}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")
    except (requests.RequestException, DeliveryFailed) as exc:
        attempt = self.request.retries + 1
        if attempt >= conf["max_attempts"]:
            logger.warning("webhook for task {} given up after {} attempts: {}", task_id, attempt, exc.__class__.__name__)
            return {"delivered": False, "attempts": attempt}
        delay = backoff(self.request.retries, conf["backoff"], conf["backoff_max"])
        logger.info("webhook for task {} failed ({}), retry in {:.1f}s", task_id, exc.__class__.__name__, delay)
        raise self.retry(countdown=delay, max_retries=conf["max_attempts"] - 1) from None
    logger.info("webhook for task {} delivered", task_id)
    return {"delivered": True, "attempts": self.request.retries + 1}


def task_info(settings: Settings, task_id: str) -> dict[str, Any]:
    """The TaskInfo body the gateway would answer for this task, built from the same Redis keys."""
    record, meta = TaskStore(_redis(settings.result_url), settings.config["results"]["expires"]).load(task_id)
    if record is None:
        return {"uuid": task_id, "status": "error", "code": 1, "message": "Task record expired"}
    return describe_task(record, meta, settings.config["results"]["expired_grace"])


_clients: dict[str, Redis] = {}


def _redis(url: str) -> Redis:
    if url not in _clients:
        _clients[url] = Redis.from_url(url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5)
    return _clients[url]
