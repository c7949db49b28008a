"""POST /submit and GET /taskinfo (SPEC §2)."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint

from gateway import auth
from gateway.contract import body, query
from gateway.errors import TaskNotFound
from gateway.extensions import services
from gateway.schemas import SubmitRequest, SubmitResponse, TaskInfo, TaskInfoQuery
from gateway.status import describe

bp = Blueprint("tasks", __name__)
submit_response, taskinfo_response = SubmitResponse(), TaskInfo()


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
@auth.job_type_allowed("type")
@body(SubmitRequest, check=upload_errors)
def submit(data: dict[str, Any]) -> tuple[dict, int, dict]:
    job = services().catalogue[data["type"]]
    record = services().dispatcher.submit(job, data["upload"], data["ExternalId"], auth.current_identity().client_id)
    return submit_response.dump(record), 202, {"Location": f"/taskinfo?taskid={record.uuid}"}


@bp.get("/taskinfo")
@auth.login_required()
@query(TaskInfoQuery)
def taskinfo(args: dict[str, Any]) -> dict:
    task_id = _canonical_uuid(args["taskid"])
    record, meta = services().store.load(task_id) if task_id else (None, None)
    if record is None or not auth.may_read(record.owner):
        raise TaskNotFound()
    grace = services().settings.config["results"]["expired_grace"]
    return taskinfo_response.dump(describe(record, meta, datetime.now(timezone.utc), grace))


def _canonical_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
