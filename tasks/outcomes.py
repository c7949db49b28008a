"""Every job's outcome, seen from the worker's signals: counted once in the shared counts
(jobs/stats.py) with its runtime and queue wait (jobs/timings.py, tasks/timing.py), taken off its client's
unfinished set, and handed to its completion webhook."""
from __future__ import annotations

from typing import Any

from celery import Task, signals
from loguru import logger

from jobs import stats, timings, webhooks
from jobs.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER
from jobs.keys import OPEN_PREFIX
from tasks import timing
from tasks.app import app
from tasks.runtime import worker_settings

_EXPIRING = {"hour": ""}  # the hour key whose TTL this process has set: once an hour is enough


def _count(field: str, request: Any = None, job_type: str | None = None) -> None:
    """Add one outcome (and, for an attempt that ran, its timings under `job_type`) and take the task off
    its client's unfinished set, in one round trip; never fails the task over bookkeeping."""
    try:
        with app.backend.client.pipeline(transaction=False) as pipe:
            hour = stats.hour_key()
            stats.add(pipe, field, worker_settings().config["results"]["expires"], expire=hour != _EXPIRING["hour"])
            ran = timing.of(request)
            if ran is not None and job_type is not None:
                timings.add(pipe, job_type, *ran)
            owner = request.get(CLIENT_HEADER) if request is not None else None
            if owner and request.id:
                pipe.zrem(OPEN_PREFIX + owner, request.id)
            pipe.execute()
        _EXPIRING["hour"] = hour
    except Exception as exc:  # noqa: BLE001 - metrics are best effort
        logger.warning("could not count task outcome: {}", exc.__class__.__name__)


def _job_type(task: Task | None) -> str:
    """The gateway's job type from the message header; the task name for messages sent by others."""
    request = getattr(task, "request", None)
    return (request.get(JOB_TYPE_HEADER) if request is not None else None) or getattr(task, "name", None) or "unknown"


def _internal(task: Task | None) -> bool:
    """The gateway's own tasks (webhook delivery) are not jobs: no outcome counts, no webhooks."""
    return getattr(task, "name", "") == webhooks.TASK_NAME


def _notify(request: Any) -> None:
    """Queue the completion webhook, if the job asked for one; never fails the job over it."""
    get = request.get if hasattr(request, "get") else (lambda key: None)
    url, client_id = get(CALLBACK_HEADER), get(CLIENT_HEADER)
    if not (url and client_id and request.id):
        return
    try:
        app.send_task(webhooks.TASK_NAME, kwargs={"task_id": request.id, "url": url, "client_id": client_id},
                      queue=webhooks.QUEUE, argsrepr="()", kwargsrepr=f"{{'task_id': '{request.id}'}}")
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not queue webhook: {}", exc.__class__.__name__)


@signals.task_success.connect
def _count_success(sender: Task | None = None, **_: Any) -> None:
    if _internal(sender):
        return
    assert sender is not None  # Celery sends task_success with the task as sender
    job_type = _job_type(sender)
    _count(stats.field(stats.DONE, job_type), sender.request, job_type)
    _notify(sender.request)


@signals.task_failure.connect
def _count_failure(sender: Task | None = None, exception: BaseException | None = None, **_: Any) -> None:
    if _internal(sender):
        return
    assert sender is not None  # Celery sends task_failure with the task as sender
    reason = exception.__class__.__name__ if exception else "Exception"
    job_type = _job_type(sender)
    _count(stats.field(stats.ERROR, job_type, reason), sender.request, job_type)
    _notify(sender.request)


@signals.task_revoked.connect
def _count_revoked(sender: Task | None = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    headers = _revoked_headers(request)
    job_type = headers.get(JOB_TYPE_HEADER) or getattr(sender, "name", None) or "unknown"
    revoked = _RevokedRequest(getattr(request, "id", None), headers)
    _count(stats.field(stats.ERROR, job_type, "expired" if expired else "revoked"), revoked)
    _notify(revoked)


def _revoked_headers(request: Any) -> dict[str, Any]:
    """The gateway's headers of a revoked task. Celery's worker signals a revoke with the request's
    Context, whose headers are attributes (`get`); the start check's expiry with their dict."""
    headers = getattr(request, "request_dict", None)
    if headers:
        return dict(headers)
    get = getattr(request, "get", None)
    return {key: get(key) for key in (JOB_TYPE_HEADER, CLIENT_HEADER, CALLBACK_HEADER)} if callable(get) else {}


class _RevokedRequest:
    """The little of a revoked task's request that the webhook needs, from the message headers."""

    def __init__(self, task_id: str | None, headers: dict[str, Any]) -> None:
        self.id, self._headers = task_id, headers

    def get(self, key: str) -> Any:
        return self._headers.get(key)
