"""A worker's leases on the jobs it runs, and its watchdog (SPEC §8: a job whose worker died runs again
promptly; a worker never wedges).

How a lost job comes back. kombu records every delivery in the broker's `unacked` hash, scored by
when it was delivered, and any worker's sweep puts back in its queue a delivery older than
`visibility_timeout` (celeryconfig: every 5 s). Stock, that timeout has to outlast the longest job
(it was an hour). Here every live worker re-scores the deliveries its children are running every
`TICK` seconds, so the timeout only has to outlast a few missed refreshes: `workers.visibility_timeout`
(45 s). A worker killed with its whole process group stops refreshing; its running jobs are back in
their queue at most `visibility_timeout + 5` s later, at the front, and run again. The same refresh
keeps each running job's lease (`gw:lease:<uuid>`, jobs/keys.py): a running job without one has lost
its worker, and the gateway shows it queued again instead of `pending`. A child that dies while its
worker lives hands its job back at once (Celery's reject-on-worker-lost) and its lease is dropped.

The watchdog. The consumer's event loop stamps `TICK`-ly while it is connected (and touches a
heartbeat file the container healthcheck reads: `python -m tasks.alive`). If it has not for
`STALL_LIMIT` seconds and the worker is not shutting down — it lost its broker and could not get it
back, or it wedged after an unrecoverable error — the worker kills its pool and exits with status 1,
so its supervisor (compose `restart:`) starts a fresh one; its jobs come back through the sweep.
A warm shutdown keeps its leases while running jobs finish, up to the longest time limit.
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery import bootsteps
from celery.worker import state
from loguru import logger
from redis import Redis

from jobs.keys import LEASE_PREFIX
from tasks import landing, transport
from tasks.runtime import worker_settings

TICK = 5.0  # seconds between refreshes, and between the event loop's stamps
STALL_LIMIT = 60.0  # seconds without a stamp from a connected consumer before the worker gives up
SHUTDOWN_MARGIN = 30.0  # beyond the longest time limit, for a warm shutdown to finish
UNACKED_INDEX = "unacked_index"  # kombu's Redis transport: delivery tag -> when delivered (or refreshed)
CLIENT_TIMEOUT = 2.0


def heartbeat_path(node: str) -> Path:
    """The file a worker's event loop touches while it consumes (read by `python -m tasks.alive`)."""
    return Path(tempfile.gettempdir()) / f"celery-worker-{node}.alive"


def running_requests() -> dict[str, str]:
    """Delivery tag -> task id of every job a child of this worker is running. Read from another
    thread than the event loop's: a copy that meets a concurrent change is taken again."""
    for _ in range(5):
        try:
            return {request.message.delivery_tag: request.id for request in list(state.active_requests)
                    if request.message is not None}
        except RuntimeError:  # the WeakSet changed while it was copied
            continue
    return {}


class Keeper:
    """One per worker process: refreshes leases and watches the event loop (see the module's docstring)."""

    def __init__(self, node: str, broker_url: str, result_url: str, visibility: float, shutdown_grace: float) -> None:
        self.node = node
        self.visibility = visibility
        self.shutdown_grace = shutdown_grace
        self.broker = Redis.from_url(broker_url, socket_timeout=CLIENT_TIMEOUT, socket_connect_timeout=CLIENT_TIMEOUT)
        self.results = Redis.from_url(result_url, socket_timeout=CLIENT_TIMEOUT, socket_connect_timeout=CLIENT_TIMEOUT)
        self.last_stamp = time.monotonic()
        self.consumer: Any = None
        self._stopping_since: float | None = None
        self._landed: set[tuple[Any, Any]] = set()  # own landing places' contents at the last sweep
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def start(self) -> None:
        transport.running = lambda: set(running_requests())
        transport.on_requeue = self.release
        try:
            moved = landing.put_back(self.broker, self.node)
            if moved:
                logger.warning("put back {} message(s) a previous {} took and never recorded", moved, self.node)
            landing.mark_alive(self.broker, self.node, self.visibility)
        except Exception as exc:  # noqa: BLE001 - the other workers' sweeps put them back later
            logger.warning("could not put back landed messages: {}", exc.__class__.__name__)
        transport.landing_owner = self.node
        self._thread.start()

    def stamp(self, consumer: Any) -> None:
        """Called by the event loop: it runs, and its broker connection is up."""
        self.consumer = consumer
        connection = getattr(consumer, "connection", None)
        if connection is not None and connection.connected:
            self.last_stamp = time.monotonic()
            heartbeat_path(self.node).touch()

    def release(self, message: Any) -> None:
        """A child died running this job and it went back to its queue: its lease is no longer ours."""
        task_id = (getattr(message, "headers", None) or {}).get("id")
        try:
            if task_id and self.results.get(LEASE_PREFIX + task_id) == self.node.encode():
                self.results.delete(LEASE_PREFIX + task_id)
        except Exception as exc:  # noqa: BLE001 - the lease then lapses on its own
            logger.warning("could not release lease of {}: {}", task_id, exc.__class__.__name__)

    def _run(self) -> None:
        while True:
            time.sleep(TICK)
            self.check()

    def check(self) -> None:
        now = time.monotonic()
        stopping = bool(state.should_stop or state.should_terminate)
        if stopping and self._stopping_since is None:
            self._stopping_since = now
        if not stopping and now - self.last_stamp > STALL_LIMIT:
            self._give_up(f"no progress from a connected consumer for {now - self.last_stamp:.0f}s")
        if stopping and now - self._stopping_since > self.shutdown_grace:
            self._give_up(f"shutdown still running after {self.shutdown_grace:.0f}s")
        self.refresh()

    def refresh(self) -> None:
        """Say this worker lives and put back what dead workers or lost replies left in landing places
        (tasks/landing.py);
        re-score this worker's running deliveries and extend their leases, in two round trips."""
        try:
            landing.mark_alive(self.broker, self.node, self.visibility)
            moved, self._landed = landing.sweep(self.broker, self.node, self._landed)
            if moved:
                logger.warning("put back {} landed message(s) a dead worker or a lost reply left", moved)
        except Exception as exc:  # noqa: BLE001 - retried next tick
            logger.warning("could not sweep landing places: {}", exc.__class__.__name__)
        held = running_requests()
        if not held:
            return
        try:
            self.broker.zadd(UNACKED_INDEX, dict.fromkeys(held, time.time()), xx=True)
            with self.results.pipeline(transaction=False) as pipe:
                for task_id in held.values():
                    pipe.set(LEASE_PREFIX + task_id, self.node, ex=int(self.visibility))
                pipe.execute()
        except Exception as exc:  # noqa: BLE001 - retried next tick; the watchdog judges the loop, not this
            logger.warning("could not refresh {} leases: {}", len(held), exc.__class__.__name__)

    def _give_up(self, why: str) -> None:
        """Exit non-zero so the supervisor restarts the worker; children first, so no orphan keeps
        running a job that the sweep will hand to another worker."""
        logger.critical("worker {} exits: {}", self.node, why)
        for pid in _pool_pids(self.consumer):
            _kill(pid)
        os._exit(1)


def _pool_pids(consumer: Any) -> list[int]:
    try:
        return [process.pid for process in consumer.pool._pool._pool if process.pid]
    except AttributeError:
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class Liveness(bootsteps.StartStopStep):
    """Consumer bootstep: starts the process's Keeper once, and stamps from the event loop's timer."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    keeper: Keeper | None = None

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self._timer: Any = None

    def start(self, c: Any) -> None:
        if Liveness.keeper is None:
            Liveness.keeper = _keeper(c)
            Liveness.keeper.start()
        Liveness.keeper.stamp(c)
        self._timer = c.timer.call_repeatedly(TICK, Liveness.keeper.stamp, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    shutdown = stop


def _keeper(c: Any) -> Keeper:
    config = worker_settings().config
    longest = max(job["time_limit"] for job in config["jobs"].values())
    return Keeper(c.hostname, c.app.conf.broker_url, c.app.conf.result_backend,
                  config["workers"]["visibility_timeout"], longest + SHUTDOWN_MARGIN)
