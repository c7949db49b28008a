"""Completion webhooks as both sides know them: the queue and task that deliver them, the client's
signing secret, and the signature (HMAC-SHA256 over "<timestamp>.<raw body>", like Stripe's)."""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

QUEUE = "webhooks"
TASK_NAME = "gateway.deliver_webhook"
# A delivery's headers: when it was signed (unix seconds), the signature, and the task it is about. The
# client library (client/, a package of its own that imports nothing of ours) spells them again.
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"
TASK_HEADER = "X-Gateway-Task"
# One delivery — connect, send, and read the answer — ends within DEADLINE seconds, and reads at most
# MAX_RESPONSE_BYTES of the answer's body: a slow or huge receiver holds a webhook worker this long and
# this much at most. The task's own time limits (celeryconfig.py) are a backstop around it.
DEADLINE = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
SOFT_TIME_LIMIT = DEADLINE + 10
TIME_LIMIT = DEADLINE + 20


def secret_for(secrets: Mapping[str, Any], client_id: str) -> str | None:
    """The client's `webhooks.secrets.<client_id>` from .secrets.json, if it has one."""
    return ((secrets.get("webhooks") or {}).get("secrets") or {}).get(client_id)


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
