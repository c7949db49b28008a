"""Per-client rate limits and the cap on unfinished tasks, shared by every gunicorn worker and gateway
replica through Redis (the `limits` library, the engine of Flask-Limiter, with its sliding-window
counter: two Redis keys per client and limit, one round trip per check).

Limits are configuration (`limits.rate.<kind>` for `submit` and `read`; `limits.max_unfinished`), each
with a `default`, per-`roles` values and per-`clients` overrides; a client override beats its role's.
Over the limit: 429 with Retry-After and the error envelope. If Redis cannot be asked, requests pass
(fail open): the broker or the task store would answer 503 on their own. A Redis that failed a
moment ago is not asked at all (gateway/health/breaker.py), so a stalled Redis does not cost every request
the limiter's timeout.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from limits import parse
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from loguru import logger

from gateway.health.clients import RATE_LIMIT_TIMEOUT, redis_options
from gateway.http.errors import TooManyRequests
from jobs.keys import RATE_PREFIX


class RateLimits:
    def __init__(self, redis_url: str, config: Mapping[str, Any]) -> None:
        # Behind the same breaker as the task store: while Redis fails, the check is skipped at once.
        storage = RedisStorage(redis_url, key_prefix=RATE_PREFIX, wrap_exceptions=True,
                               **redis_options(RATE_LIMIT_TIMEOUT))
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.config = config
        self._parsed: dict[str, Any] = {}

    def setting(self, table: Mapping[str, Any], role: str, client_id: str) -> Any:
        """The client's override, else its role's value, else the default."""
        return (table.get("clients") or {}).get(client_id, (table.get("roles") or {}).get(role, table.get("default")))

    def check(self, kind: str, role: str, client_id: str) -> None:
        text = self.setting(self.config["rate"][kind], role, client_id)
        if not text:
            return
        item = self._parsed.get(text) or self._parsed.setdefault(text, parse(text))
        try:
            allowed = self.limiter.hit(item, kind, client_id)
            reset = self.limiter.get_window_stats(item, kind, client_id).reset_time if not allowed else 0
        except Exception as exc:  # noqa: BLE001 - limits wraps storage errors; fail open
            logger.warning("rate limit storage unavailable: {}", exc.__class__.__name__)
            return
        if not allowed:
            retry_after = max(1, math.ceil(reset - time.time()))
            raise TooManyRequests(f"Rate limit exceeded: {text}", headers={"Retry-After": str(retry_after)})

    def max_unfinished(self, role: str, client_id: str) -> int | None:
        return self.setting(self.config["max_unfinished"], role, client_id)

