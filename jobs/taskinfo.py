"""TaskInfo, the body of GET /taskinfo and of a completion webhook: its schema and how it is built
from a task record and Celery's result meta (jobs/status.py decides the status and code)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields
from redis import Redis

from jobs.record import TaskRecord
from jobs.results import present
from jobs.status import STATUSES, describe


class Progress(Schema):
    percent = fields.Float()
    stage = fields.String()


class TaskInfo(Schema):
    uuid = fields.String()
    type = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    created = fields.String()
    processed = fields.String(allow_none=True)
    message = fields.String()
    code = fields.Integer()
    result = fields.Raw(allow_none=True, metadata={
        "description": "The output, whole when it stores at most results.max_inline_bytes; larger, its small "
                       "fields (width, height, format, size) and result_url, where GET /tasks/{uuid}/result serves it"})
    progress = fields.Nested(Progress)
    scheduled_for = fields.String(metadata={
        "description": "A delayed job's due time (ISO 8601, UTC): status `created` until then, and its TTL "
                       "counts from it. Absent for a job queued when submitted"})


class TaskRow(TaskInfo):
    """A row of GET /tasks: TaskInfo without `result`, so a page never carries outputs (read one task's
    with /taskinfo or GET /tasks/<uuid>/result)."""

    class Meta:
        exclude = ("result",)


_schema = TaskInfo()


def task_info(record: TaskRecord, meta: dict[str, Any] | None, grace: float, redis: Redis, max_inline: int,
              now: datetime | None = None) -> dict[str, Any]:
    """The TaskInfo body, serialised, with the result as clients see it (jobs/results.py)."""
    info = describe(record, meta, now or datetime.now(UTC), grace)
    return _schema.dump(info | {"result": present(record.uuid, info["result"], redis, max_inline)})
