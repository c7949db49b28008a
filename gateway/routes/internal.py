"""The HTTP worker API (SPEC §4's `system` identity; docs/workers.md): a worker in any language leases
a job of a queue, heartbeats while it works, and finishes it, with the Celery workers' guarantees
(gateway/workers/). Every route admits the system identity only: a client role gets 403 and one audit
line, as the system identity does on every client route."""
from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from gateway.access import decorators as auth
from gateway.health.drain import refused_while_draining
from gateway.http.contract import body, declare, returns
from gateway.http.errors import Conflict, NotFound, PayloadTooLarge, TaskNotFound, ValidationFailed
from gateway.http.schemas import (
    Finished,
    FinishRequest,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaseRequest,
    LeaseResponse,
)
from gateway.services import services
from gateway.workers import endings
from gateway.workers.leasing import Refused
from jobs.ids import canonical_uuid
from jobs.status import DONE, ERROR

bp = Blueprint("internal", __name__, url_prefix="/internal")
RETRY_AFTER = ("Retry-After",)


@bp.post("/queues/<queue>/lease")
@declare("Lease the next job of a queue, waiting up to `wait` seconds for one", tag="workers", errors=(404,))
@returns(200, LeaseResponse, "A job and its lease")
@returns(204, None, "No job came within the wait (Retry-After: the request was answered before its wait, "
                    "as every long poll of this gateway process was taken)", headers=RETRY_AFTER)
@refused_while_draining
@auth.login_required(system=True)
@body(LeaseRequest)
def lease(data: dict[str, Any], queue: str) -> Any:
    workers = services().http_workers
    if queue not in services().catalogue.job_queues:
        raise NotFound(f"Unknown queue. Known: {', '.join(services().catalogue.job_queues)}.")
    began = time.monotonic()
    leased = workers.lease(queue, data["worker"], data["wait"], gone=_caller_gone(request.environ.get("gunicorn.socket")))
    if leased is None:
        early = time.monotonic() - began < data["wait"] - 0.05
        return Response(status=204, headers={"Retry-After": "1"} if early else {})
    return leased


@bp.post("/tasks/<task_id>/heartbeat")
@declare("Extend a lease, optionally reporting progress; 409 once the lease is no longer the caller's",
         tag="workers", errors=(404, 409))
@returns(200, HeartbeatResponse, "The lease's new expiry")
@auth.login_required(system=True)
@body(HeartbeatRequest)
def heartbeat(data: dict[str, Any], task_id: str) -> Any:
    uuid = _uuid(task_id)
    try:
        expires_at, expires_in = services().http_workers.heartbeat(uuid, data["token"], data.get("progress"))
        return {"expires_at": expires_at, "expires_in": expires_in}
    except Refused as refused:
        raise _refusal(uuid, refused) from None


@bp.post("/tasks/<task_id>/finish")
@declare("End a leased job with its result or an error (1 failed, 2 bad content, 5 timed out); the same call "
         "again answers the same", tag="workers", errors=(404, 409))
@returns(200, Finished, "Ended (or ended already by this call)")
@auth.login_required(system=True)
@body(FinishRequest)
def finish(data: dict[str, Any], task_id: str) -> dict[str, Any]:
    uuid = _uuid(task_id)
    workers = services().http_workers
    job = workers.job_of(uuid)
    if job is None:
        raise TaskNotFound()
    if "result" in data:
        result = data["result"]
        size = len(json.dumps(result, separators=(",", ":")))
        if size > job.bounds.max_result_bytes:
            raise PayloadTooLarge(f"result of {size} bytes exceeds the limit of {job.bounds.max_result_bytes} "
                                  f"bytes for {job.name}")
        errors = job.result_errors(result)
        if errors:
            raise ValidationFailed("The result does not match the job type's result schema", errors=errors)
        outcome = endings.done(job.name, workers.set_aside(uuid, result), 0.0)
    else:
        outcome = endings.reported(job.name, data["error"]["code"], data["error"]["message"])
    try:
        workers.finish(uuid, data["token"], job, outcome)
    except Refused as refused:
        raise _refusal(uuid, refused) from None
    return {"uuid": uuid, "status": DONE if outcome.state == "SUCCESS" else ERROR}


def _caller_gone(sock: socket.socket | None) -> Callable[[], bool]:
    """Whether the client of this request hung up: its socket reads as closed (gunicorn hands views the
    client's socket; behind nginx, nginx closes ours when its client hangs up). Without one (a test
    client), never."""
    def gone() -> bool:
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
    return gone


def _uuid(task_id: str) -> str:
    uuid = canonical_uuid(task_id)
    if uuid is None:
        raise TaskNotFound()
    return uuid


def _refusal(uuid: str, refused: Refused) -> Exception:
    if refused.reason == "gone":
        return TaskNotFound()
    messages = {"expired": "The lease is no longer yours: it expired, and the job may have been leased again",
                "cancelled": "The job was cancelled: it ended as cancelled; stop working on it",
                "timed_out": "The job ran past its time limit: it ended as timed out (code 5)",
                "finished": "The job already ended"}
    return Conflict(messages.get(refused.reason, messages["expired"]), extra={"uuid": uuid, "reason": refused.reason})
