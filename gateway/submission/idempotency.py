"""Idempotent submits (SPEC §8): an `Idempotency-Key` header or an `ExternalId` names at most one task
per client. The claims are checked and written inside the save script (gateway/submission/publishing.py), so
concurrent duplicates queue exactly one task.

A submit carrying both makes two claims on one task, and either names it later: a retry with the
ExternalId alone, or `GET /tasks?ExternalId=`, finds a task submitted with a key too. Where one of them
already names a task, the other is bound to that task on a repeat; where they name two different tasks,
the submit is refused (409)."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gateway.submission.publishing import Idempotency
from jobs.keys import IDEMPOTENCY_PREFIX

HEADER = "Idempotency-Key"


def claim(owner: str, data: Mapping[str, Any], header: str | None) -> Idempotency | None:
    """The claims of a submit: its Idempotency-Key, then its ExternalId, whichever it has, each scoped to
    the client (hashed, so any text is a safe key); None when it has neither."""
    keys = ([key(owner, "key:" + header)] if header else []) + (
        [external_id_key(owner, data["ExternalId"])] if data.get("ExternalId") else [])
    return Idempotency(tuple(keys), body_hash(data)) if keys else None


def external_id_key(owner: str, external_id: str) -> str:
    return key(owner, "ext:" + external_id)


def key(owner: str, name: str) -> str:
    return IDEMPOTENCY_PREFIX + hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()


def body_hash(data: Mapping[str, Any]) -> str:
    fields = {k: data.get(k) for k in ("type", "upload", "ExternalId", "callback_url")}
    # When the job is due is part of the request, but only where given: hashes of earlier bodies stay valid.
    fields |= {k: data[k] for k in ("delay_seconds", "run_at") if data.get(k) is not None}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
