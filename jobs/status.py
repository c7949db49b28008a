"""Celery state -> the four public statuses and the stable error codes, in one place (SPEC §2).

The gateway reads Celery's raw result meta from Redis rather than AsyncResult: Celery answers
PENDING for anything it does not know, so the gateway's own task record is what tells `created`
from "no such task", and the raw meta is what tells an expiry from a cancel.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from jobs.record import TaskRecord


class ErrorCode(IntEnum):
    """Stable: clients branch on these numbers. Add new ones at the end, never renumber."""

    FAILED = 1        # the job raised an unexpected error
    BAD_CONTENT = 2   # the upload could not be decoded or processed (not retried)
    EXPIRED = 3       # no worker started it within the job type's TTL
    CANCELLED = 4     # revoked by a client or an operator
    TIMED_OUT = 5     # hit its soft or hard time limit
    WORKER_LOST = 6   # its worker died on every allowed delivery (workers.max_deliveries; dead-lettered)
    RETRIES_EXHAUSTED = 7  # a transient failure outlived the job type's retry policy (dead-lettered)


CREATED, PENDING, DONE, ERROR = "created", "pending", "done", "error"
STATUSES = (CREATED, PENDING, DONE, ERROR)  # the four public statuses (SPEC §2)
FAILED_STATES = frozenset({"FAILURE", "REVOKED", "REJECTED"})
# Celery states after which a job never runs again: a redelivery is skipped (tasks/delivery/startcheck.py).
FINISHED_STATES = frozenset({"SUCCESS", *FAILED_STATES})
# States a worker writes while it runs the job: they mean `pending` only while its lease lives.
RUNNING_STATES = {"STARTED", "PROGRESS"}
REQUEUED = "Queued again: the worker running it was lost"
SCHEDULED = "Scheduled: waiting until it is due (scheduled_for)"

EXCEPTION_CODES = {
    "BadContent": ErrorCode.BAD_CONTENT,
    "JobError": ErrorCode.BAD_CONTENT,
    "OutOfBounds": ErrorCode.BAD_CONTENT,
    # A job that needs more memory than the worker's address-space limit allows (tasks/app.py): the
    # input asks for too much, and running it again would fail the same way.
    "MemoryError": ErrorCode.BAD_CONTENT,
    "SoftTimeLimitExceeded": ErrorCode.TIMED_OUT,
    "TimeLimitExceeded": ErrorCode.TIMED_OUT,
    "WorkerLostError": ErrorCode.WORKER_LOST,
    "WorkerLost": ErrorCode.WORKER_LOST,
    "RetriesExhausted": ErrorCode.RETRIES_EXHAUSTED,
}
# Our own job exceptions carry messages written for clients; anything else gets a fixed text.
CLIENT_SAFE_EXCEPTIONS = {"BadContent", "JobError", "OutOfBounds"}
# Fixed texts for exceptions whose own message says nothing useful (a MemoryError's is usually empty).
EXCEPTION_MESSAGES = {"MemoryError": "The job needed more memory than a worker may use"}
MESSAGES = {
    ErrorCode.FAILED: "The job failed",
    ErrorCode.EXPIRED: "The job expired before a worker started it",
    ErrorCode.CANCELLED: "The job was cancelled",
    ErrorCode.TIMED_OUT: "The job exceeded its time limit",
    ErrorCode.WORKER_LOST: "The job's worker died each time it ran the job; it was set aside",
    ErrorCode.RETRIES_EXHAUSTED: "The job kept failing and was set aside after its retries",
}


def describe(record: TaskRecord, meta: dict[str, Any] | None, now: datetime, grace: float) -> dict[str, Any]:
    """The TaskInfo body for a recorded task and its Celery result meta (None when Celery has none)."""
    meta = meta or {}
    state = meta.get("status", "PENDING")
    info: dict[str, Any] = {"uuid": record.uuid, "type": record.type, "created": record.created.isoformat(),
            "processed": None, "message": "", "code": 0, "result": None}
    if record.scheduled_for is not None:
        info["scheduled_for"] = record.scheduled_for.isoformat()  # shown for good: when it was to run
    if state == "SUCCESS":
        return info | {"status": DONE, "message": "Done", "result": meta.get("result"),
                       "processed": _iso(meta.get("date_done"))}
    if state in FAILED_STATES:
        code, message = failure(state, meta.get("result"))
        return info | {"status": ERROR, "code": int(code), "message": message, "processed": _iso(meta.get("date_done"))}
    if record.cancelled:
        # Cancelled through the gateway: final even before any worker has seen the revoke.
        return info | {"status": ERROR, "code": int(ErrorCode.CANCELLED), "message": MESSAGES[ErrorCode.CANCELLED],
                       "processed": _iso((meta or {}).get("date_done"))}
    if state == "PENDING" and record.started:
        state = "STARTED"  # a worker started it; Celery stores nothing until it ends, retries or reports
    if state == "PENDING":
        if now > record.expires + timedelta(seconds=grace):
            # The message carries `expires`: no worker will start it now, whatever happens next.
            return info | {"status": ERROR, "code": int(ErrorCode.EXPIRED), "message": MESSAGES[ErrorCode.EXPIRED],
                           "processed": record.expires.isoformat()}
        if record.scheduled_for is not None and now < record.scheduled_for:
            return info | {"status": CREATED, "message": SCHEDULED}
        return info | {"status": CREATED, "message": "Queued, waiting for a worker"}
    if state in RUNNING_STATES and not record.held:
        # Its worker is gone (no lease for `workers.visibility_timeout` seconds): the message is back
        # in the queue, or is put back within seconds, and the job will run again. Not `pending`.
        return info | {"status": CREATED, "message": REQUEUED}
    running = info | {"status": PENDING, "message": "Running" if state != "RETRY" else "Waiting to retry"}
    progress = (meta or {}).get("result") if state == "PROGRESS" else None
    if isinstance(progress, dict) and isinstance(progress.get("percent"), (int, float)):
        running["progress"] = {"percent": progress["percent"], "stage": str(progress.get("stage", ""))}
    return running


def running(record: TaskRecord, meta: dict[str, Any] | None) -> bool:
    """Whether the task is running, as far as its record and meta tell: then whether a live worker
    holds its lease decides between `pending` and queued again (`describe`)."""
    state = (meta or {}).get("status", "PENDING")
    return state in RUNNING_STATES or (state == "PENDING" and record.started and not record.cancelled)


def cancellable(info: Mapping[str, Any]) -> bool:
    """Whether a cancel still applies to a task, from its TaskInfo: the one rule of every route that
    cancels (gateway/submission/publishing.py `Dispatcher.cancel`). A task that finished — done, or
    error for any reason but a cancel — cannot be cancelled; cancelling a cancelled one again is harmless."""
    if info["status"] == DONE:
        return False
    return info["status"] != ERROR or info["code"] == int(ErrorCode.CANCELLED)


def code_for_reason(reason: str) -> ErrorCode:
    """The error code of a counted outcome reason (tasks/stats.py): an exception class, revoked, expired."""
    if reason == "expired":
        return ErrorCode.EXPIRED
    if reason in ("revoked", "TaskRevokedError"):
        return ErrorCode.CANCELLED
    return EXCEPTION_CODES.get(reason, ErrorCode.FAILED)


def failure(state: str, result: Any) -> tuple[ErrorCode, str]:
    """Error code and client-safe message for a FAILURE/REVOKED/REJECTED meta."""
    exc_type = result.get("exc_type", "") if isinstance(result, dict) else ""
    if state == "REVOKED" or exc_type == "TaskRevokedError":
        reason = _exc_message(result)
        code = ErrorCode.EXPIRED if reason == "expired" else ErrorCode.CANCELLED
        return code, MESSAGES[code]
    code = EXCEPTION_CODES.get(exc_type, ErrorCode.FAILED)
    if exc_type in CLIENT_SAFE_EXCEPTIONS and _exc_message(result):
        return code, _exc_message(result)
    return code, EXCEPTION_MESSAGES.get(exc_type) or MESSAGES.get(code, MESSAGES[ErrorCode.FAILED])


def _exc_message(result: Any) -> str:
    message = result.get("exc_message") if isinstance(result, dict) else None
    if isinstance(message, (list, tuple)):
        message = message[0] if message else ""
    return str(message or "")


def _iso(value: Any) -> str | None:
    """Celery's date_done, always with a timezone (older Celery wrote naive UTC)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
