"""The check a worker makes before it starts a gateway job, in one atomic script on the task store.

Deliveries are counted here. kombu delivers a job again when its worker died (a killed child at once,
a killed worker after its lease lapsed, tasks/delivery/leases.py), and a delivery can also come back after the
job finished (its acknowledgement was lost with the broker connection). In order, a delivery:

- of a job with no gateway record (sent by something else) simply runs;
- of a job that already finished (jobs/status.py FINISHED_STATES) is skipped: never run twice;
- of a cancelled job ends as cancelled, without running;
- of a job another pool process holds the lease of (tasks/delivery/leases.py `holder`: of another worker,
  or of this one, delivered again while it still runs it) is checked again later (no two runs at once);
- of a job never started and past its TTL ends `expired` (code 3): the TTL means "no worker started it
  in time", so it is checked here, at the start, against the record, and not in the message (kombu
  would discard an old message without asking, even one whose job a dead worker had started);
- of a job started `workers.max_deliveries` times by workers that died (the attempt never ended) ends
  `error 6` and is dead-lettered: a job that kills its worker does not loop forever;
- otherwise it runs: the attempt is counted, the lease taken, the record marked `started`.
`ended()` clears the count when an attempt ends, however it ends, so only deaths accumulate.
"""
from __future__ import annotations

import os
import time
from typing import Any

from celery import Task

from jobs import attempts
from jobs.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER, SUBMITTED_HEADER
from jobs.keys import LEASE_PREFIX, META_PREFIX, RECORD_PREFIX
from tasks.delivery.leases import holder
from tasks.delivery.transport import TRANSIENT, patiently
from tasks.runtime import job_type, worker_settings

PATIENCE = 20.0  # seconds the start check waits for the task store to answer again

RUN, UNRECORDED, FINISHED, CANCELLED, HELD, EXPIRED, LOST = (
    attempts.RUN, attempts.UNRECORDED, attempts.FINISHED, attempts.CANCELLED, attempts.HELD, attempts.EXPIRED,
    attempts.LOST)
START_SCRIPT, END_SCRIPT = attempts.START_SCRIPT, attempts.END_SCRIPT


class StartUnchecked(Exception):
    """The task store did not answer the start check within `PATIENCE`: the job has not started."""


def check(task: Task) -> tuple[str, int]:
    """(verdict, deliveries whose worker died) for the delivery `task.request` is running.

    A job that reaches a worker while Redis restarts waits for it, `PATIENCE` seconds at most (a restart
    from the AOF takes a few): failing there was reported as the job's own failure, `error 1` (the fault
    suite's redis-restart found it). Past that, StartUnchecked: the delivery goes back, unstarted."""
    request = task.request
    if not request.id or request.get(JOB_TYPE_HEADER) is None:
        return UNRECORDED, 0
    try:
        return patiently(lambda: _check(task), PATIENCE)
    except TRANSIENT as exc:
        raise StartUnchecked(exc.__class__.__name__) from None


def _check(task: Task) -> tuple[str, int]:
    request = task.request
    workers = worker_settings().config["workers"]
    script = task.backend.client.register_script(START_SCRIPT)  # EVALSHA, loaded once per server
    verdict, lost = script(keys=[RECORD_PREFIX + request.id, LEASE_PREFIX + request.id, META_PREFIX + request.id],
                           args=[time.time(), _expires_at(task), workers["max_deliveries"],
                                 int(workers["visibility_timeout"]), holder(request.hostname or "", os.getpid())])
    return (verdict.decode() if isinstance(verdict, bytes) else verdict), int(lost)


def ended(task: Task) -> None:
    """The attempt ended (done, failed, retrying): it was not a delivery whose worker died, and its lease
    is no longer needed. Dropping the lease matters for a retry: run by another pool process of the same
    worker, it would otherwise find this attempt's lease and wait for it to lapse (`held`)."""
    request = task.request
    if request.id and not request.called_directly and request.get(JOB_TYPE_HEADER) is not None:
        try:
            task.backend.client.register_script(END_SCRIPT)(keys=[RECORD_PREFIX + request.id, LEASE_PREFIX + request.id],
                                                            args=[holder(request.hostname or "", os.getpid())])
        except Exception:  # noqa: BLE001 - a stale count only matters if this job's worker dies again; a lease lapses
            pass


def held_retry_delay() -> float:
    """Check a job held by another worker again once that worker's lease would have lapsed."""
    return float(worker_settings().config["workers"]["visibility_timeout"])


def revoked_request(task: Task) -> Any:
    """What tasks/outcomes.py reads from a revoked task's request, for a job that expired at its start."""
    request = task.request
    return _Revoked(request.id, {key: request.get(key) for key in (JOB_TYPE_HEADER, CLIENT_HEADER, CALLBACK_HEADER)})


class _Revoked:
    def __init__(self, task_id: str, headers: dict[str, Any]) -> None:
        self.id, self.request_dict = task_id, headers


def _expires_at(task: Task) -> float | str:
    """When the job's TTL ends: submitted + its type's ttl (both from the gateway); "" if unknown."""
    submitted = task.request.get(SUBMITTED_HEADER)
    job = job_type(task.request.get(JOB_TYPE_HEADER), task.name)
    return float(submitted) + job.ttl if submitted is not None and job is not None else ""


