"""The submit body as the OpenAPI document shows it: one branch per configured job type, with that
type's own payload schema and the callback URLs this deployment admits (gateway/submission/callbacks.py)."""
from __future__ import annotations

import json
from typing import Any

from gateway.submission.callbacks import callback_pattern
from gateway.submission.scheduling import MAX_RUN_AT_LENGTH, max_delay
from settings import Settings, resolve_schema_path


def submit_document(settings: Settings) -> dict[str, Any]:
    """The submit body as OpenAPI shows it: one branch per configured job type, whose `upload` is that
    type's own JSON Schema (2020-12, which OpenAPI 3.1 embeds as is)."""
    branches = []
    for name, job in sorted(settings.config["jobs"].items()):
        upload = json.loads(resolve_schema_path(job["schema"]).read_text())
        upload.pop("$schema", None)
        upload.pop("$id", None)
        branches.append({"type": "object", "additionalProperties": False, "required": ["type", "upload"],
                         "properties": {"type": {"const": name}, "upload": upload,
                                        "ExternalId": {"type": ["string", "null"], "maxLength": 256},
                                        "callback_url": callback_document(settings),
                                        **delay_document(settings)},
                         "not": NOT_BOTH})
    return {"oneOf": branches}


def callback_document(settings: Settings) -> dict[str, Any]:
    """callback_url as the gateway checks it (gateway/submission/callbacks.py): the allowed hosts' pattern; null
    only when no host is allowed. The client also needs a webhook secret, which no schema can show."""
    allowed = settings.config["webhooks"]["allowed_hosts"]
    if not allowed:
        return {"type": "null", "description": "No callback host is allowed by this deployment"}
    return {"type": ["string", "null"], "maxLength": 2048, "pattern": callback_pattern(allowed),
            "description": "http(s) URL on an allowed host (webhooks.allowed_hosts); the client needs a webhook secret"}


# delay_seconds and run_at both given (neither null) is a 400.
NOT_BOTH = {"required": ["delay_seconds", "run_at"],
            "properties": {"delay_seconds": {"type": "number"}, "run_at": {"type": "string"}}}


def delay_document(settings: Settings) -> dict[str, Any]:
    """delay_seconds and run_at, one of them at most (gateway/submission/scheduling.py)."""
    longest = max_delay(settings)
    return {"delay_seconds": {"type": ["number", "null"], "minimum": 0, "maximum": longest,
                              "description": "Run the job this many seconds from now, once (at most limits.max_delay, "
                                             "and never past results.expires); not with run_at"},
            "run_at": {"type": ["string", "null"], "format": "date-time", "maxLength": MAX_RUN_AT_LENGTH,
                       "description": "Run the job once at this time (ISO 8601 with a UTC offset or Z; a time "
                                      "already past runs at once); not with delay_seconds"}}
