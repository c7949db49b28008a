"""Completion webhooks: when a job ends (done or error), POST its TaskInfo to the client's callback.

Delivery is its own task on the `webhooks` queue, sent after the job's result is stored
(tasks/outcomes.py), so a slow or dead receiver never delays or fails the job. At least once: retried
with the shared backoff (jobs/retry.py) until a 2xx or `webhooks.max_attempts`; a receiver may see a
delivery twice (same body and task uuid) and should treat it as idempotent.

A receiver cannot hold a webhook worker: one delivery ends within `jobs.webhooks.DEADLINE` seconds
all told (a watchdog shuts the socket down at the deadline, whatever the connection is doing: a
per-read timeout would let a receiver dripping a byte at a time hold it for ever), reads at most
`MAX_RESPONSE_BYTES` of the answer, never follows a redirect, and the task has time limits around it.

Signature (jobs/webhooks.py): header `X-Gateway-Timestamp: <unix seconds>`,
`X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` with the client's
first secret, and `X-Gateway-Signatures: sha256=<hex>[,sha256=<hex>]`, one per secret (two while the
client rotates them): the client's `webhooks.secrets.<client_id>` in .secrets.json.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from loguru import logger
from redis import Redis

from jobs import webhooks
from jobs.retry import backoff
from jobs.store import TaskStore
from jobs.taskinfo import task_info as describe_task
from settings import Settings
from tasks.app import app
from tasks.runtime import redis_client, worker_settings


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx (or could not be reached in time); worth another attempt."""


@app.task(name=webhooks.TASK_NAME, bind=True, acks_late=True)
def deliver_webhook(self, task_id: str, url: str, client_id: str) -> dict[str, Any]:
    settings = worker_settings()
    conf = settings.config["webhooks"]
    secrets = webhooks.secrets_for(settings.secrets, client_id)
    if not secrets:
        logger.warning("webhook for task {} dropped: no secret for its client", task_id)
        return {"delivered": False, "reason": "no secret"}
    body = json.dumps(task_info(settings, task_id), separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", webhooks.TIMESTAMP_HEADER: str(timestamp),
               **webhooks.signature_headers(secrets, timestamp, body), webhooks.TASK_HEADER: task_id}
    try:
        status = post(url, body, headers, time.monotonic() + webhooks.DEADLINE)
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status}")
    except (OSError, http.client.HTTPException, ValueError, DeliveryFailed) as exc:
        attempt = self.request.retries + 1
        if attempt >= conf["max_attempts"]:
            logger.warning("webhook for task {} given up after {} attempts: {}", task_id, attempt, exc.__class__.__name__)
            return {"delivered": False, "attempts": attempt}
        delay = backoff(self.request.retries, conf["backoff"], conf["backoff_max"])
        logger.info("webhook for task {} failed ({}), retry in {:.1f}s", task_id, exc.__class__.__name__, delay)
        raise self.retry(countdown=delay, max_retries=conf["max_attempts"] - 1) from None
    logger.info("webhook for task {} delivered", task_id)
    return {"delivered": True, "attempts": self.request.retries + 1}


def post(url: str, body: bytes, headers: dict[str, str], deadline: float) -> int:
    """POST `body` and return the answer's status, all before `deadline` (time.monotonic()). Of the
    answer's body at most MAX_RESPONSE_BYTES are read, only until the deadline, and none kept."""
    parts = urlsplit(url)
    connection = _connection(parts.scheme, parts.hostname, parts.port, _remaining(deadline))
    watchdog = threading.Timer(_remaining(deadline), _shut_down, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        if time.monotonic() >= deadline:  # connected after the watchdog looked: it found no socket
            raise TimeoutError("webhook delivery deadline passed")
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = connection.getresponse()
        _drain(response, webhooks.MAX_RESPONSE_BYTES)
        return response.status
    finally:
        watchdog.cancel()
        connection.close()


def _connection(scheme: str, host: str | None, port: int | None, timeout: float) -> http.client.HTTPConnection:
    """A connection to the callback's host; its timeout bounds each socket operation, the watchdog all."""
    if not host or scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL")
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _drain(response: http.client.HTTPResponse, cap: int) -> None:
    """Read the answer's body up to `cap` bytes, a chunk at a time, keeping none of it. The status
    is already in: a body cut short (the cap, the watchdog) does not undo the delivery."""
    read = 0
    try:
        while read < cap:
            chunk = response.read(min(16384, cap - read))
            if not chunk:
                return
            read += len(chunk)
    except (OSError, http.client.HTTPException):
        return


def _shut_down(connection: http.client.HTTPConnection) -> None:
    """At the deadline: whatever the delivery is blocked in (send, headers, body) returns at once."""
    sock = connection.sock
    if sock is not None:
        try:
            # The plain socket's shutdown, also under TLS: SSLSocket's own would unwrap the TLS
            # object the delivering thread is reading through.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def _remaining(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def task_info(settings: Settings, task_id: str) -> dict[str, Any]:
    """The TaskInfo body the gateway would answer for this task, built from the same Redis keys."""
    results = settings.config["results"]
    redis = _redis(settings.result_url)
    record, meta = TaskStore(redis, results["expires"]).load(task_id)
    if record is None:
        return {"uuid": task_id, "status": "error", "code": 1, "message": "Task record expired"}
    return describe_task(record, meta, results["expired_grace"], redis, results["max_inline_bytes"])


_clients: dict[str, Redis] = {}


def _redis(url: str) -> Redis:
    if url not in _clients:
        _clients[url] = redis_client(url, decode=True)
    return _clients[url]
