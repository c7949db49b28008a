"""Idempotent submits (SPEC §8): an `Idempotency-Key` header or an `ExternalId` names at most one task
per client. The claim is checked and written inside the save script (gateway/submission/publishing.py), so
concurrent duplicates queue exactly one task."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gateway.submission.publishing import Idempotency
from jobs.keys import IDEMPOTENCY_PREFIX

HEADER = "Idempotency-Key"


def claim(owner: str, data: Mapping[str, Any], header: str | None) -> Idempotency | None:
    """The header wins over ExternalId; both are scoped to the client (hashed, so any text is a safe key)."""
    if header:
        name = "key:" + header
    elif data.get("ExternalId"):
        name = "ext:" + data["ExternalId"]
    else:
        return None
    return Idempotency(key(owner, name), body_hash(data))


def external_id_key(owner: str, external_id: str) -> str:
    return key(owner, "ext:" + external_id)


def key(owner: str, name: str) -> str:
    return IDEMPOTENCY_PREFIX + hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()


def body_hash(data: Mapping[str, Any]) -> str:
    canonical = json.dumps({k: data.get(k) for k in ("type", "upload", "ExternalId", "callback_url")},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
