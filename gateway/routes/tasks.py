"""POST /submit and GET /taskinfo (SPEC §2)."""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from flask import Blueprint, request

from gateway import auth, webhooks
from gateway.contract import body, query
from gateway.errors import Conflict, Forbidden, TaskNotFound, ValidationFailed
from gateway.extensions import services
from gateway.ratelimit import rate_limited
from gateway.schemas import SubmitRequest, SubmitResponse, TaskInfo, TaskInfoQuery, TaskListQuery
from gateway.status import ErrorCode, describe
from gateway.store import IDEMPOTENCY_PREFIX, Idempotency

bp = Blueprint("tasks", __name__)
SCAN_BUDGET = 1000  # index entries one listing request may examine while filtering
submit_response, taskinfo_response = SubmitResponse(), TaskInfo()


def submission_errors(payload: Mapping[str, Any]) -> dict[str, list[str]]:
    """Domain checks beyond the request schema: the upload against its type, and the callback."""
    errors = upload_errors(payload)
    callback = payload.get("callback_url")
    if isinstance(callback, str):
        problem = webhooks.callback_problem(callback, services().settings, auth.current_identity().client_id)
        if problem:
            errors["callback_url"] = [problem]
    return errors


def upload_errors(payload: Mapping[str, Any]) -> dict[str, list[str]]:
    """Payload-schema errors of a submission (413 first if its content is over the type's limit)."""
    job = services().catalogue.get(payload.get("type")) if isinstance(payload.get("type"), str) else None
    if job is None:
        known = isinstance(payload.get("type"), str) and "type" in payload
        return {"type": [f"Unknown job type. Known: {', '.join(services().catalogue.names)}."]} if known else {}
    upload = payload.get("upload")
    if not isinstance(upload, dict):
        return {}
    job.check_size(upload)
    return job.upload_errors(upload)


@bp.post("/submit")
@auth.login_required()
@rate_limited("submit")
@auth.job_type_allowed("type")
@body(SubmitRequest, check=submission_errors)
def submit(data: dict[str, Any]) -> tuple[dict, int, dict]:
    """202 for a new task; with an ExternalId or Idempotency-Key already used by this client, 200 and
    the original task when the body is the same, 409 naming it when the body differs."""
    job = services().catalogue[data["type"]]
    identity = auth.current_identity()
    owner = identity.client_id
    submitted = services().dispatcher.submit(job, data["upload"], data["ExternalId"], owner,
                                             _idempotency(owner, data), data.get("callback_url"),
                                             services().rate_limits.max_unfinished(identity.role, owner))
    record = submitted.record
    location = {"Location": f"/taskinfo?taskid={record.uuid}"}
    if submitted.new:
        return submit_response.dump(record), 202, location
    if not submitted.same_body:
        raise Conflict("This idempotency key already names a task with a different body", extra={"uuid": record.uuid})
    return submit_response.dump(record), 200, location


def _idempotency(owner: str, data: dict[str, Any]) -> Idempotency | None:
    """The header wins over ExternalId; both are scoped to the client (hashed, so any text is a safe key)."""
    header = request.headers.get("Idempotency-Key")
    if header:
        name = "key:" + header
    elif data["ExternalId"]:
        name = "ext:" + data["ExternalId"]
    else:
        return None
    return Idempotency(idempotency_key(owner, name), _body_hash(data))


def idempotency_key(owner: str, name: str) -> str:
    return IDEMPOTENCY_PREFIX + hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()


def _body_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps({k: data.get(k) for k in ("type", "upload", "ExternalId", "callback_url")},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@bp.get("/taskinfo")
@auth.login_required()
@rate_limited("read")
@query(TaskInfoQuery)
def taskinfo(args: dict[str, Any]) -> dict:
    record, meta = _readable(args["taskid"])
    return taskinfo_response.dump(_describe(record, meta))


@bp.get("/tasks")
@auth.login_required()
@rate_limited("read")
@query(TaskListQuery)
def list_tasks(args: dict[str, Any]) -> dict:
    """The caller's tasks (admin: any client's, with client_id), newest first, cursor-paginated."""
    identity = auth.current_identity()
    owner = args.get("client_id") or identity.client_id
    if owner != identity.client_id and identity.role != "admin":
        raise Forbidden("Only admin may list another client's tasks")
    if "ExternalId" in args:
        found = services().store.claimed(idempotency_key(owner, "ext:" + args["ExternalId"]))
        candidates = [(found, None)] if found else []
        return {"tasks": _matching(candidates, args)[0], "next_cursor": None}
    tasks, cursor = _scan(owner, _decode_cursor(args.get("cursor")), args)
    return {"tasks": tasks, "next_cursor": cursor}


def _scan(owner: str, cursor: tuple[float, str] | None, args: dict[str, Any]) -> tuple[list[dict], str | None]:
    """Walk the owner's index in batches until a page is full or the scan budget is spent."""
    limit, budget, page = args["limit"], SCAN_BUDGET, []
    created_after = args["created_after"].timestamp() if "created_after" in args else None
    while len(page) < limit and budget > 0:
        rows = services().store.page(owner, cursor, min(budget, max(limit * 2, 20)))
        if created_after is not None:
            rows = [(m, s) for m, s in rows if s > created_after]
        if not rows:
            return page, None
        budget -= len(rows)
        matched, last = _matching(rows, args, limit - len(page))
        page += matched
        cursor = last
    return page, _encode_cursor(cursor) if cursor else None


def _matching(rows: list[tuple[str, float | None]], args: dict[str, Any], want: int = 1):
    """TaskInfo bodies of `rows` that pass the filters, at most `want`; and the cursor of the last one used."""
    loaded = services().store.load_many([uuid for uuid, _ in rows])
    out, last = [], None
    for (uuid, score), (record, meta) in zip(rows, loaded):
        if len(out) == want:
            return out, last
        last = (score, uuid) if score is not None else None
        if record is None or not auth.may_read(record.owner):
            continue
        info = _describe(record, meta)
        if args.get("type", info["type"]) == info["type"] and args.get("status", info["status"]) == info["status"]:
            out.append(taskinfo_response.dump(info))
    return out, last


def _encode_cursor(cursor: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(f"{cursor[0]!r}|{cursor[1]}".encode()).decode()


def _decode_cursor(text: str | None) -> tuple[float, str] | None:
    if not text:
        return None
    try:
        score, _, uuid = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
        return float(score), str(UUID(uuid))
    except ValueError:
        raise ValidationFailed(errors={"cursor": ["Not a cursor this API returned."]}) from None


@bp.delete("/tasks/<task_id>")
@auth.login_required()
@rate_limited("submit")
def cancel(task_id: str) -> tuple[dict, int]:
    """Owner or admin: a queued task never runs, a running one is revoked (terminated only where the
    job type allows it). Repeating it is harmless; a task that already finished is a 409."""
    record, meta = _readable(task_id)
    info = _describe(record, meta)
    if info["status"] == "done" or (info["status"] == "error" and info["code"] != int(ErrorCode.CANCELLED)):
        raise Conflict("Task already finished", extra={"uuid": record.uuid})
    job = services().catalogue.get(record.type)
    services().dispatcher.cancel(record, terminate=bool(job and job.cancel_terminates))
    record, meta = services().store.load(record.uuid)
    return taskinfo_response.dump(_describe(record, meta)), 202


def _readable(task_id: str):
    """The record and meta of a task the caller may read; one identical 404 for everything else."""
    canonical = _canonical_uuid(task_id)
    record, meta = services().store.load(canonical) if canonical else (None, None)
    if record is None or not auth.may_read(record.owner):
        raise TaskNotFound()
    return record, meta


def _describe(record, meta) -> dict[str, Any]:
    grace = services().settings.config["results"]["expired_grace"]
    return describe(record, meta, datetime.now(timezone.utc), grace)


def _canonical_uuid(text: str) -> str | None:
    try:
        return str(UUID(text))
    except ValueError:
        return None
