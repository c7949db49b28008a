"""marshmallow request and response schemas: the exact field names of SPEC §2. No I/O here.

The OpenAPI document is generated from these and the route declarations (gateway/http/openapi.py); the
submit body's document is built from the job catalogue's payload schemas (gateway/submission/document.py)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from jobs.status import STATUSES
from jobs.taskinfo import TaskInfo, TaskRow
from settings import Settings

__all__ = ["TaskInfo", "TaskRow"]  # re-exported: the API's TaskInfo is the one the webhook task sends too


class SubmitRequest(Schema):
    ExternalId = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=256))
    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    upload = fields.Dict(required=True)
    callback_url = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2048))
    # Checked against the configured bounds by gateway/submission/scheduling.py (the route's check).
    delay_seconds = fields.Raw(load_default=None, allow_none=True)
    run_at = fields.Raw(load_default=None, allow_none=True)


class SubmitResponse(Schema):
    ExternalId = fields.String(attribute="external_id", allow_none=True)
    type = fields.String()
    uuid = fields.String()
    created = fields.Function(lambda record: record.created.isoformat())


class TaskInfoQuery(Schema):
    taskid = fields.String(required=True)


class TaskListQuery(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    type = fields.String(validate=validate.Length(min=1, max=64))
    ExternalId = fields.String(validate=validate.Length(min=1, max=256))
    created_after = fields.AwareDateTime(default_timezone=UTC)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=200))
    client_id = fields.String(validate=validate.Length(min=1, max=256))


class TaskList(Schema):
    tasks = fields.List(fields.Nested(TaskRow))
    next_cursor = fields.String(allow_none=True)


class JobResult(Schema):
    """GET /tasks/<uuid>/result: an image job's image (image/png, image/jpeg or image/webp), any other
    job's result as JSON (any object). No fields: the route answers with the bytes themselves."""

    class Meta:
        unknown = INCLUDE


class Status(Schema):
    """/health and /ping."""

    message = fields.String()
    code = fields.Integer()


class Draining(Schema):
    """POST /ops/drain: when the drain began and when submits are refused from (UTC)."""

    draining = fields.Boolean()
    since = fields.DateTime()
    refuse_submits_at = fields.DateTime()


class IndexLinks(Schema):
    docs = fields.String(required=True, metadata={"description": "The documentation page (Swagger UI)"})
    openapi = fields.String(required=True, metadata={"description": "The OpenAPI 3.1 document"})
    health = fields.String(required=True, metadata={"description": "Readiness: 200, or 503 naming what is down"})


class Index(Schema):
    """GET /: what this is and where to start."""

    name = fields.String(required=True)
    version = fields.String(required=True, metadata={"description": "The API's version (the document's info.version)"})
    links = fields.Nested(IndexLinks, required=True)


class Error(Schema):
    code = fields.Integer(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    uuid = fields.String(metadata={"description": "409: the task the idempotency key or the request names"})
    reason = fields.String(metadata={"description": "409 of the HTTP worker API: why the lease is no longer the "
                                                    "caller's (expired, cancelled, timed_out, finished)"})


# --- ops ------------------------------------------------------------------------------------------

class QueueState(Schema):
    name = fields.String()
    depth = fields.Integer()
    oldest_age_seconds = fields.Float(allow_none=True)


class Queues(Schema):
    queues = fields.List(fields.Nested(QueueState))


class WorkerState(Schema):
    name = fields.String()
    kind = fields.String(metadata={"description": "celery, or http: a worker of the HTTP worker API, seen asking for "
                                                  "a job or heartbeating one lately"})
    queues = fields.List(fields.String())
    active = fields.Integer(allow_none=True, metadata={"description": "jobs running; null for an HTTP worker"})


class Workers(Schema):
    workers = fields.List(fields.Nested(WorkerState))
    waited_seconds = fields.Float()


class CountsQuery(Schema):
    """`hours` is checked against the retention by the route (it is configuration): counts_document."""

    hours = fields.Integer(validate=validate.Range(min=1))


def retention_hours(settings: Settings) -> int:
    """The longest window /ops/tasks/counts reads, and its default: the hours results are kept."""
    return max(1, settings.config["results"]["expires"] // 3600)


def counts_document(settings: Settings) -> dict[str, Any]:
    return {"hours": {"type": "integer", "minimum": 1, "maximum": retention_hours(settings),
                      "description": "Window in hours, newest first (default and most: the retention)"}}


class Counts(Schema):
    window_hours = fields.Integer()
    totals = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_type = fields.Dict(keys=fields.String(), values=fields.Dict())


class RevokeRequest(Schema):
    terminate = fields.Boolean(load_default=False)


class Revoked(Schema):
    uuid = fields.String()
    revoked = fields.Boolean()
    terminate = fields.Boolean()


class DeadLetter(Schema):
    uuid = fields.String()
    type = fields.String(allow_none=True)
    owner = fields.String(allow_none=True)
    attempts = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    failed_at = fields.Float(allow_none=True)


class DeadLetters(Schema):
    deadletters = fields.List(fields.Nested(DeadLetter))


class Requeued(Schema):
    uuid = fields.String()
    requeued = fields.Boolean()


class ScheduleState(Schema):
    name = fields.String()
    type = fields.String()
    owner = fields.String(metadata={"description": "the client_id whose task each run is"})
    every = fields.Float(allow_none=True, metadata={"description": "seconds between runs; null for a cron schedule"})
    cron = fields.String(allow_none=True, metadata={"description": "minute hour day-of-month month day-of-week"})
    timezone = fields.String(metadata={"description": "the IANA time zone the cron fields are read in"})
    last_run_at = fields.DateTime(allow_none=True, metadata={"description": "when a scheduler last fired it; null: never"})
    next_run_at = fields.DateTime(allow_none=True, metadata={
        "description": "when the next tick is due (past: overdue, no scheduler running); null: no scheduler saw it yet"})
    last_task = fields.String(allow_none=True, metadata={"description": "the uuid of the task its latest tick made"})


class SchedulerState(Schema):
    lock_held = fields.Boolean(metadata={"description": "a scheduler holds the lock, so one is firing the schedules"})
    lock_expires_in = fields.Float(allow_none=True, metadata={
        "description": "seconds until the lock lapses unless its holder renews it"})


class Schedules(Schema):
    scheduler = fields.Nested(SchedulerState)
    schedules = fields.List(fields.Nested(ScheduleState))


# --- the HTTP worker API (system identity only) -----------------------------------------------------

WORKER_NAME = validate.Regexp(r"^[A-Za-z0-9@._:-]{1,100}$", error="1 to 100 of A-Z a-z 0-9 @ . _ : -")
TOKEN = validate.Length(min=1, max=100)
REPORTABLE_CODES = (1, 2, 5)


class LeaseRequest(Schema):
    worker = fields.String(required=True, validate=WORKER_NAME,
                           metadata={"description": "The worker's name: task events and logs carry it"})
    wait = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=20),
                        metadata={"description": "Seconds to wait for a job when none is ready (a long poll)"})


class LeaseToken(Schema):
    token = fields.String(required=True)
    expires_at = fields.Function(lambda lease: _iso(lease.expires_at), required=True,
                                 metadata={"description": "When the lease lapses without a heartbeat"})
    expires_in = fields.Float(required=True, metadata={"description": "The same, in seconds from now (for a worker "
                                                                      "whose clock is not the gateway's)"})


class LeaseResponse(Schema):
    uuid = fields.String(required=True)
    type = fields.Function(lambda lease: lease.job.name, required=True)
    upload = fields.Dict(required=True)
    attempt = fields.Integer(required=True, metadata={"description": "1, or more once a worker holding it died"})
    time_limit = fields.Function(lambda lease: lease.job.time_limit, required=True,
                                 metadata={"description": "Seconds the job may run, from the lease; past it, it ends "
                                                          "timed out (code 5)"})
    lease = fields.Function(lambda lease: LeaseToken().dump(lease), required=True)
    traceparent = fields.String(allow_none=True, metadata={
        "description": "The job's W3C traceparent, for the worker's own spans to continue the job's trace "
                       "(docs/workers.md); null when the gateway does not trace"})


class ProgressReport(Schema):
    percent = fields.Float(required=True, validate=validate.Range(min=0, max=100))
    stage = fields.String(load_default="", validate=validate.Length(max=100))


class HeartbeatRequest(Schema):
    token = fields.String(required=True, validate=TOKEN)
    progress = fields.Nested(ProgressReport, load_default=None, allow_none=True)


class HeartbeatResponse(Schema):
    expires_at = fields.Function(lambda lease: _iso(lease["expires_at"]), required=True)
    expires_in = fields.Float(required=True, metadata={"description": "The same, in seconds from now"})


class ReportedError(Schema):
    code = fields.Integer(required=True, validate=validate.OneOf(REPORTABLE_CODES),
                          metadata={"description": "1 failed, 2 bad content (the message reaches the client), 5 timed out"})
    message = fields.String(load_default="", validate=validate.Length(max=1000))


class FinishRequest(Schema):
    token = fields.String(required=True, validate=TOKEN)
    result = fields.Dict(metadata={"description": "The job's result (checked against the type's result schema)"})
    error = fields.Nested(ReportedError)

    @validates_schema
    def _one_outcome(self, data: dict[str, Any], **_: Any) -> None:
        if ("result" in data) == ("error" in data):
            raise ValidationError("Exactly one of result and error.", "result")


class Finished(Schema):
    uuid = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "done or error, as /taskinfo will say"})


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
