"""The base class of every job task: log context for the span of a task, its one log line, the
cancelled-before-start check, progress reports, and transient failures handed to tasks/retries.py."""
from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from loguru import logger

from jobs.errors import JobError, RetriesExhausted, TransientError
from jobs.headers import CLIENT_HEADER, JOB_TYPE_HEADER
from jobs.keys import RECORD_PREFIX
from tasks.retries import retry_or_dead_letter


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
                retry_or_dead_letter(self, exc, args, kwargs)
            except JobError as exc:
                logger.info("task {} failed: {} ({:.3f}s)", self.name, exc.__class__.__name__, time.perf_counter() - started)
                raise
            except Exception as exc:
                logger.warning("task {} raised {} ({:.3f}s)", self.name, exc.__class__.__name__, time.perf_counter() - started)
                raise
            logger.info("task {} done ({:.3f}s)", self.name, time.perf_counter() - started)
            return result

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
