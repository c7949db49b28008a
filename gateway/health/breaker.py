"""Fail fast while a dependency is failing, so a stalled Redis or Vault costs one timeout per gateway
process, not one per request (SPEC §8: every route answers within 2 s at the client).

Without this, each of a process's threads spends its full socket timeout on the stalled server; with
more concurrent clients than threads, requests queue behind busy threads and answer long after 2 s.
A breaker opens on the first failed call (timeout, refused, reset), answers "unavailable" at once
while open, and after `COOLDOWN` lets one call through as a probe: its success closes the breaker,
its failure opens it again. Only that probe ever waits on the dependency.

`GuardedConnection` puts a breaker in front of every redis-py connection of the gateway, one breaker
per Redis server (host and port), so the rate limiter's, the throttle's and the task store's clients
share what they learn. It also tells a command that was never sent (`CircuitOpen`, or a failed
connect) from one that was sent and not answered (`Unanswered`): a script that reached a stalled Redis
may still run when it resumes, so its outcome is unknown, not "nothing happened".
"""
from __future__ import annotations

import threading
import time
from typing import Any

from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import SentinelManagedConnection

COOLDOWN = 1.0  # seconds a breaker stays open before it lets one probe through
PROBE_LIMIT = 5.0  # a probe that never reports (a thread killed mid-call) stops blocking others after this
TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class Breaker:
    """Closed: calls pass. Open: calls are refused at once. Half-open: one probe passes."""

    def __init__(self, name: str, cooldown: float = COOLDOWN) -> None:
        self.name = name
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._probe_until = 0.0  # while a probe is out: when it stops counting

    def allow(self) -> bool:
        """May a call go out now? In half-open state only the first caller gets True."""
        with self._lock:
            if not self._open_until:
                return True
            now = time.monotonic()
            if now < self._open_until or now < self._probe_until:
                return False
            self._probe_until = now + PROBE_LIMIT
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = self._probe_until = 0.0

    def failed(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.cooldown
            self._probe_until = 0.0

    @property
    def open(self) -> bool:
        return bool(self._open_until)


_breakers: dict[str, Breaker] = {}
_breakers_lock = threading.Lock()


def breaker(name: str) -> Breaker:
    """The process's one breaker for `name` (a dependency: "redis host:port", "vault")."""
    with _breakers_lock:
        return _breakers.setdefault(name, Breaker(name))


class CircuitOpen(RedisConnectionError):
    """Refused without sending anything: the server failed a moment ago."""


class Unanswered(RedisTimeoutError):
    """The command was sent and no answer came: whether it ran is unknown."""


class GuardedConnection(Connection):
    """A redis-py connection behind its server's breaker (pass as `connection_class`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._breaker = breaker(f"redis {self.host}:{self.port}")
        self._nested = False  # connect() runs AUTH/HELLO through these same methods

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._nested:
            return super().send_packed_command(command, check_health)
        if not self._breaker.allow():
            raise CircuitOpen(f"{self._breaker.name} failed recently")
        self._nested = True
        try:
            super().send_packed_command(command, check_health)
        except TRANSPORT_ERRORS:
            self._breaker.failed()
            raise
        finally:
            self._nested = False

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if self._nested:
            return super().read_response(*args, **kwargs)
        try:
            response = super().read_response(*args, **kwargs)
        except ResponseError:
            self._breaker.succeeded()  # an error reply is still an answer
            raise
        except TRANSPORT_ERRORS as exc:
            self._breaker.failed()
            raise Unanswered(f"no answer from {self._breaker.name}") from exc
        self._breaker.succeeded()
        return response


class GuardedSentinelConnection(GuardedConnection, SentinelManagedConnection):
    """The same breaker in front of a connection to whichever server the sentinels name master. Its
    breaker is the master's, by name, not by address: the address changes with a failover, and a
    breaker opened by the dead master's errors lets its probe through after COOLDOWN; the probe
    connects afresh, and so asks the sentinels for the new master."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._breaker = breaker(f"redis master {self.connection_pool.service_name}")
