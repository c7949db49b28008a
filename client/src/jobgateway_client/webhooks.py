"""Receiving completion webhooks: check a delivery exactly as the gateway signs it, before acting on it.

The gateway POSTs the task's TaskInfo with `X-Gateway-Timestamp: <unix seconds>`,
`X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` (the client's first
secret), `X-Gateway-Signatures: sha256=<hex>[,sha256=<hex>]` (one per secret: two while the secret is
being rotated) and `X-Gateway-Task: <uuid>`; the secrets are the client's `webhooks.secrets.<client_id>`
in the gateway's .secrets.json. Verify the raw bytes received (not JSON parsed and dumped again), compare
in constant time, and refuse a timestamp outside the window (a replayed old delivery). A delivery is
genuine when any signature it carries is one of the secrets' you hold: hold the old and the new secret
while rotating, and either alone verifies. Deliveries are at least once: act idempotently on the task's
uuid."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from jobgateway_client.errors import WebhookVerificationError
from jobgateway_client.models import TaskInfo

TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"
SIGNATURES_HEADER = "X-Gateway-Signatures"
TASK_HEADER = "X-Gateway-Task"
TOLERANCE = 300.0  # seconds a delivery's timestamp may be from now
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
MAX_SIGNATURES = 8  # the gateway sends two at most; a header with more is not its
Secrets = str | bytes | Sequence[str | bytes]


class Headers(Protocol):
    """A request's headers: a dict, or a framework's headers object (http.server's, Flask's, Starlette's)."""

    def items(self) -> Iterable[tuple[str, Any]]: ...


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value the gateway sends for `body` at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def parse_signatures(value: str) -> list[str]:
    """The `sha256=<hex>` signatures of either signature header's value (one, or several joined by
    commas, spaces around them allowed); ValueError if any part is not one, or there are none or too many."""
    if not isinstance(value, str):
        raise ValueError("not a header value")
    parts = [part.strip() for part in value.split(",")]
    if len(parts) > MAX_SIGNATURES or not all(_SIGNATURE.fullmatch(part) for part in parts):
        raise ValueError("not a list of sha256=<hex> signatures")
    return parts


def verify_signature(secret: Secrets, timestamp: str, body: bytes, signature: str, *,
                     tolerance: float = TOLERANCE, now: float | None = None) -> bool:
    """True if `signature` (either header's value) holds the gateway's signature for `body` at
    `timestamp` with one of the secrets given (one, or a list of them while rotating) and `timestamp`
    is within `tolerance` seconds of `now` (default: the clock). Every secret is compared against every
    signature, each in constant time, so the time taken does not tell which, or where, one differs."""
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        return False
    try:
        given = [part.encode() for part in parse_signatures(signature)]
    except ValueError:
        return False
    held = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    fresh = abs((time.time() if now is None else now) - int(timestamp)) <= tolerance
    expected = [sign(key, int(timestamp), body).encode() for key in held]
    matches = [hmac.compare_digest(mine, theirs) for mine in expected for theirs in given]
    return any(matches) and fresh


def verify_delivery(secret: Secrets, headers: Headers, body: bytes, *,
                    tolerance: float = TOLERANCE, now: float | None = None) -> TaskInfo:
    """The delivered TaskInfo, once its headers and raw `body` check out; WebhookVerificationError
    (answer 400/401, do not act) otherwise. `secret`: the client's secret, or a list of its secrets
    while rotating (any one matching is enough). `headers`: any mapping of the request's headers,
    matched without regard to case (a framework's headers object, or a plain dict). The signatures
    checked are X-Gateway-Signatures', or X-Gateway-Signature's when a delivery has only that one (a
    gateway older than secret rotation)."""
    found = {str(name).lower(): str(value) for name, value in headers.items()}
    timestamp = found.get(TIMESTAMP_HEADER.lower())
    signature = found.get(SIGNATURES_HEADER.lower(), found.get(SIGNATURE_HEADER.lower()))
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
