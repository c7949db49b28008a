"""TaskInfo, the body of GET /taskinfo and of a completion webhook: its schema and how it is built
from a task record and Celery's result meta (jobs/status.py decides the status and code)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields

from jobs.record import TaskRecord
from jobs.status import describe


class Progress(Schema):
    percent = fields.Float()
    stage = fields.String()


class TaskInfo(Schema):
    uuid = fields.String()
    type = fields.String()
    status = fields.String(metadata={"enum": ["created", "pending", "done", "error"]})
    created = fields.String()
    processed = fields.String(allow_none=True)
    message = fields.String()
    code = fields.Integer()
    result = fields.Raw(allow_none=True)
    progress = fields.Nested(Progress)


_schema = TaskInfo()


def task_info(record: TaskRecord, meta: dict[str, Any] | None, grace: float, now: datetime | None = None) -> dict[str, Any]:
    """The TaskInfo body, serialised."""
    return _schema.dump(describe(record, meta, now or datetime.now(UTC), grace))
