"""A worker's leases on the jobs its children run (SPEC §8: a job whose worker died runs again promptly).

How a lost job comes back. kombu records every delivery in the broker's `unacked` hash, scored in
`unacked_index` by when it was delivered, and any worker's sweep puts back in its queue a delivery older
than `visibility_timeout` (celeryconfig: every 5 s). Stock, that timeout has to outlast the longest job
(it was an hour). Here every live worker re-scores the deliveries its children are running three times
per visibility timeout (tasks/delivery/keeper.py), so the timeout only has to outlast a few missed refreshes:
`workers.visibility_timeout` (45 s). A worker killed with its whole process group stops refreshing; its
running jobs are back in their queue at most `visibility_timeout + 5` s later, at the front, and run
again. The same refresh keeps each running job's lease (`gw:lease:<uuid>`, jobs/keys.py): a running job
without one has lost its worker, and the gateway shows it queued again instead of `pending`. A child
that dies while its worker lives hands its job back at once (Celery's reject-on-worker-lost) and its
lease is dropped (`release`).

A lease names the pool process that runs the job, `<node>|<pid>` (`holder`), not only its worker: a
worker frozen past its visibility timeout (SIGSTOP, a stalled VM) can find its own running job
delivered to it again when it wakes, and the start check must hold that second delivery instead of
running it beside the first (the fault suite's worker-freeze found a job run twice this way).
"""
from __future__ import annotations

import time
from typing import Any

from celery.worker import state
from loguru import logger
from redis import Redis

from jobs.keys import KOMBU_UNACKED_INDEX, LEASE_PREFIX


def holder(node: str, pid: int | None) -> str:
    """The value of a lease: which pool process of which worker runs the job."""
    return f"{node}|{pid}"


def holder_node(value: str) -> str:
    """The worker named in a lease's value (`holder`)."""
    return value.partition("|")[0]


def running_requests() -> dict[str, tuple[str, int | None]]:
    """Delivery tag -> (task id, pid of the pool process running it) of every job a child of this
    worker is running. Read from another thread than the event loop's: a copy that meets a concurrent
    change is taken again."""
    for _ in range(5):
        try:
            return {request.message.delivery_tag: (request.id, request.worker_pid)
                    for request in list(state.active_requests) if request.message is not None}
        except RuntimeError:  # the WeakSet changed while it was copied
            continue
    return {}


class Leases:
    """Refreshes, in two round trips, the deliveries and leases of what this worker's children run."""

    def __init__(self, node: str, broker: Redis, results: Redis, visibility: float) -> None:
        self.node = node
        self.broker = broker
        self.results = results
        self.visibility = visibility

    def refresh(self, held: dict[str, tuple[str, int | None]]) -> None:
        """Re-score `held` (delivery tag -> (task id, pid)) in kombu's index and extend their leases."""
        if not held:
            return
        try:
            self.broker.zadd(KOMBU_UNACKED_INDEX, dict.fromkeys(held, time.time()), xx=True)
            with self.results.pipeline(transaction=False) as pipe:
                for task_id, pid in held.values():
                    pipe.set(LEASE_PREFIX + task_id, holder(self.node, pid), ex=int(self.visibility))
                pipe.execute()
        except Exception as exc:  # noqa: BLE001 - retried next tick; the watchdog judges the loop, not this
            logger.warning("could not refresh {} leases: {}", len(held), exc.__class__.__name__)

    def release(self, message: Any) -> None:
        """A child died running this job and it went back to its queue: its lease is no longer ours."""
        task_id = (getattr(message, "headers", None) or {}).get("id")
        if not task_id:
            return
        try:
            lease = self.results.get(LEASE_PREFIX + task_id)
            if isinstance(lease, bytes) and holder_node(lease.decode()) == self.node:
                self.results.delete(LEASE_PREFIX + task_id)
        except Exception as exc:  # noqa: BLE001 - the lease then lapses on its own
            logger.warning("could not release lease of {}: {}", task_id, exc.__class__.__name__)
