"""Every Redis client of the gateway, from one factory, with its timeouts named here.

A request never waits on Redis longer than its client's timeout, and no client retries: while a server
fails, its breaker (gateway/health/breaker.py) answers at once, so a stalled Redis costs one timeout per
process, not one per request (SPEC §8: every route answers within 2 s at the client). The publisher's
own timeout is configuration (`queue.publish_timeout`, celeryconfig.py). /health's probes get clients of
their own, outside the breaker: they must see a server come back.
"""
from __future__ import annotations

from typing import Any

from redis import Redis

from gateway.health.breaker import GuardedConnection

TASK_STORE_TIMEOUT = 1.0  # the task store and the broker reads of request code
SCRAPE_TIMEOUT = 0.5  # /metrics and the ops API read the broker with this; they must never hang
RATE_LIMIT_TIMEOUT = 0.5  # a rate-limit check that cannot answer in time is skipped (fail open)
HEALTH_CHECK_INTERVAL = 30  # seconds idle before a pooled connection is PINGed before reuse


def redis_options(timeout: float) -> dict[str, Any]:
    """Connection options of a guarded client: bounded by `timeout`, never retried, behind the breaker."""
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, "connection_class": GuardedConnection}


def redis_client(url: str, timeout: float = TASK_STORE_TIMEOUT, name: str | None = None) -> Redis:
    """A client of request code (see the module's docstring); `name`: its CLIENT SETNAME, for CLIENT LIST."""
    return Redis.from_url(url, decode_responses=True, health_check_interval=HEALTH_CHECK_INTERVAL,
                          client_name=name, **redis_options(timeout))


def probe_client(url: str, timeout: float) -> Redis:
    """A client for /health's PING: bounded, never retried, not behind the request path's breaker."""
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
