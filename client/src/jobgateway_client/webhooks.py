"""Receiving completion webhooks: check a delivery exactly as the gateway signs it, before acting on it.

The gateway POSTs the task's TaskInfo with `X-Gateway-Timestamp: <unix seconds>`,
`X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` and
`X-Gateway-Task: <uuid>`; the secret is the client's `webhooks.secrets.<client_id>` in the gateway's
.secrets.json. Verify the raw bytes received (not JSON parsed and dumped again), compare in constant
time, and refuse a timestamp outside the window (a replayed old delivery). Deliveries are at least
once: act idempotently on the task's uuid."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable
from typing import Any, Protocol

from jobgateway_client.errors import WebhookVerificationError
from jobgateway_client.models import TaskInfo

TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"
TASK_HEADER = "X-Gateway-Task"
TOLERANCE = 300.0  # seconds a delivery's timestamp may be from now
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Headers(Protocol):
    """A request's headers: a dict, or a framework's headers object (http.server's, Flask's, Starlette's)."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value the gateway sends for `body` at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, signature: str, *,
                     tolerance: float = TOLERANCE, now: float | None = None) -> bool:
    """True if `signature` is the gateway's for `body` at `timestamp` and `timestamp` is within
    `tolerance` seconds of `now` (default: the clock). The comparison takes the same time wherever
    the signature differs."""
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp) or not isinstance(signature, str):
        return False
    fresh = abs((time.time() if now is None else now) - int(timestamp)) <= tolerance
    expected = sign(secret, int(timestamp), body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace")) and fresh


def verify_delivery(secret: str | bytes, headers: Headers, body: bytes, *,
                    tolerance: float = TOLERANCE, now: float | None = None) -> TaskInfo:
    """The delivered TaskInfo, once its headers and raw `body` check out; WebhookVerificationError
    (answer 400/401, do not act) otherwise. `headers`: any mapping of the request's headers, matched
    without regard to case (a framework's headers object, or a plain dict)."""
    found = {str(name).lower(): str(value) for name, value in headers.items()}
    timestamp, signature = found.get(TIMESTAMP_HEADER.lower()), found.get(SIGNATURE_HEADER.lower())
    if timestamp is None or signature is None:
        raise WebhookVerificationError("not a gateway delivery: signature headers missing")
    if not verify_signature(secret, timestamp, body, signature, tolerance=tolerance, now=now):
        raise WebhookVerificationError("signature does not match, or the timestamp is outside the window")
    try:
        data = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the signed body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("uuid"), str):
        raise WebhookVerificationError("the signed body is not a TaskInfo")
    task = found.get(TASK_HEADER.lower())
    if task is not None and task != data["uuid"]:
        raise WebhookVerificationError("X-Gateway-Task does not name the task in the body")
    return TaskInfo.from_json(data)
