"""POST /submit, GET /taskinfo, GET /tasks, DELETE /tasks/<uuid> (SPEC §2): each route declares its
contract; submission checks, idempotency and listing live in their own modules."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, request

from gateway.access import decorators as auth
from gateway.health.drain import refused_while_draining
from gateway.http.contract import body, declare, query, returns
from gateway.http.errors import Conflict, Forbidden, PayloadTooLarge, TaskNotFound
from gateway.http.schemas import (
    JobResult,
    SubmitRequest,
    SubmitResponse,
    TaskInfoQuery,
    TaskList,
    TaskListQuery,
)
from gateway.services import services
from gateway.submission import callbacks, idempotency, scheduling
from gateway.submission.document import submit_document
from gateway.submission.listing import Listing
from jobs import results
from jobs.ids import canonical_uuid
from jobs.record import TaskRecord
from jobs.status import DONE
from jobs.taskinfo import TaskInfo

bp = Blueprint("tasks", __name__)
LOCATION = ("Location",)


def submission_errors(payload: Mapping[str, Any]) -> dict[str, list[str]]:
    """Domain checks beyond the request schema: the upload against its type (413 first if its content
    is over the type's limit), and the callback URL."""
    errors: dict[str, list[str]] = {}
    name = payload.get("type")
    job = services().catalogue.get(name) if isinstance(name, str) else None
    if isinstance(name, str) and job is None:
        errors["type"] = [f"Unknown job type. Known: {', '.join(services().catalogue.names)}."]
    if job is not None and isinstance(payload.get("upload"), dict):
        if job.content_too_large(payload["upload"]):
            raise PayloadTooLarge(f"content exceeds the limit of {job.max_content_bytes} bytes for {job.name}")
        errors.update(job.upload_errors(payload["upload"]))
    callback = payload.get("callback_url")
    if isinstance(callback, str):
        problem = callbacks.callback_problem(callback, services().settings, auth.current_identity().client_id)
        if problem:
            errors["callback_url"] = [problem]
    errors.update(scheduling.due_errors(payload, services().settings))
    return errors


@bp.post("/submit")
@declare("Submit a job", tag="jobs", errors=(409,), headers=(idempotency.HEADER,))
@returns(202, SubmitResponse, "Accepted and queued", headers=LOCATION)
@returns(200, SubmitResponse, "Idempotent repeat: the original task", headers=LOCATION)
@refused_while_draining
@auth.login_required()
@auth.rate_limited("submit", deferred=True)
@auth.job_type_allowed("type")
@body(SubmitRequest, check=submission_errors, document=submit_document)
def submit(data: dict[str, Any]) -> tuple[TaskRecord, int, dict]:
    """202 for a new task (queued, or with `delay_seconds` / `run_at` held until due); with an ExternalId or
    Idempotency-Key already used by this client, 200 and the original task when the body is the same, 409
    naming it when the body differs."""
    identity = auth.current_identity()
    submitted = services().dispatcher.submit(
        services().catalogue[data["type"]], data["upload"], data["ExternalId"], identity.client_id,
        idempotency.claim(identity.client_id, data, request.headers.get(idempotency.HEADER)),
        data.get("callback_url"), auth.access().rate_limits.max_unfinished(identity.role, identity.client_id),
        rate=auth.take_rate_check(), due=scheduling.due_at(data))
    if not submitted.same_body:
        raise Conflict("This idempotency key already names a task with a different body",
                       extra={"uuid": submitted.record.uuid})
    return submitted.record, 202 if submitted.new else 200, {"Location": f"/taskinfo?taskid={submitted.record.uuid}"}


@bp.get("/taskinfo")
@declare("State and result of a task", tag="tasks", errors=(404,))
@returns(200, TaskInfo, "The task")
@auth.login_required()
@auth.rate_limited("read", deferred=True)
@query(TaskInfoQuery)
def taskinfo(args: dict[str, Any]) -> dict[str, Any]:
    """One round trip: the rate check and the reads together (gateway/submission/reading.py)."""
    canonical = canonical_uuid(args["taskid"])
    found = services().reader.info(canonical, auth.take_rate_check()) if canonical else None
    if found is None or not auth.may_read(found[0]):
        raise TaskNotFound()
    return found[1]


@bp.get("/tasks/<task_id>/result")
@declare("The result of a done task: an image job's image bytes, any other job's JSON result", tag="tasks", errors=(404, 409))
@returns(200, JobResult, "image/png, image/jpeg or image/webp for resize_image and water_marks; application/json "
                         "otherwise; Content-Length always set", content_type="*/*")
@auth.login_required()
@auth.rate_limited("read")
def task_result(task_id: str) -> Response:
    """The whole result, however large, read from Redis a chunk at a time: /taskinfo inlines only
    small ones (`results.max_inline_bytes`) and points larger ones here (`result_url`)."""
    record, meta = _readable(task_id)
    info = services().reader.status(record, meta)
    if info["status"] != DONE:
        raise Conflict(f"Task is {info['status']}: only a done task has a result", extra={"uuid": record.uuid})
    served = results.served(record.uuid, info["result"], services().store.redis)
    if served is None:
        raise TaskNotFound("Task result expired")
    return Response(served.chunks, status=200, mimetype=served.media_type,
                    headers={"Content-Length": str(served.length)}, direct_passthrough=True)


@bp.get("/tasks")
@declare("The caller's tasks, newest first, without their results (admin: any client's, with client_id)", tag="tasks")
@returns(200, TaskList, "A page")
@auth.login_required()
@auth.rate_limited("read")
@query(TaskListQuery)
def list_tasks(args: dict[str, Any]) -> dict[str, Any]:
    identity = auth.current_identity()
    owner = args.get("client_id") or identity.client_id
    if owner != identity.client_id and identity.role != "admin":
        raise Forbidden("Only admin may list another client's tasks")
    listing = Listing(services().store, auth.may_read, args, services().settings.config["results"]["expired_grace"])
    if "ExternalId" in args:
        found = services().store.claimed(idempotency.external_id_key(owner, args["ExternalId"]))
        return {"tasks": listing.matching([(found, None)])[0] if found else [], "next_cursor": None}
    tasks, cursor = listing.page(owner, args.get("cursor"), args["limit"])
    return {"tasks": tasks, "next_cursor": cursor}


@bp.delete("/tasks/<task_id>")
@declare("Cancel a task (owner or admin)", tag="tasks", errors=(404, 409))
@returns(202, TaskInfo, "Cancelled")
@auth.login_required()
@auth.rate_limited("submit")
def cancel(task_id: str) -> tuple[dict[str, Any], int]:
    """A queued task never runs, a running one is revoked (terminated only where the job type allows
    it). Repeating it is harmless; a task that already finished is a 409 (`Dispatcher.cancel`)."""
    record, meta = _readable(task_id)
    job = services().catalogue.get(record.type)
    services().dispatcher.cancel(record, services().reader.status(record, meta),
                                 terminate=bool(job and job.cancel_terminates))
    cancelled, meta = services().store.load(record.uuid)
    assert cancelled is not None  # read a moment ago; cancelling keeps the record
    return services().reader.describe(cancelled, meta), 202


def _readable(task_id: str) -> tuple[TaskRecord, dict[str, Any] | None]:
    """The record and meta of a task the caller may read; one identical 404 for everything else."""
    canonical = canonical_uuid(task_id)
    record, meta = services().store.load(canonical) if canonical else (None, None)
    if record is None or not auth.may_read(record.owner):
        raise TaskNotFound()
    return record, meta
