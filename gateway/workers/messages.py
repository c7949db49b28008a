"""What a task message taken off a queue says, read the way a Celery worker reads it: a kombu envelope
(JSON) whose body is Celery's protocol 2 `[args, kwargs, embed]`, base64-encoded, and whose headers
carry the task's id and name and the gateway's own (jobs/headers.py)."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from jobs.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER


@dataclass(frozen=True)
class Delivery:
    tag: str         # kombu's delivery tag: the message's key in `unacked`
    raw: str         # the message as it sat in the queue
    uuid: str
    task: str        # the Celery task name
    job_type: str | None
    upload: Any
    headers: dict[str, Any]

    @property
    def owner(self) -> str | None:
        return self.headers.get(CLIENT_HEADER)

    @property
    def callback(self) -> str | None:
        return self.headers.get(CALLBACK_HEADER)


class Unreadable(ValueError):
    """Not a Celery protocol 2 message of the gateway's."""


def read(tag: str, raw: str) -> Delivery:
    try:
        envelope = json.loads(raw)
        headers = envelope["headers"]
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        return Delivery(tag=tag, raw=raw, uuid=str(headers["id"]), task=str(headers["task"]),
                        job_type=headers.get(JOB_TYPE_HEADER), upload=kwargs.get("upload"), headers=headers)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unreadable(exc.__class__.__name__) from None
