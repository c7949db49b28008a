"""kombu's Redis transport for the gateway's publisher, with two changes that only touch *how* the
Redis commands are sent, never what they are:

1. The channel reuses one `redis.Redis` between publishes. Stock kombu builds a new one for every
   publish; with redis-py 8 that constructor rebuilds its response-callback tables each time (about a
   fifth of a publish's CPU, measured). The client only wraps the channel's connection pool and is
   thread-safe.
2. `capture()`: inside it, kombu's producer batch (Producer.batch) hands the finished Redis commands
   of a publish (the task message's LPUSH, the task-sent event's PUBLISH) to the caller instead of
   sending them. The gateway then runs them in the same Lua script that records the task, so the
   record and the message reach Redis in one round trip, all or nothing (gateway/submission/publishing.py).

Its connections sit behind the gateway's Redis breaker (gateway/health/breaker.py), like every other
Redis client of the gateway, so a cancel's revoke broadcast fails fast while Redis is failing.

The commands are exactly the ones stock kombu would send: a stock `celery worker` and Flower see
ordinary Celery protocol-2 messages. Handed to celeryconfig by the gateway (gateway/extensions.py).

A Sentinel variant (`SentinelTransport`, chosen by celeryconfig for a sentinel:// broker) is the same
channel on kombu's SentinelChannel, its connections the breaker's Sentinel-managed ones, so the
publisher follows a failover as the gateway's other clients do (gateway/health/clients.py).

A capture never sends anything itself. kombu publishes straight away, without a batch, when a channel
says batching is unsafe (`supports_batch_publish`, false with retry_on_timeout): inside capture() that
publish is refused (`NotCaptured`, a 503 with nothing queued) instead of reaching Redis before the
record. Read from kombu 5.7.0; the internals named here are pinned by tests/contract.
"""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Any

from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis

from gateway.health.breaker import GuardedConnection, GuardedSentinelConnection

_capturing = threading.local()
ALLOWED = ("lpush", "publish", "pexpire")
Commands = list[tuple[str, tuple]]  # captured Redis commands: (redis-py method name, its arguments)


class NotCaptured(OperationalError):
    """A publish inside capture() that kombu tried to send without a batch: refused, nothing sent."""


class CapturedPublish:
    """Stands in for kombu's PublishBatch: collects the Redis commands a publish would run."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.commands: list[tuple[str, tuple]] = []
        self._collecting: list[tuple[str, tuple]] | None = None

    def publish(self, message: Any, **kwargs: Any) -> Any:
        collected: list[tuple[str, tuple]] = []
        self._collecting = collected
        try:
            result = self.channel.basic_publish(message, _publish_batch=self, **kwargs)
        finally:
            self._collecting = None
        unexpected = [name for name, _ in collected if name not in ALLOWED]
        if unexpected:
            raise RuntimeError(f"unexpected Redis commands in a publish: {unexpected}")
        self.commands.extend(collected)
        return result

    def add(self, name: str, *args: Any) -> None:
        if self._collecting is None:
            raise RuntimeError("Redis publish command added outside publication")
        self._collecting.append((name, args))

    def flush(self) -> None:
        """Nothing is sent here: the caller of capture() runs the commands."""

    def discard(self) -> None:
        self.commands.clear()

    def close(self) -> None:
        pass


@contextmanager
def capture():
    """Within this block, batched publishes on this thread are captured; yields the capture list."""
    captured: list[CapturedPublish] = []
    _capturing.current = captured
    try:
        yield captured
    finally:
        _capturing.current = None


def capturing() -> bool:
    return getattr(_capturing, "current", None) is not None


def captured_commands(captured: list[CapturedPublish]) -> Commands:
    return [command for batch in captured for command in batch.commands]


def queue_on(pipe: Any, commands: Commands) -> None:
    """Queue captured commands on a redis-py pipeline, to run on the broker (the caller executes it). By
    name and positional arguments, as a Lua script runs them: redis-py's own methods differ (`zadd` takes
    a mapping), and a delayed job's commands (jobs/delayed.py `hold`) include a ZADD."""
    for name, args in commands:
        pipe.execute_command(name.upper(), *args)


def as_json(commands: Commands) -> str:
    """Captured commands as a Lua script runs them (`[[name, [args...]]...]`, for `cjson.decode`)."""
    return json.dumps([[name, list(args)] for name, args in commands])


class Channel(kombu_redis.Channel):
    _shared_client = None
    connection_class = GuardedConnection

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        if self._shared_client is None:
            self._shared_client = self._create_client()
        yield self._shared_client

    def basic_publish(self, message: Any, exchange: str, routing_key: str, **kwargs: Any) -> Any:
        if kwargs.get("_publish_batch") is None and capturing():
            raise NotCaptured("a publish inside capture() would have been sent at once")
        return super().basic_publish(message, exchange, routing_key, **kwargs)

    def create_publish_batch(self, max_size):
        captured = getattr(_capturing, "current", None)
        if captured is None:
            return super().create_publish_batch(max_size)
        batch = CapturedPublish(self)
        captured.append(batch)
        return batch


class Transport(kombu_redis.Transport):
    Channel = Channel
    sentinel_variant: type[Transport]  # what celeryconfig hands over for a sentinel:// broker


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    connection_class = GuardedSentinelConnection


class SentinelTransport(Transport):
    Channel = SentinelChannel
    default_port = kombu_redis.SentinelTransport.default_port  # type: ignore[assignment]  # kombu declares None


Transport.sentinel_variant = SentinelTransport
