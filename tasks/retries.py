"""Transient failures: retried with the job type's backoff while its policy allows, then kept in the
dead-letter list (jobs/deadletters.py) and failed with RetriesExhausted, its own error code. Jobs whose
worker died on every allowed delivery are dead-lettered the same way (tasks/base.py)."""
from __future__ import annotations

from typing import Any

from celery import Task

from jobs import deadletters
from jobs.catalogue import NO_RETRY
from jobs.failures import RetriesExhausted, TransientError
from jobs.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER
from jobs.retry import backoff
from tasks.runtime import job_type


def retry_or_dead_letter(task: Task, exc: TransientError, args: tuple, kwargs: dict[str, Any]) -> None:
    request = task.request
    job = job_type(request.get(JOB_TYPE_HEADER), task.name)
    policy = job.retry if job else NO_RETRY
    attempt = request.retries + 1
    if attempt < policy["max_attempts"]:
        delay = backoff(request.retries, policy["backoff"], policy["backoff_max"], policy["jitter"])
        raise task.retry(exc=exc, countdown=delay, max_retries=policy["max_attempts"] - 1)
    dead_letter(task, args, kwargs, attempt, exc.__class__.__name__)
    raise RetriesExhausted(f"gave up after {attempt} attempts") from None


def dead_letter(task: Task, args: tuple, kwargs: dict[str, Any], attempts: int, error: str) -> None:
    """Keep what a requeue needs (jobs/deadletters.py) for a job that will not run again by itself."""
    request = task.request
    deadletters.add(task.backend.client, request.id, {
        "task": task.name, "queue": (request.delivery_info or {}).get("routing_key"),
        "type": request.get(JOB_TYPE_HEADER), "owner": request.get(CLIENT_HEADER),
        "callback": request.get(CALLBACK_HEADER),
        "args": list(args), "kwargs": kwargs, "attempts": attempts, "error": error})
