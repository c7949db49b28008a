"""What an HTTP worker's job leaves behind, in the very format a Celery worker would leave it, so a job
reads the same whoever ran it (`/taskinfo`, listings, webhooks, outcome counts, Flower):

- Celery's result meta (`celery-task-meta-<uuid>`), as its Redis backend stores it
  (`Backend._get_result_meta` + `prepare_exception` for the json serializer; pinned by tests/contract);
- the outcome's count field (jobs/stats.py), named by the exception class a Celery worker would raise;
- the completion webhook's task message and the Celery task events (task-received, -started,
  -succeeded, -failed, -revoked) under the HTTP worker's name, as the Redis commands kombu builds for
  them (gateway/submission/capture.py), to run inside the script that ends the job.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.exceptions import TaskRevokedError, TimeLimitExceeded

from gateway.submission import capture
from gateway.submission.capture import Commands
from jobs import stats, webhooks
from jobs.failures import BadContent, WorkerLost, WorkerReportedFailure
from jobs.status import ErrorCode

# The codes an HTTP worker may report, and the exception a Celery worker would have ended with.
REPORTABLE = {int(ErrorCode.FAILED): WorkerReportedFailure, int(ErrorCode.BAD_CONTENT): BadContent,
              int(ErrorCode.TIMED_OUT): TimeLimitExceeded}


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its Celery state, its result (or exception), and the count it adds."""

    state: str
    result: Any
    count: str
    event: tuple[str, dict[str, Any]]

    def meta(self, uuid: str) -> str:
        """Celery's result meta for this outcome, encoded as its Redis backend stores it."""
        ready = self.state in ("SUCCESS", "FAILURE", "REVOKED")
        result = _exception(self.result) if isinstance(self.result, BaseException) else self.result
        return json.dumps({"status": self.state, "result": result, "traceback": None, "children": [],
                           "date_done": datetime.now(UTC).isoformat() if ready else None, "task_id": uuid})


def done(job_type: str, result: Any, runtime: float) -> Outcome:
    return Outcome("SUCCESS", result, stats.field(stats.DONE, job_type),
                   ("task-succeeded", {"result": _short_repr(result), "runtime": runtime}))


def failed(job_type: str, exc: BaseException) -> Outcome:
    return Outcome("FAILURE", exc, stats.field(stats.ERROR, job_type, type(exc).__qualname__),
                   ("task-failed", {"exception": _short_repr(exc), "traceback": None}))


def reported(job_type: str, code: int, message: str) -> Outcome:
    """An error the HTTP worker reported (`REPORTABLE` codes). As for a Celery job, only bad content's
    message reaches the client (jobs/status.py CLIENT_SAFE_EXCEPTIONS); the others' are fixed texts."""
    return failed(job_type, REPORTABLE[code](message))


def revoked(job_type: str, reason: str) -> Outcome:
    """Cancelled (`reason` "cancelled", counted as revoked) or expired before it started ("expired")."""
    return Outcome("REVOKED", TaskRevokedError(reason),
                   stats.field(stats.ERROR, job_type, "expired" if reason == "expired" else "revoked"),
                   ("task-revoked", {"terminated": False, "signum": None, "expired": reason == "expired"}))


def timed_out(job_type: str, limit: float) -> Outcome:
    return failed(job_type, TimeLimitExceeded(limit))


def worker_lost(job_type: str, deliveries: int) -> Outcome:
    return failed(job_type, WorkerLost(f"the worker died on each of {deliveries} deliveries"))


def progress_meta(uuid: str, percent: float, stage: str) -> str:
    """Celery's PROGRESS state, as JobTask.report_progress stores it (tasks/base.py)."""
    return Outcome("PROGRESS", {"percent": percent, "stage": stage}, "", ("", {})).meta(uuid)


def event_commands(celery: Celery, worker: str, events: list[tuple[str, dict[str, Any]]]) -> Commands:
    """The Redis commands of Celery task events sent by a worker named `worker`."""
    with capture.capture() as captured, celery.producer_or_acquire() as producer, producer.batch():
        dispatcher = celery.events.Dispatcher(channel=producer.channel, hostname=worker, enabled=True,
                                              buffer_while_offline=False)
        for kind, fields in events:
            dispatcher.publish(kind, fields, producer=producer)
    return capture.captured_commands(captured)


def webhook_commands(celery: Celery, uuid: str, url: str | None, owner: str | None) -> Commands:
    """The completion webhook's task message, as tasks/outcomes.py sends it, when the job asked for one."""
    if not (url and owner):
        return []
    with capture.capture() as captured, celery.producer_or_acquire() as producer, producer.batch():
        celery.send_task(webhooks.TASK_NAME, kwargs={"task_id": uuid, "url": url, "client_id": owner},
                         queue=webhooks.QUEUE, argsrepr="()", kwargsrepr=f"{{'task_id': '{uuid}'}}",
                         retry=False, producer=producer, declare=[])
    return capture.captured_commands(captured)


def _exception(exc: BaseException) -> dict[str, Any]:
    """Celery's `prepare_exception` for the json serializer."""
    kind = type(exc)
    return {"exc_type": getattr(kind, "__qualname__", kind.__name__), "exc_message": list(exc.args),
            "exc_module": kind.__module__}


def _short_repr(value: Any, limit: int = 1024) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
