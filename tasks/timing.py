"""When the attempt that ends a job started and how long it ran, noted on its Celery request
(tasks/base.py) and counted with its outcome (tasks/outcomes.py) in the shared histograms (jobs/timings.py).

- Runtime: from the moment the start check let the attempt run to the moment the task function returned
  or raised (the result's storage and the outcome's bookkeeping are not in it).
- Queue wait: from the moment the attempt's message was due to the moment it started. Due is the
  gateway's publish (the `gateway_submitted_at` header), or a retry's `eta` (its backoff is not waiting
  for a worker). A delivery again after a worker died counts from the publish, so that wait holds the
  dead attempt too. Messages not published by the gateway have no known wait.

Only attempts that end the job are counted: a retried attempt is not, and a job that never ran (cancelled,
expired, dead-lettered at its start) has no runtime. Nor has one killed by its hard time limit: the pool
process that timed it is gone, and the worker's main process reports the failure (its soft limit, which
raises inside the task, is counted).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.headers import SUBMITTED_HEADER

ATTRIBUTE = "gateway_timing"  # on the request (celery.app.task.Context) of the attempt


@dataclass
class Timing:
    wait: float | None
    clock: float  # time.perf_counter() at the start
    runtime: float | None = None


def began(request: Any) -> None:
    """The attempt starts now (its start check said run)."""
    now = time.time()
    due = _due(request)
    setattr(request, ATTRIBUTE, Timing(max(0.0, now - due) if due is not None else None, time.perf_counter()))


def ended(request: Any) -> None:
    """The task function returned or raised."""
    timing = getattr(request, ATTRIBUTE, None)
    if timing is not None:
        timing.runtime = time.perf_counter() - timing.clock


def waited(request: Any) -> float | None:
    """The queue wait of the attempt that just began (None if unknown or not begun)."""
    timing = getattr(request, ATTRIBUTE, None) if request is not None else None
    return timing.wait if timing is not None else None


def of(request: Any) -> tuple[float, float | None] | None:
    """(runtime, queue wait or None if unknown) of the ended attempt; None if it never ran (or never ended)."""
    timing = getattr(request, ATTRIBUTE, None) if request is not None else None
    return (timing.runtime, timing.wait) if timing is not None and timing.runtime is not None else None


def _due(request: Any) -> float | None:
    submitted = request.get(SUBMITTED_HEADER)
    due = float(submitted) if isinstance(submitted, (int, float)) else None
    eta = getattr(request, "eta", None)
    if eta and due is not None:
        try:
            due = max(due, datetime.fromisoformat(eta).timestamp() if isinstance(eta, str) else float(eta.timestamp()))
        except (TypeError, ValueError, AttributeError):
            pass
    return due
