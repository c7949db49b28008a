"""The base class of every job task: log context for the span of a task, its one log line, the check
made before a job starts (tasks/delivery/startcheck.py: cancelled, expired, already finished, held elsewhere, worker
lost too often), progress reports, and transient failures handed to tasks/retries.py."""
from __future__ import annotations

import time
from typing import Any

from celery import Task, signals
from celery.exceptions import Ignore, Reject
from loguru import logger

from jobs.failures import JobError, RetriesExhausted, TransientError, WorkerLost
from jobs.headers import CLIENT_HEADER
from settings import tracing
from tasks import jobtraces, timing
from tasks.delivery import startcheck as start
from tasks.retries import dead_letter, retry_or_dead_letter


class JobTask(Task):
    """Binds task_id/client_id into the log context for the span of a task and writes its one line.

    Job errors are expected outcomes (bad content): they end the task as FAILURE without a traceback
    in the log, and are never retried.
    """

    throws = (JobError, RetriesExhausted, WorkerLost)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        client_id = self.request.get(CLIENT_HEADER) or "-"
        with logger.contextualize(task_id=self.request.id, client_id=client_id):
            self._may_start(args, kwargs)
            timing.began(self.request)
            jobtraces.queue_wait(self.request)
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
            finally:
                timing.ended(self.request)
                start.ended(self)
            logger.info("task {} done ({:.3f}s)", self.name, time.perf_counter() - started)
            return result

    def report_progress(self, percent: int, stage: str) -> None:
        """Celery state PROGRESS with {percent, stage}: /taskinfo shows it under `progress` while pending."""
        if self.request.id and not self.request.called_directly:
            self.update_state(state="PROGRESS", meta={"percent": percent, "stage": stage})

    def _may_start(self, args: tuple, kwargs: dict[str, Any]) -> None:
        """Run the start check; unless the job is to run, end this delivery the way the verdict says.
        A job that runs is marked `started` in its record by the check itself; nothing is stored in
        Celery's meta until it ends, retries or reports progress (celeryconfig: Celery's own tracking
        is off), which saves the five commands a STARTED state cost per job."""
        if self.request.called_directly:
            return
        try:
            with tracing.span("start check") as checked:
                verdict, lost = start.check(self)
                if checked is not None:
                    checked.set_attribute("job.start_verdict", verdict)
        except start.StartUnchecked as exc:
            # Not started, not failed: back to its queue (or, with the broker away too, left in `unacked`
            # for the lease sweep, tasks/delivery/leases.py).
            logger.warning("task {} could not be checked before it started ({}): handed back", self.name, exc)
            raise Reject(str(exc), requeue=True) from None
        if verdict == start.CANCELLED:
            logger.info("task {} cancelled before it started", self.name)
            self.backend.mark_as_revoked(self.request.id, reason="cancelled", request=self.request)
            raise Ignore()
        if verdict == start.FINISHED:
            logger.info("task {} redelivered after it finished: skipped", self.name)
            raise Ignore()
        if verdict == start.EXPIRED:
            logger.info("task {} expired before a worker started it", self.name)
            self.backend.mark_as_revoked(self.request.id, reason="expired", request=self.request)
            signals.task_revoked.send(sender=self, request=start.revoked_request(self), terminated=False,
                                      signum=None, expired=True)
            raise Ignore()
        if verdict == start.HELD:
            logger.warning("task {} redelivered while another worker runs it: checked again later", self.name)
            raise self.retry(countdown=start.held_retry_delay(), max_retries=None)
        if verdict == start.LOST:
            logger.warning("task {} set aside: its worker died on each of {} deliveries", self.name, lost)
            dead_letter(self, args, kwargs, lost, WorkerLost.__name__)
            raise WorkerLost(f"the worker died on each of {lost} deliveries")
