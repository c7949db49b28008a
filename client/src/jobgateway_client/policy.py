"""When a call is repeated, and how long it waits: bounded by a deadline, never forever.

- 429: wait what `Retry-After` says (backoff when it is absent), then repeat;
- 503 (502 and 504 from a proxy in front too) and no answer at all (refused, reset, timed out): wait
  a capped exponential backoff with jitter, then repeat;
- anything else is an answer: returned or raised at once.
Repeating a submit is safe because every submit carries its idempotency key (client.py). A 401 is not
handled here: a token provider gets one re-login (auth.py), other strategies raise."""
from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobgateway_client.errors import ApiError, GatewayUnavailable

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
OUTCOME_STATUSES = frozenset({503})  # a 503 carrying a uuid: that task may exist
logger = logging.getLogger("jobgateway_client")


@dataclass(frozen=True)
class RetryPolicy:
    """`deadline`: seconds one call may go on retrying (no retry starts after it; the last attempt
    still has the client's request timeout). Attempt n waits `min(backoff_max, backoff * 2**(n-1))`,
    times a random 0.5-1 with `jitter`. A `Retry-After` over `retry_after_max` is not waited out."""

    deadline: float = 30.0
    backoff: float = 0.25
    backoff_max: float = 5.0
    jitter: bool = True
    retry_after_max: float = 60.0

    def backoff_for(self, attempt: int) -> float:
        wait = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return wait * random.uniform(0.5, 1.0) if self.jitter else wait


NO_RETRY = RetryPolicy(deadline=0.0)


@dataclass(frozen=True)
class RetryEvent:
    """Told to `on_retry` before each repeat: which repeat (1, 2, …), the wait before it, why
    (`rate limited`, `unavailable`, `connection`, `re-login`) and the error that caused it."""

    attempt: int
    delay: float
    reason: str
    error: Exception


RetryHook = Callable[[RetryEvent], object]


def reason_for(error: ApiError) -> str:
    if error.status is None:
        return "connection"
    return "rate limited" if error.status == 429 else "unavailable"


class Attempts:
    """The retry budget of one logical call: how long to wait before the next attempt, or the error
    raised because the budget is spent. `until` (time.monotonic()) can shorten the policy's deadline,
    as `wait` does with its own timeout."""

    def __init__(self, policy: RetryPolicy, on_retry: RetryHook | None = None, until: float | None = None) -> None:
        self.policy = policy
        self.on_retry = on_retry
        self.end = time.monotonic() + policy.deadline
        if until is not None:
            self.end = min(self.end, until)
        self.count = 0
        self.maybe_created: str | None = None  # a uuid a 503 said may exist (outcome unknown)
        self.told: object = None  # what on_retry last returned (AsyncClient awaits it if awaitable)

    def delay(self, error: ApiError) -> float:
        """Seconds to wait before repeating after `error`; raises `error` when no repeat fits. A task
        an earlier attempt's 503 named (outcome unknown) stays named on the error finally raised."""
        if error.status in OUTCOME_STATUSES and error.uuid:
            self.maybe_created = self.maybe_created or error.uuid  # the first attempt's: sent first, likeliest to run first
        elif isinstance(error, GatewayUnavailable) and error.uuid is None:
            error.uuid = self.maybe_created
        if error.status is not None and error.status not in RETRIED_STATUSES:
            raise error
        if error.status == 429 and error.retry_after:  # Retry-After: 0 (or none) is backed off, never spun on
            if error.retry_after > self.policy.retry_after_max:
                raise error
            wait = error.retry_after
        else:
            wait = self.policy.backoff_for(self.count + 1)
        if time.monotonic() + wait > self.end:
            raise error
        self.count += 1
        self._tell(RetryEvent(self.count, wait, reason_for(error), error))
        return wait

    def relogin(self, error: ApiError) -> None:
        self.count += 1
        self._tell(RetryEvent(self.count, 0.0, "re-login", error))

    def _tell(self, event: RetryEvent) -> None:
        logger.info("retrying (%d) in %.2fs, %s: %s", event.attempt, event.delay, event.reason, event.error)
        if self.on_retry is not None:
            self.told = self.on_retry(event)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: an integer, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
