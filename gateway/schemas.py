"""marshmallow request and response schemas: the exact field names of SPEC §2. No I/O here."""
from __future__ import annotations

from datetime import timezone

from marshmallow import Schema, fields, validate


class SubmitRequest(Schema):
    ExternalId = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=256))
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    upload = fields.Dict(required=True)
    callback_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2048))


class SubmitResponse(Schema):
    ExternalId = fields.String(attribute="external_id", allow_none=True)
    type = fields.String()
    uuid = fields.String()
    created = fields.Function(lambda record: record.created.isoformat())


class TaskInfoQuery(Schema):
    taskid = fields.String(required=True)


class TaskListQuery(Schema):
    status = fields.String(validate=validate.OneOf(["created", "pending", "done", "error"]))
    type = fields.String(validate=validate.Length(min=1, max=64))
    ExternalId = fields.String(validate=validate.Length(min=1, max=256))
    created_after = fields.AwareDateTime(default_timezone=timezone.utc)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))
    client_id = fields.String(validate=validate.Length(min=1, max=256))


class CancelRequest(Schema):
    terminate = fields.Boolean(load_default=False)


class TaskInfo(Schema):
    uuid = fields.String()
    type = fields.String()
    status = fields.String()
    created = fields.String()
    processed = fields.String(allow_none=True)
    message = fields.String()
    code = fields.Integer()
    result = fields.Raw(allow_none=True)
    progress = fields.Dict()


class TaskList(Schema):
    tasks = fields.List(fields.Nested(TaskInfo))
    next_cursor = fields.String(allow_none=True)


class Error(Schema):
    code = fields.Integer(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    uuid = fields.String(metadata={"description": "409: the task the idempotency key or the request names"})
