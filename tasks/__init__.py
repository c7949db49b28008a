"""The Celery app of the workers (`celery -A tasks worker -Q hash,images`).

Configuration is read lazily from config.json/.secrets.json when the worker starts, never at
import time, so tests and the gateway can import the job code without any settings on disk.
"""
from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import Ignore
from loguru import logger

import celeryconfig
from settings import Settings, load_settings_or_exit
from settings.logs import setup_logging
from tasks import deadletters
from tasks.errors import JobError, RetriesExhausted, TransientError
from tasks import stats
from tasks.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER, OPEN_PREFIX, RECORD_PREFIX

_settings: Settings | None = None


def worker_settings() -> Settings:
    """The settings this worker process runs with, loaded once (exit 2 on invalid files)."""
    global _settings
    if _settings is None:
        _settings = load_settings_or_exit()
    return _settings


NO_RETRY = {"max_attempts": 1, "backoff": 1.0, "backoff_max": 60.0, "jitter": True}


def retry_policy(job_type: str | None, task_name: str) -> dict[str, Any]:
    """The retry policy of the job type (or, for messages from elsewhere, of the first type using the task)."""
    jobs = worker_settings().config["jobs"]
    job = jobs.get(job_type or "") or next((j for j in jobs.values() if j["task"] == task_name), {})
    return NO_RETRY | job.get("retry", {})


def content_limit(task_name: str) -> int:
    """Largest decoded upload any job type routed to this task may carry (the gateway checks first)."""
    jobs = worker_settings().config["jobs"].values()
    return max(job["max_content_bytes"] for job in jobs if job["task"] == task_name)


Progress = Callable[[int, str], None]


def no_progress(percent: int, stage: str) -> None:
    """The progress callback of a job function called outside a worker (tests, scripts)."""


class JobTask(Task):
    """Binds task_id/client_id into the log context for the span of a task and writes its one line.

    Job errors are expected outcomes (bad content): they end the task as FAILURE without a traceback
    in the log, and are never retried.
    """

    throws = (JobError, RetriesExhausted)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        client_id = self.request.get(CLIENT_HEADER) or "-"
        with logger.contextualize(task_id=self.request.id, client_id=client_id):
            if self._cancelled():
                logger.info("task {} cancelled before it started", self.name)
                self.backend.mark_as_revoked(self.request.id, reason="cancelled", request=self.request)
                raise Ignore()
            started = time.perf_counter()
            try:
                result = super().__call__(*args, **kwargs)
            except TransientError as exc:
                logger.info("task {} transient failure: {} (attempt {})", self.name, exc.__class__.__name__,
                            self.request.retries + 1)
                self._retry_or_dead_letter(exc, args, kwargs)
            except JobError as exc:
                logger.info("task {} failed: {} ({:.3f}s)", self.name, exc.__class__.__name__, time.perf_counter() - started)
                raise
            except Exception as exc:
                logger.warning("task {} raised {} ({:.3f}s)", self.name, exc.__class__.__name__, time.perf_counter() - started)
                raise
            logger.info("task {} done ({:.3f}s)", self.name, time.perf_counter() - started)
            return result


    def _retry_or_dead_letter(self, exc: TransientError, args: tuple, kwargs: dict[str, Any]) -> None:
        """Retry with exponential backoff and jitter while the job type's policy allows; then keep the
        job in the dead-letter list and fail it with RetriesExhausted (its own error code)."""
        policy = retry_policy(self.request.get(JOB_TYPE_HEADER), self.name)
        attempt = self.request.retries + 1
        if attempt < policy["max_attempts"]:
            delay = min(policy["backoff_max"], policy["backoff"] * 2 ** self.request.retries)
            if policy["jitter"]:
                delay *= random.uniform(0.5, 1.0)
            raise self.retry(exc=exc, countdown=delay, max_retries=policy["max_attempts"] - 1)
        deadletters.add(self.backend.client, self.request.id, {
            "task": self.name, "queue": (self.request.delivery_info or {}).get("routing_key"),
            "type": self.request.get(JOB_TYPE_HEADER), "owner": self.request.get(CLIENT_HEADER),
            "callback": self.request.get(CALLBACK_HEADER),
            "args": list(args), "kwargs": kwargs, "attempts": attempt, "error": exc.__class__.__name__})
        raise RetriesExhausted(f"gave up after {attempt} attempts") from None

    def report_progress(self, percent: int, stage: str) -> None:
        """Celery state PROGRESS with {percent, stage}: /taskinfo shows it under `progress` while pending."""
        if self.request.id and not self.request.called_directly:
            self.update_state(state="PROGRESS", meta={"percent": percent, "stage": stage})

    def _cancelled(self) -> bool:
        """A cancel through the gateway marks the task record; a worker that missed the revoke
        broadcast (started later, say) still finds it here. Messages from elsewhere have no record."""
        if not self.request.id or self.request.get(JOB_TYPE_HEADER) is None:
            return False
        try:
            return self.backend.client.hget(f"{RECORD_PREFIX}{self.request.id}", "cancelled") == b"1"
        except Exception:  # noqa: BLE001 - the revoke broadcast remains the primary mechanism
            return False


app = Celery("tasks", task_cls=JobTask, include=["tasks.hashing", "tasks.images", "tasks.webhooks"])
app.add_defaults(lambda: _worker_config(sys.argv))


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Connecting here stops Celery from configuring logging itself; ours routes it into loguru."""
    setup_logging(worker_settings(), process="worker")


def _worker_config(argv: list[str]) -> dict[str, Any]:
    """celeryconfig for this worker, with the per-queue settings of the queue it was started for.
    Celery resolves --concurrency against this config while parsing the command line, so the queue
    comes from the same command line (-Q/--queues); an explicit --concurrency still wins."""
    settings = worker_settings()
    return celeryconfig.build(settings, role="worker") | queue_overrides(settings.config["workers"], cli_queues(argv))


def cli_queues(argv: list[str]) -> list[str]:
    """The queues named by -Q/--queues on a `celery worker` command line ([] if none)."""
    for i, arg in enumerate(argv):
        if arg in ("-Q", "--queues") and i + 1 < len(argv):
            return [q for q in argv[i + 1].split(",") if q]
        for prefix in ("-Q", "--queues="):
            if arg.startswith(prefix) and len(arg) > len(prefix):
                return [q for q in arg[len(prefix):].split(",") if q]
    return []


def queue_overrides(workers: dict[str, Any], queues: list[str]) -> dict[str, Any]:
    """Celery settings for a worker consuming `queues`: `workers.queues.<q>` applies when the worker
    consumes that one queue only (a worker per queue is the deployment this is made for)."""
    names = {"concurrency": "worker_concurrency", "prefetch_multiplier": "worker_prefetch_multiplier"}
    if len(queues) != 1:
        return {}
    own = (workers.get("queues") or {}).get(queues[0], {})
    return {names[key]: value for key, value in own.items() if key in names}


@signals.worker_init.connect
def _limit_images(**_: Any) -> None:
    """Set once in the main worker process, before the pool forks, so every child inherits it."""
    from tasks import images

    images.set_pixel_limit(worker_settings().config["workers"]["max_image_pixels"])


def _count(field: str, request: Any = None) -> None:
    """Add one outcome to the shared counts (tasks/stats.py) and take the task off its client's
    unfinished set; never fails the task over bookkeeping."""
    try:
        with app.backend.client.pipeline(transaction=False) as pipe:
            stats.add(pipe, field, worker_settings().config["results"]["expires"])
            owner = request.get(CLIENT_HEADER) if request is not None else None
            if owner and request.id:
                pipe.zrem(OPEN_PREFIX + owner, request.id)
            pipe.execute()
    except Exception as exc:  # noqa: BLE001 - metrics are best effort
        logger.warning("could not count task outcome: {}", exc.__class__.__name__)


def _job_type(task: Task | None) -> str:
    """The gateway's job type from the message header; the task name for messages sent by others."""
    request = getattr(task, "request", None)
    return (request.get(JOB_TYPE_HEADER) if request is not None else None) or getattr(task, "name", None) or "unknown"


def _internal(task: Task | None) -> bool:
    """The gateway's own tasks (webhook delivery) are not jobs: no outcome counts, no webhooks."""
    return getattr(task, "name", "").startswith("gateway.")


def _notify(request: Any) -> None:
    """Queue the completion webhook, if any; never fails the job over it."""
    from tasks import webhooks

    try:
        webhooks.enqueue_for(request)
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not queue webhook: {}", exc.__class__.__name__)


@signals.task_success.connect
def _count_success(sender: Task | None = None, **_: Any) -> None:
    if _internal(sender):
        return
    _count(f"done|{_job_type(sender)}", sender.request)
    _notify(sender.request)


@signals.task_failure.connect
def _count_failure(sender: Task | None = None, exception: BaseException | None = None, **_: Any) -> None:
    if _internal(sender):
        return
    _count(f"error|{_job_type(sender)}|{exception.__class__.__name__ if exception else 'Exception'}", sender.request)
    _notify(sender.request)


@signals.task_revoked.connect
def _count_revoked(sender: Task | None = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    headers = getattr(request, "request_dict", None) or {}
    job_type = headers.get(JOB_TYPE_HEADER) or getattr(sender, "name", None) or "unknown"
    revoked = _RevokedRequest(getattr(request, "id", None), headers)
    _count(f"error|{job_type}|{'expired' if expired else 'revoked'}", revoked)
    if headers.get(CALLBACK_HEADER) and revoked.id:
        _notify(revoked)


class _RevokedRequest:
    """The little of a revoked task's request that the webhook needs, from the message headers."""

    def __init__(self, task_id: str, headers: dict[str, Any]) -> None:
        self.id, self._headers = task_id, headers

    def get(self, key: str) -> Any:
        return self._headers.get(key)
