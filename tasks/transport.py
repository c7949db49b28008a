"""kombu's Redis transport for the workers, made safe to lose its connection (celeryconfig: worker role).

Stock kombu, three changes in what happens around a lost broker connection, none in the wire format:

1. A closed channel never crashes the worker. kombu rebuilds a channel's Redis pool from its
   connection's parameters; after the connection is gone those are None, and the restore that runs
   when the channel closes died with `AttributeError: 'NoneType' object has no attribute 'hostname'`,
   an "unrecoverable error" after which the worker stayed alive with no pool children, consuming
   nothing. Here that is a connection error, which every caller already handles.
2. Closing a channel puts back only what no child is running. Stock kombu puts back every message the
   channel delivered, including jobs still running (they now keep running through a connection loss,
   celeryconfig): those would run twice. What is not put back stays in the `unacked` hash, where the
   lease sweep (tasks/leases.py) returns it to its queue once nobody refreshes it, or the finished
   job's redelivery is skipped (tasks/base.py). A restore that fails because Redis is down is left to
   the same sweep instead of failing the close.
3. Recording a delivery in `unacked` (right after it was taken off the queue) is retried while Redis
   comes back, for a while: giving up lost it for good (jobs that vanished across a Redis restart).
4. Taking a message off its queue never loses it. Stock kombu takes it with BRPOP and records it in
   `unacked` afterwards: a worker killed in between lost the job (it was in no queue and not in
   `unacked`; the fault suite's worker-kill-long lost 1 job in 10 kills). Here the message is moved
   (BLMOVE, atomic in Redis) into this worker's landing list, `gw:landing:<node>:<queue>`, recorded in
   `unacked`, then removed from the landing list. Whatever a dead worker left there goes back to the
   front of its queue (tasks/landing.py): when the worker starts again under its name, or when any
   worker's sweep finds it dead. BLMOVE reads one list, so a worker consuming several queues polls
   them in turn, `MULTI_QUEUE_WAIT` seconds each; celeryconfig keeps one list per queue
   (`priority_steps` [0]).

`running` is set by tasks/leases.py: the delivery tags whose jobs a child of this worker is running;
`landing_owner` too: this worker's node name (until it is set, messages are taken as stock kombu does).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from loguru import logger
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tasks import landing

MULTI_QUEUE_WAIT = 0.2  # seconds one queue is waited on before the next, when a worker consumes several
APPEND_PATIENCE = 20.0  # seconds a delivery's record in `unacked` is retried before it is given up
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)

running: Callable[[], set[str]] = set
on_requeue: Callable[[Any], None] = lambda message: None
landing_owner: str | None = None


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        deadline = time.monotonic() + APPEND_PATIENCE
        pause = 0.1
        while True:
            try:
                return super().append(message, delivery_tag)
            except TRANSIENT as exc:
                if time.monotonic() >= deadline:
                    logger.error("could not record delivery {} of task {}: {}", delivery_tag,
                                 _task_id(message), exc.__class__.__name__)
                    raise
                time.sleep(pause)  # the event loop has nothing else to do without its broker
                pause = min(1.0, pause * 2)

    def restore_unacked(self, client: Any = None) -> list:
        keep = running()
        for tag in list(self._delivered):
            if tag in keep:
                continue
            try:
                self.restore_by_tag(tag, client=client)
            except TRANSIENT as exc:
                logger.warning("delivery {} left for the lease sweep: {}", tag, exc.__class__.__name__)
        self._delivered.clear()
        return []

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        message = self._delivered.get(delivery_tag)
        super().reject(delivery_tag, requeue=requeue)
        if requeue and message is not None:
            on_requeue(message)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _landing: tuple[str, str] | None = None  # (landing list, queue) of the BLMOVE in flight

    def _brpop_start(self, timeout: float | None = None) -> None:
        if landing_owner is None or self.global_keyprefix or list(self.priority_steps) != [0]:
            return super()._brpop_start(timeout)
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        queue = queues[0]
        wait = timeout if timeout is not None else self.brpop_timeout
        if len(queues) > 1:
            wait = min(wait, MULTI_QUEUE_WAIT)
        self._landing = (landing.key(landing_owner, queue), queue)
        landing.register(self.conn_or_acquire, landing_owner, queue)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        self.client.connection.send_command("BLMOVE", queue, self._landing[0], "RIGHT", "LEFT", wait)

    def _brpop_read(self, **options: Any) -> bool:
        if self._landing is None:
            return super()._brpop_read(**options)
        landed, queue = self._landing
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            self._queue_cycle.rotate(queue)
            if not item:
                raise kombu_redis.Empty()
            self.connection._deliver(kombu_redis.loads(kombu_redis.bytes_to_str(item)), queue)
            self._landed(landed, item)
            return True
        finally:
            self._landing = None
            self._in_poll = None
            self._flush_brpop_reauth()

    def _landed(self, landed: str, item: bytes) -> None:
        """The delivery is in `unacked` now: it no longer needs its landing place."""
        try:
            with self.conn_or_acquire() as client:
                client.lrem(landed, 1, item)
        except TRANSIENT as exc:
            # Left there, this worker's next sweeps put it back (tasks/landing.py); the second delivery
            # of the job is skipped or held by its start check (tasks/start.py).
            logger.warning("landing place of a delivery not cleared: {}", exc.__class__.__name__)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the channel's broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def _task_id(message: Any) -> str:
    headers = getattr(message, "headers", None) or {}
    return str(headers.get("id", "?"))
