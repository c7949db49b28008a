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
3. Recording a delivery in `unacked` (right after BRPOP took it off the queue) is retried while Redis
   comes back, for a while: the message exists nowhere else, and giving up lost it for good (jobs that
   vanished across a Redis restart).

`running` is set by tasks/leases.py: the delivery tags whose jobs a child of this worker is running.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from loguru import logger
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

APPEND_PATIENCE = 20.0  # seconds a delivery's record in `unacked` is retried before it is given up
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)

running: Callable[[], set[str]] = set
on_requeue: Callable[[Any], None] = lambda message: None


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

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the channel's broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def _task_id(message: Any) -> str:
    headers = getattr(message, "headers", None) or {}
    return str(headers.get("id", "?"))
