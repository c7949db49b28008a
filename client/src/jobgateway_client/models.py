"""What the gateway answers, as typed values: TaskInfo (GET /taskinfo, the rows of GET /tasks, a webhook's
body), the answer to a submit, a result, and /health. Each keeps the JSON it was read from (`raw`), so
nothing the gateway adds later is lost."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any, Final

CREATED: Final = "created"
PENDING: Final = "pending"
DONE: Final = "done"
ERROR: Final = "error"
FINISHED: Final = frozenset({DONE, ERROR})


class ErrorCode(IntEnum):
    """TaskInfo `code` of a task in status `error`: the gateway's stable table, never renumbered."""

    NONE = 0
    FAILED = 1
    BAD_CONTENT = 2
    EXPIRED = 3
    CANCELLED = 4
    TIMED_OUT = 5
    WORKER_LOST = 6
    RETRIES_EXHAUSTED = 7


def error_name(code: int) -> str:
    """`bad content` for 2; `code 42` for a code this client does not know."""
    try:
        return ErrorCode(code).name.lower().replace("_", " ")
    except ValueError:
        return f"code {code}"


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Progress:
    """What a running job last reported: `percent` (0-100) and `stage` (e.g. `resizing`)."""

    percent: float
    stage: str


@dataclass(frozen=True)
class TaskInfo:
    """A task's state. `result` is the job's output once `done` (absent from listing rows); a result too
    large to inline is its small fields plus `result_url` (read it with `result()`). `progress` is set
    while `pending` if the job reports it."""

    uuid: str
    type: str
    status: str
    created: datetime | None
    processed: datetime | None
    message: str
    code: int
    result: Any = None
    progress: Progress | None = None
    scheduled_for: datetime | None = None  # a delayed job's time: `created` until then
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskInfo:
        progress = data.get("progress")
        return cls(
            uuid=str(data.get("uuid", "")), type=str(data.get("type", "")), status=str(data.get("status", "")),
            created=_time(data.get("created")), processed=_time(data.get("processed")),
            message=str(data.get("message") or ""), code=int(data.get("code") or 0), result=data.get("result"),
            progress=Progress(float(progress.get("percent", 0)), str(progress.get("stage", "")))
            if isinstance(progress, Mapping) else None,
            scheduled_for=_time(data.get("scheduled_for")), raw=dict(data))

    @property
    def finished(self) -> bool:
        """`done` or `error`: the state will not change any more."""
        return self.status in FINISHED

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def failed(self) -> bool:
        return self.status == ERROR

    @property
    def result_url(self) -> str | None:
        """Where a result too large to inline is served (`/tasks/<uuid>/result`), else None."""
        url = self.result.get("result_url") if isinstance(self.result, Mapping) else None
        return url if isinstance(url, str) else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the gateway sent."""
        return dict(self.raw)


@dataclass(frozen=True)
class Submitted:
    """The gateway's answer to a submit. `new` is False when the idempotency key (or ExternalId) already
    named this task: nothing new was queued. `idempotency_key` is the key the submit carried (None when
    the ExternalId served as the key)."""

    uuid: str
    type: str
    external_id: str | None
    created: datetime | None
    new: bool
    idempotency_key: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], new: bool, idempotency_key: str | None) -> Submitted:
        external_id = data.get("ExternalId")
        return cls(uuid=str(data["uuid"]), type=str(data.get("type", "")),
                   external_id=external_id if isinstance(external_id, str) else None,
                   created=_time(data.get("created")), new=new, idempotency_key=idempotency_key, raw=dict(data))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class Result:
    """A done task's whole output from GET /tasks/<uuid>/result. An image job's is the image itself
    (`media_type` image/png, image/jpeg or image/webp); any other job's is JSON (`json()`). Saved to a
    file, `path` is set and `content` is None; otherwise `content` holds the bytes."""

    uuid: str
    media_type: str
    size: int
    content: bytes | None = field(default=None, repr=False)
    path: Path | None = None

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    def json(self) -> Any:
        """The JSON result (of a job that is not an image job)."""
        data = self.content if self.content is not None else self.path.read_bytes() if self.path else b""
        return json.loads(data)


@dataclass(frozen=True)
class Health:
    """GET /health: `ok` with 200; otherwise `message` names what is down (broker, result backend, vault)."""

    ok: bool
    message: str
    code: int
    status: int
