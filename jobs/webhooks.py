"""Completion webhooks as both sides know them: the queue and task that deliver them, the client's
signing secrets, and the signatures (HMAC-SHA256 over "<timestamp>.<raw body>", like Stripe's).

A client has one secret, or two while it rotates them (`webhooks.secrets.<client_id>`: a string, or a
list of at most two, oldest first). A delivery carries the first secret's signature in
SIGNATURE_HEADER, exactly as before rotation existed, so a receiver that checks that header with one
secret keeps working; and every secret's signature, in the configured order, in SIGNATURES_HEADER
(`sha256=<hex>,sha256=<hex>`), which a receiver holding either secret can check."""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

QUEUE = "webhooks"
TASK_NAME = "gateway.deliver_webhook"
# A delivery's headers: when it was signed (unix seconds), the signature, and the task it is about. The
# client library (client/, a package of its own that imports nothing of ours) spells them again.
# SIGNATURES_HEADER holds one `sha256=<hex>` per secret, joined by commas (hex holds no comma).
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"
SIGNATURES_HEADER = "X-Gateway-Signatures"
TASK_HEADER = "X-Gateway-Task"
# One delivery — connect, send, and read the answer — ends within DEADLINE seconds, and reads at most
# MAX_RESPONSE_BYTES of the answer's body: a slow or huge receiver holds a webhook worker this long and
# this much at most. The task's own time limits (celeryconfig.py) are a backstop around it.
DEADLINE = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
SOFT_TIME_LIMIT = DEADLINE + 10
TIME_LIMIT = DEADLINE + 20


MAX_SECRETS = 2  # settings/secrets.schema.json says it again (maxItems)


def secrets_for(secrets: Mapping[str, Any], client_id: str) -> tuple[str, ...]:
    """The client's signing secrets, first one first: `webhooks.secrets.<client_id>` from .secrets.json
    (one string, or a list of up to MAX_SECRETS while rotating); empty if it has none."""
    found = ((secrets.get("webhooks") or {}).get("secrets") or {}).get(client_id)
    if not found:
        return ()
    return (found,) if isinstance(found, str) else tuple(found)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_headers(secrets: Sequence[str], timestamp: int, body: bytes) -> dict[str, str]:
    """Both signature headers of a delivery: the first secret's alone, and every secret's."""
    signed = [sign(secret, timestamp, body) for secret in secrets]
    return {SIGNATURE_HEADER: signed[0], SIGNATURES_HEADER: ",".join(signed)}


def verify(secrets: str | Sequence[str], timestamp: str, body: bytes, signature: str, tolerance: float = 300) -> bool:
    """What a receiver does: recompute with each secret it holds, compare each against each signature
    of either header's value in constant time, refuse stale timestamps (replays)."""
    held = (secrets,) if isinstance(secrets, str) else tuple(secrets)
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance
    except ValueError:
        return False
    given = [part.strip() for part in signature.split(",")]
    matches = [hmac.compare_digest(sign(secret, int(timestamp), body), candidate)
               for secret in held for candidate in given]
    return fresh and any(matches)
