"""A worker's part of a job's trace, when `tracing.enabled` (docs/operations.md "Traces").

OpenTelemetry's Celery instrumentation continues the trace the task message carries (its `traceparent`
header, set by the gateway inside its `publish` span): the job's span, `run/<task name>`, is a child of
the gateway's `publish` span. Beside it, under the same parent, the `queue wait` span covers the time
from the publish to the moment the start check let the job run (tasks/timing.py measures it for the
queue-wait histogram, this shows it in the trace); a `start check` span sits under the job's.

The instrumentation records an exception's text and a retry's reason on the job's span; both may quote
what the job was given, so those two handlers are replaced by ours, which name the exception's class
only. Set up once in the worker's main process (`worker_init`): the pool processes it forks inherit it,
the SDK restarting its export thread in each; each flushes what it holds when it shuts down.
"""
from __future__ import annotations

import time
from typing import Any

from celery import signals

from settings import Settings, tracing
from tasks import timing


def start(settings: Settings) -> None:
    """Nothing when tracing is off: OpenTelemetry is not even imported."""
    if not tracing.setup(settings, "worker"):
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    instrumentor.instrument()
    # Read from opentelemetry-instrumentation-celery 0.66b1: these receivers record exception text.
    signals.task_failure.disconnect(instrumentor._trace_failure)
    signals.task_retry.disconnect(instrumentor._trace_retry)
    signals.task_failure.connect(_failed, weak=False)
    signals.task_retry.connect(_retried, weak=False)
    signals.worker_process_shutdown.connect(_flush, weak=False)


def queue_wait(request: Any) -> None:
    """The `queue wait` span of the attempt that starts now, beside the job's span, under the publish."""
    wait = timing.waited(request)
    if not tracing.active() or wait is None:
        return
    from opentelemetry import trace

    parent = getattr(trace.get_current_span(), "parent", None)  # the job span's parent: the publish
    now = time.time()
    tracing.span_between("queue wait", now - wait, now, parent, {"messaging.message.id": request.id or ""})


def _job_span(task: Any, task_id: str | None) -> Any:
    from opentelemetry.instrumentation.celery import utils

    found = utils.retrieve_context(task, task_id) if task is not None and task_id else None
    return found[0] if found is not None and found[0].is_recording() else None


def _failed(sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
    """A job error (bad content: the task's `throws`) is an outcome, not a failure of the span."""
    job = _job_span(sender, task_id)
    if job is None or exception is None:
        return
    if isinstance(exception, getattr(sender, "throws", ())):
        job.set_attribute("job.error", type(exception).__name__)
        return
    tracing.failed(job, exception)


def _retried(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    job = _job_span(sender, getattr(request, "id", None))
    if job is not None:
        job.set_attribute("celery.retry.reason", type(reason).__name__)


def _flush(**_: Any) -> None:
    tracing.shutdown()
