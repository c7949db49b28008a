"""kombu's Redis transport for the workers (celeryconfig: handed over by tasks/app.py), made safe to lose
its connection and to be killed while it takes a message. Read from kombu 5.7.0; every kombu internal
named here is pinned by tests/contract (docs/architecture.md: upgrading kombu or Celery).

Stock kombu, four changes around a lost broker connection or a killed worker, none in the wire format:

1. A closed channel never crashes the worker. kombu rebuilds a channel's Redis pool from its
   connection's parameters; after the connection is gone those are None, and the restore that runs
   when the channel closes died with `AttributeError: 'NoneType' object has no attribute 'hostname'`,
   an "unrecoverable error" after which the worker stayed alive with no pool children, consuming
   nothing. Here that is a connection error, which every caller already handles.
2. Closing a channel puts back only what no child is running. Stock kombu puts back every message the
   channel delivered, including jobs still running (they keep running through a connection loss,
   celeryconfig): those would run twice. What is not put back stays in the `unacked` hash, where the
   lease sweep (tasks/delivery/leases.py) returns it to its queue once nobody refreshes it, or the
   finished job's redelivery is skipped (tasks/delivery/startcheck.py). A restore that fails because
   Redis is down is left to the same sweep instead of failing the close.
3. Recording a delivery in `unacked` (right after it was taken off the queue) is retried while Redis
   comes back, for a while: giving up lost it for good (jobs that vanished across a Redis restart).
4. Taking a message off its queue never loses it. Stock kombu takes it with BRPOP and records it in
   `unacked` afterwards: a worker killed in between lost the job (the fault suite's worker-kill-long
   lost 1 job in 10 kills). Here the message is moved (BLMOVE, atomic in Redis) into this worker's
   landing list (tasks/delivery/landing.py), recorded in `unacked`, then removed from the landing list.
   celeryconfig keeps one list per queue (`priority_steps` [0]).
5. A worker on several queues waits on all of them at once, as stock BRPOP does. BLMOVE reads one list,
   so the channel keeps its first queue and gives each other queue a sibling channel with a connection
   of its own (`_sibling`): each blocks on its queue, and the event loop reads whichever answers first.
   A move already sent is always read, even once the pool is full: its message sits in a landing list
   until then. So a worker on N queues may hold up to N - 1 jobs beyond its prefetch while it is busy
   (docs/guarantees.md); it never polls. A channel that closes (its queue cancelled, the worker
   stopping) drops its move in flight and puts back what it moved, without waiting for it.

A Sentinel variant (`SentinelTransport`, celeryconfig picks it for a sentinel:// broker) is the same
channel on kombu's SentinelChannel: only where its connection pool comes from differs (kombu's
`_sentinel_managed_pool`, a redis-py pool that asks the sentinels for the master whenever it connects),
so everything above holds through a failover; a lost master is a lost connection, handled as any.

What the transport needs to know of its worker — its node name, its landing lists, the jobs its
children run — it asks the worker's Keeper (tasks/delivery/keeper.py), which the consumer bootstep
(tasks/delivery/bootstep.py) hands to the consumer connection's transport as `keeper`. A transport
without one (a `celery inspect` client, Flower) takes messages as stock kombu does.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kombu.transport import redis as kombu_redis
from loguru import logger
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tasks.delivery.landing import PUT_BACK

if TYPE_CHECKING:
    from tasks.delivery.keeper import Keeper

MULTI_QUEUE_WAIT = 0.2  # seconds one queue is waited on before the next, should siblings be missing
APPEND_PATIENCE = 20.0  # seconds a delivery's record in `unacked` is retried before it is given up
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
T = TypeVar("T")


class LandingUnavailable(RuntimeError):
    """The channel's options rule out landing lists: taking with BRPOP would lose jobs again."""


def patiently(call: Callable[[], T], patience: float) -> T:
    """`call`, tried again while Redis does not answer (a restart from the AOF takes a few seconds), with
    a backoff from 0.1 s to 1 s, for `patience` seconds; then its last transient error is raised. Used
    where the caller has nothing better to do meanwhile: the event loop without its broker, a pool
    process whose job cannot start before its check."""
    deadline, pause = time.monotonic() + patience, 0.1
    while True:
        try:
            return call()
        except TRANSIENT:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(1.0, pause * 2)


class QoS(kombu_redis.QoS):
    def can_consume(self) -> bool:
        """Room for another message, or a move already sent whose reply must be read: its message waits
        in a landing list, and the sweep would put it back (and it run twice) if it were left there."""
        return self.channel._landing is not None or self.has_room()

    def has_room(self) -> bool:
        return bool(super().can_consume())

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            patiently(lambda: super(QoS, self).append(message, delivery_tag), APPEND_PATIENCE)
        except TRANSIENT as exc:
            logger.error("could not record delivery {} of task {}: {}", delivery_tag, _task_id(message),
                         exc.__class__.__name__)
            raise

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """kombu's sweep for deliveries past their visibility timeout takes a lock in Redis every time
        (four or five commands, every `unacked_restore_interval` seconds, in every worker, mostly to
        find nothing). One read of the oldest delivery comes first here; the locked sweep runs only
        when there is something to put back."""
        try:
            with self.channel.conn_or_acquire() as client:
                due = client.zrange(self.unacked_index_key, 0, time.time() - self.visibility_timeout,
                                    byscore=True, offset=0, num=1)
        except TRANSIENT:
            return  # the next sweep asks again; the event loop's own handling of a lost broker stands
        if due:
            super().restore_visible(start, num, interval)

    def restore_unacked(self, client: Any = None) -> list:
        keeper = _keeper(self.channel)
        keep = keeper.running() if keeper is not None else set()
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
        keeper = _keeper(self.channel)
        if requeue and message is not None and keeper is not None:
            keeper.release(message)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _landing: tuple[str, str] | None = None  # (landing list, queue) of the BLMOVE in flight
    _siblings: dict[str, Channel] | None = None  # queue -> the sibling channel that takes from it
    _main: Channel | None = None  # on a sibling: the channel it takes for

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        tag = super().basic_consume(queue, *args, **kwargs)
        self.share_queues()
        return tag

    def _basic_cancel(self, consumer_tag: str) -> Any:
        # A move in flight on the queue is dropped (its sibling's, or this channel's own) before the
        # queue's consumer goes: nothing of a cancelled queue is handed over afterwards.
        queue = self._tag_to_queue.get(consumer_tag)
        self._drop_sibling(queue)
        if self._landing is not None and self._landing[1] == queue:
            self._abandon_move()
        return super()._basic_cancel(consumer_tag)

    def share_queues(self) -> None:
        """With a keeper: this channel keeps one queue, and every other queue it consumes gets a sibling
        channel (the module's point 5). Called when a queue is added and when the keeper arrives; a
        cancelled queue only loses its sibling, so nothing is built while a consumer is torn down."""
        if _keeper(self) is None or self._main is not None or self.closed or self.connection is None:
            return
        siblings = self._siblings if self._siblings is not None else {}
        self._siblings = siblings
        for queue in [queue for queue in self.active_queues if queue not in siblings][1:]:
            siblings[queue] = _sibling(self, queue)

    def _drop_sibling(self, queue: str | None) -> None:
        sibling = (self._siblings or {}).pop(queue, None) if queue is not None else None
        if sibling is not None:
            sibling.close()

    def close(self) -> None:
        if self._main is not None:
            self._qos = None  # the deliveries are the main channel's to put back, not a sibling's
        for queue in list(self._siblings or ()):
            self._drop_sibling(queue)
        self._abandon_move()
        super().close()

    def _abandon_move(self) -> None:
        """A move in flight is not waited for when the channel closes: stock kombu reads its reply, which
        holds the event loop up to a whole wait (celeryconfig TAKE_WAIT) and can hand over a message of a
        queue just cancelled. Its connection is dropped instead, and whatever it moved goes straight back
        to the queue (else the landing sweep would, a refresh or two later)."""
        if self._landing is None:
            return
        landed, queue = self._landing
        self._landing = None
        connection: Any = self._in_poll
        self._in_poll = None  # type: ignore[assignment]  # kombu declares it False, then stores a connection or None
        if connection:
            connection.disconnect()
        try:
            with self.conn_or_acquire() as client:
                client.eval(PUT_BACK, 2, landed, queue)
        except TRANSIENT as exc:
            logger.warning("landing place of a closing channel not cleared: {}", exc.__class__.__name__)

    def _brpop_start(self, timeout: float | None = None) -> None:
        keeper = _keeper(self)
        if keeper is None:
            return super()._brpop_start(timeout)
        siblings = self._siblings or {}
        queues = [queue for queue in self._queue_cycle.consume(len(self.active_queues)) if queue not in siblings]
        if not queues:
            return
        queue = queues[0]
        wait = timeout if timeout is not None else self.brpop_timeout
        if len(queues) > 1:
            wait = min(wait, MULTI_QUEUE_WAIT)
        self._landing = (keeper.landings.register(self.conn_or_acquire, queue), queue)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]  # kombu declares it None, then stores floats
        self.client.connection.send_command("BLMOVE", queue, self._landing[0], "RIGHT", "LEFT", wait)

    def _brpop_read(self, **options: Any) -> bool:
        if _keeper(self) is None:
            return super()._brpop_read(**options)
        connection = self.client.connection
        if connection is None or connection._sock is None or not connection.can_read(timeout=0):
            # A readiness event this connection does not have: a stale one, for a descriptor that was
            # closed with a sibling and reused. Reading would block the event loop until the socket timeout
            # (the test suite's queue pause and resume saw 10 s). Any move in flight stays in flight.
            return False
        if self._landing is None:
            # Something to read and nothing asked: as kombu does for a BRPOP connection, drop it; the
            # poller connects again and sends the next move.
            connection.disconnect()
            return False
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
            self._in_poll = None  # type: ignore[assignment]  # kombu declares it False, then stores a connection or None
            self._flush_brpop_reauth()

    def check_landing_possible(self) -> None:
        """Landing lists need one Redis list per queue, unprefixed: say so loudly instead of losing jobs.
        Checked once per connection, when the bootstep hands the keeper over (the options never change)."""
        if self.global_keyprefix or list(self.priority_steps) != [0]:
            raise LandingUnavailable("the worker transport needs broker_transport_options priority_steps [0] "
                                     "and no global_keyprefix (celeryconfig.py)")

    def _landed(self, landed: str, item: bytes) -> None:
        """The delivery is in `unacked` now: it no longer needs its landing place."""
        try:
            with self.conn_or_acquire() as client:
                client.lrem(landed, 1, item)
        except TRANSIENT as exc:
            # Left there, this worker's next sweeps put it back (tasks/delivery/landing.py); the second
            # delivery of the job is skipped or held by its start check (tasks/delivery/startcheck.py).
            logger.warning("landing place of a delivery not cleared: {}", exc.__class__.__name__)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the channel's broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class SiblingQoS:
    """A sibling channel's view of its main channel's QoS: the main one counts the deliveries (they are
    its own: its consumers receive them); the sibling may read the reply of its own move in flight."""

    def __init__(self, sibling: Channel, main: QoS) -> None:
        self.sibling = sibling
        self.main = main

    def can_consume(self) -> bool:
        return self.sibling._landing is not None or self.main.has_room()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.main, name)


def _sibling(main: Channel, queue: str) -> Channel:
    """A channel on the main one's transport that takes from `queue` only, on a connection of its own,
    and hands what it takes to the main channel's consumer (the transport's `_deliver`)."""
    sibling = type(main)(main.connection)
    sibling._main = main
    sibling._qos = SiblingQoS(sibling, main.qos)
    sibling._active_queues.append(queue)
    sibling._update_queue_cycle()
    return sibling


class Transport(kombu_redis.Transport):
    Channel = Channel
    sentinel_variant: type[Transport]  # what celeryconfig hands over for a sentinel:// broker
    keeper: Keeper | None = None  # set on the consumer connection's transport by tasks/delivery/bootstep.py


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The channel above, its pool from the sentinels (the module's docstring)."""


class SentinelTransport(Transport):
    Channel = SentinelChannel
    default_port = kombu_redis.SentinelTransport.default_port  # type: ignore[assignment]  # kombu declares None


Transport.sentinel_variant = SentinelTransport


def _keeper(channel: Any) -> Keeper | None:
    return getattr(channel.connection, "keeper", None)


def _task_id(message: Any) -> str:
    headers = getattr(message, "headers", None) or {}
    return str(headers.get("id", "?"))
