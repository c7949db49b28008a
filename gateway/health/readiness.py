"""What /health checks: the broker, the result backend and the gateway's own Vault token, in parallel,
each within `BUDGET`, so /health answers within a second whatever is stalled (SPEC §8: within 2 s at
the client, and a load balancer's probe must not queue behind its own timeouts).

The probes are real calls made for this purpose (a Redis PING, Vault's token lookup-self with the
gateway's token), not the request path's breakers: /health reports what answers now. Concurrent
/health requests of one process share one round of probes (single flight), so a burst of probes
against a stalled dependency costs one timeout, not one per request.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

import requests
from redis.exceptions import RedisError

from gateway.health.clients import probe_client
from settings.addresses import SentinelOptions

BUDGET = 0.75  # seconds each probe may take; they run in parallel
Check = Callable[[], str | None]  # the name of the part that is down, or None


class Readiness:
    """Runs the checks in parallel within the budget; one round at a time per process."""

    def __init__(self, checks: list[tuple[str, Check]], budget: float = BUDGET) -> None:
        """`checks`: (the part's name if its check does not finish in time, the check)."""
        self._checks = checks
        self._budget = budget
        self._pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
        self._lock = threading.Lock()
        self._round: Future[list[str]] | None = None

    def down(self) -> list[str]:
        """Names of the parts that do not answer, in check order ([] when all do)."""
        with self._lock:
            current, leader = self._round, self._round is None
            if current is None:
                current = self._round = Future()
        if not leader:
            return current.result(timeout=self._budget + 0.5)
        try:
            found = self._probe()
            current.set_result(found)
            return found
        except BaseException as exc:
            current.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._round = None

    def _probe(self) -> list[str]:
        futures = [(name, self._pool.submit(check)) for name, check in self._checks]
        wait([future for _, future in futures], timeout=self._budget + 0.1)
        names = [future.result() if future.done() and not future.exception() else name for name, future in futures]
        return [name for name in names if name]


def redis_check(name: str, url: str, budget: float = BUDGET, sentinel: SentinelOptions | None = None) -> Check:
    """A PING on a client of its own: bounded, never retried, not behind the request path's breaker.
    For a sentinel:// `url` it PINGs the master the sentinels name now."""
    client = probe_client(url, budget, sentinel)

    def check() -> str | None:
        try:
            return None if client.ping() else name
        except RedisError:
            return name
    return check


def vault_token_check(url: str, token: str, budget: float = BUDGET) -> Check:
    """Vault answers and the gateway's own token is valid: `auth/token/lookup-self` with that token
    (allowed by Vault's default policy). A sealed or unreachable Vault is `vault`; a token Vault no
    longer knows (a dev Vault restarted with a new setup, a revoked or expired token) is `vault token`,
    because then every entity read, and so every userpass login, fails although Vault is up."""

    def check() -> str | None:
        try:
            response = requests.get(f"{url}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token},
                                    timeout=budget)
        except requests.RequestException:
            return "vault"
        if response.status_code == 200:
            return None
        return "vault token" if response.status_code == 403 else "vault"
    return check
