"""Every Redis client of the gateway, from one factory, with its timeouts named here.

A request never waits on Redis longer than its client's timeout, and no client retries: while a server
fails, its breaker (gateway/health/breaker.py) answers at once, so a stalled Redis costs one timeout per
process, not one per request (SPEC §8: every route answers within 2 s at the client). The publisher's
own timeout is configuration (`queue.publish_timeout`, celeryconfig.py). /health's probes get clients of
their own, outside the breaker: they must see a server come back.

A sentinel:// address (settings/addresses.py) gives a client that follows the master through a failover,
its connections behind the master's breaker (GuardedSentinelConnection), with the same timeouts, which
also bound each question to a sentinel. `client_factory(settings.sentinel)` is how the app builds them.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from redis import Redis

from gateway.health.breaker import GuardedConnection, GuardedSentinelConnection
from settings.addresses import SentinelOptions, connect

TASK_STORE_TIMEOUT = 1.0  # the task store and the broker reads of request code
SCRAPE_TIMEOUT = 0.5  # /metrics and the ops API read the broker with this; they must never hang
RATE_LIMIT_TIMEOUT = 0.5  # a rate-limit check that cannot answer in time is skipped (fail open)
HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is PINGed before reuse


def redis_options(timeout: float) -> dict[str, Any]:
    """Connection options of a guarded client: bounded by `timeout`, never retried, behind the breaker."""
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, "connection_class": GuardedConnection}


def redis_client(url: str, timeout: float = TASK_STORE_TIMEOUT, name: str | None = None,
                 sentinel: SentinelOptions | None = None) -> Redis:
    """A client of request code (see the module's docstring); `name`: its CLIENT SETNAME, for CLIENT LIST;
    `sentinel`: the master's name and the sentinels' credentials, for a sentinel:// `url`."""
    return connect(url, sentinel, sentinel_connection_class=GuardedSentinelConnection, decode_responses=True,
                   health_check_interval=HEALTH_CHECK_INTERVAL, client_name=name, **redis_options(timeout))


def client_factory(sentinel: SentinelOptions | None) -> Callable[..., Redis]:
    """`redis_client` for one app's settings: every client it builds reaches a sentinel:// address."""
    return partial(redis_client, sentinel=sentinel)


def probe_client(url: str, timeout: float, sentinel: SentinelOptions | None = None) -> Redis:
    """A client for /health's PING: bounded, never retried, not behind the request path's breaker."""
    return connect(url, sentinel, socket_timeout=timeout, socket_connect_timeout=timeout)
