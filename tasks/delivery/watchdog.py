"""The worker's watchdog (SPEC §8: a worker never wedges).

The consumer's event loop stamps every `TICK` seconds while it is connected (and touches the heartbeat
file the container healthcheck reads, tasks/delivery/heartbeat.py). If it has not for `STALL_LIMIT`
seconds and the worker is not shutting down — it lost its broker and could not get it back, or it
wedged after an unrecoverable error — the worker kills its pool and exits with status 1, so its
supervisor (compose `restart:`) starts a fresh one; its jobs come back through the lease sweep. A warm
shutdown keeps its leases while running jobs finish, up to the longest time limit (`shutdown_grace`).
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

from celery.worker import state
from loguru import logger

from tasks.delivery import heartbeat

STALL_LIMIT = 60.0  # seconds without a stamp from a connected consumer before the worker gives up


class Watchdog:
    def __init__(self, node: str, shutdown_grace: float) -> None:
        self.node = node
        self.shutdown_grace = shutdown_grace
        self.last_stamp = time.monotonic()
        self.consumer: Any = None
        self._stopping_since: float | None = None

    def stamp(self, consumer: Any) -> None:
        """Called by the event loop: it runs, and its broker connection is up."""
        self.consumer = consumer
        connection = getattr(consumer, "connection", None)
        if connection is not None and connection.connected:
            self.last_stamp = time.monotonic()
            heartbeat.touch(self.node)

    def check(self) -> None:
        """From the keeper's thread: give up when the loop stalled, or a shutdown outlasts its grace."""
        now = time.monotonic()
        if state.should_stop or state.should_terminate:
            if self._stopping_since is None:
                self._stopping_since = now
            if now - self._stopping_since > self.shutdown_grace:
                self.give_up(f"shutdown still running after {self.shutdown_grace:.0f}s")
        elif now - self.last_stamp > STALL_LIMIT:
            self.give_up(f"no progress from a connected consumer for {now - self.last_stamp:.0f}s")

    def give_up(self, why: str) -> None:
        """Exit non-zero so the supervisor restarts the worker; children first, so no orphan keeps
        running a job that the sweep will hand to another worker."""
        logger.critical("worker {} exits: {}", self.node, why)
        for pid in pool_pids(self.consumer):
            _kill(pid)
        os._exit(1)


def pool_pids(consumer: Any) -> list[int]:
    """The pids of the prefork pool's children (billiard's Pool keeps its processes in `_pool`)."""
    try:
        return [process.pid for process in consumer.pool._pool._pool if process.pid]
    except AttributeError:
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
