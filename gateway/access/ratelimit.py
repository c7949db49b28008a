"""Per-client rate limits and the cap on unfinished tasks, shared by every gunicorn worker and gateway
replica through Redis.

Limits are configuration (`limits.rate.<kind>` for `submit` and `read`; `limits.max_unfinished`), each
with a `default`, per-`roles` values and per-`clients` overrides; a client override beats its role's.

The rate limit is a sliding-window counter of our own; it replaced the `limits` library's, whose check
was a script of about eight commands in a round trip of its own. A limit of N per P seconds counts a
caller's requests in windows of P seconds aligned to the clock (multiples of P since the Unix epoch),
and admits a request when

    floor(the previous window's count x the share of it still inside the last P seconds)
        + this window's count, this request included  <=  N

which is the library's formula; only where windows start differs (there, at a caller's first request
after a pause). A refused request is not counted.

What a check costs Redis (gw:rate:<kind>:<who>:<P>:<span>, a hash: window -> count):
- one `HINCRBY`, which rides in the request's own round trip where the route defers its check
  (`rate_limited(kind, deferred=True)`: the task read's pipeline, the save script);
- the hash holds the windows of at least a minute, and each process sets its TTL (`EXPIREAT`) once,
  with the first request it counts there;
- the previous window's count matters only near the limit (this window's count over N x the share of
  it already gone): then it is read (`HGET`) once per process and window, and remembered, since a
  window that is over no longer changes;
- a refused request takes its count back (`HINCRBY -1`), and the process remembers until when that
  caller is refused for certain, answering it without Redis until then.
Over the limit: 429 with Retry-After, the earliest second the next request can pass if nobody else is
counted meanwhile. If Redis cannot be asked, requests pass (fail open): the broker or the task store
would answer 503 on their own, and a Redis that failed a moment ago is not asked at all
(gateway/health/breaker.py).
"""
from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from gateway.http.errors import TooManyRequests
from gateway.marks import Marks
from jobs.keys import RATE_PREFIX

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
NOTATION = re.compile(r"^(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?$")  # settings' schema's
SPAN = 60  # seconds of windows one hash holds at least, so its TTL is set about once a minute per process
SKEW = 60  # seconds a hash outlives its last use: clocks of gateway replicas may differ by that much


@dataclass(frozen=True)
class Rate:
    """N per P seconds, and the text it was written as (`10/minute`, `50 per second`, `100/2 hours`)."""

    text: str
    amount: int
    period: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        found = NOTATION.match(text.strip())
        if found is None:
            raise ValueError(f"not a rate: {text!r}")
        return cls(text, int(found[1]), int(found[2] or 1) * UNITS[found[3]])

    @property
    def span(self) -> int:
        """Windows per hash."""
        return max(2, math.ceil(SPAN / self.period))


def admitted(rate: Rate, keep: float, previous: int, count: int) -> bool:
    """The formula: `count` is this window's, the request included; `keep` the share of the previous
    window still inside the sliding window."""
    return math.floor(previous * keep) + count <= rate.amount


def previous_matters(rate: Rate, keep: float, count: int) -> bool:
    """Whether the previous window's count could refuse this request: it is at most N (a refused
    request is not counted), so below this it cannot."""
    return not admitted(rate, keep, rate.amount, count)


def refused_until(rate: Rate, index: int, previous: int, count: int) -> float:
    """When the next request can pass, after one refused in window `index` whose admitted count is
    `count`, if nobody else is counted meanwhile."""
    start = index * rate.period
    if rate.amount == 0:
        return start + rate.period  # refuses everything; one window is as good an answer as any
    room = rate.amount - count
    if room >= 1:  # later in this window: once floor(previous x keep) < room
        return start + rate.period * (1 - room / previous)
    # In the next window, this one is the previous: once floor(count x keep) < N.
    return start + rate.period * (2 - rate.amount / count)


class Refused(TooManyRequests):
    def __init__(self, rate: Rate, retry_after: int) -> None:
        super().__init__(f"Rate limit exceeded: {rate.text}", headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class Check:
    """One request counted against one rate for one caller (`who`), in the window of `now`: its
    commands go on the request's own pipeline (`queue`, then `settle` with their replies) or into
    its script (`script_keys`/`script_argument`, then `settle_script`); `SlidingWindow.run` sends them
    on their own."""

    def __init__(self, window: SlidingWindow, rate: Rate, kind: str, who: str, now: float) -> None:
        self.window, self.rate, self.kind, self.who, self.now = window, rate, kind, who, now
        self.index = math.floor(now / rate.period)
        self.keep = 1 - (now - self.index * rate.period) / rate.period
        self.key, self.field = window.location(rate, kind, who, self.index)
        self.previous_key, self.previous_field = window.location(rate, kind, who, self.index - 1)
        self.final = (kind, who, rate.period, self.index - 1)
        self.previous: int | None = window.finals.get(self.final)
        last_window = (self.index // rate.span + 1) * rate.span  # as the previous window, the hash's last use
        self.expire_at = None if window.ttls.holds(self.key, True) else (last_window + 1) * rate.period + SKEW

    def queue(self, pipe: Pipeline) -> int:
        """Queue the count on `pipe`; how many replies it adds, for `settle`."""
        pipe.hincrby(self.key, self.field, 1)
        if self.expire_at is not None:
            pipe.expireat(self.key, self.expire_at)
        return 1 + (self.expire_at is not None)

    def settle(self, replies: Sequence[Any]) -> None:
        """Judge on the replies of `queue`'s commands: raise Refused, or return (also when Redis erred)."""
        if isinstance(replies[0], Exception):
            logger.warning("rate limit storage unavailable: {}", replies[0].__class__.__name__)
            return
        if self.expire_at is not None and not isinstance(replies[1], Exception):
            self.window.ttls.put(self.key, True)
        self.window.judge(self, int(replies[0]))

    def script_keys(self) -> list[str]:
        return [self.key, self.previous_key]

    def script_argument(self) -> str:
        """For RATE_LUA: the window's field, the previous one's, N, the share kept, the TTL to set (0:
        none), the previous count if known (-1: not)."""
        return json.dumps({"field": self.field, "previous_field": self.previous_field, "amount": self.rate.amount,
                           "keep": self.keep, "expire_at": self.expire_at or 0,
                           "previous": -1 if self.previous is None else self.previous})

    def settle_script(self, refused_count: int | None, previous_read: int) -> None:
        """After the script ran: what it read, and Refused if it refused (`refused_count`: the window's
        admitted count then)."""
        if self.expire_at is not None:
            self.window.ttls.put(self.key, True)
        if previous_read >= 0:
            self.previous = previous_read
            self.window.finals.put(self.final, previous_read)
        if refused_count is not None:
            self.window.refuse(self, self.previous or 0, refused_count)


# The check inside a script (gateway/submission/publishing.py), before anything else it does: KEYS[k]
# the window's hash, KEYS[k+1] the previous window's, `rate` Check.script_argument decoded. Sets
# `rate_refused` (the admitted count, when refused) and `rate_previous` (what it read, -1: nothing).
RATE_LUA = """
local rate_refused, rate_previous = nil, -1
local function rate_check(rate, key, previous_key)
  local count = redis.call('HINCRBY', key, rate.field, 1)
  if rate.expire_at ~= 0 then redis.call('EXPIREAT', key, rate.expire_at) end
  if math.floor(rate.amount * rate.keep) + count <= rate.amount then return end
  local previous = rate.previous
  if previous < 0 then
    previous = tonumber(redis.call('HGET', previous_key, rate.previous_field) or '0')
    rate_previous = previous
  end
  if math.floor(previous * rate.keep) + count > rate.amount then
    redis.call('HINCRBY', key, rate.field, -1)
    rate_refused = count - 1
  end
end
"""


class SlidingWindow:
    """The counter: checks and what this process remembers of them."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.clock = clock
        self.ttls = Marks()  # hashes whose TTL this process has set
        self.finals = Marks()  # (kind, who, P, window) -> its final count, once read
        self.refused = Marks()  # (kind, who, P) -> until when certainly refused

    @staticmethod
    def location(rate: Rate, kind: str, who: str, index: int) -> tuple[str, str]:
        return f"{RATE_PREFIX}:{kind}:{who}:{rate.period}:{index // rate.span}", str(index)

    def begin(self, rate: Rate, kind: str, who: str) -> Check:
        """A check for a request now; Refused at once if this process knows the caller is refused."""
        now = self.clock()
        until = self.refused.get((kind, who, rate.period))
        if until is not None and now < until:
            raise Refused(rate, retry_after(until, now))
        return Check(self, rate, kind, who, now)

    def run(self, check: Check) -> None:
        """Send a check's commands on their own (fail open)."""
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                check.queue(pipe)
                replies = pipe.execute(raise_on_error=False)
        except RedisError as exc:
            logger.warning("rate limit storage unavailable: {}", exc.__class__.__name__)
            return
        check.settle(replies)

    def hit(self, rate: Rate, kind: str, who: str) -> None:
        self.run(self.begin(rate, kind, who))

    def exceeded(self, rate: Rate, kind: str, who: str) -> None:
        """Refused if a request now would be refused, without counting one (fail open)."""
        check = self.begin(rate, kind, who)
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(check.key, check.field)
                pipe.hget(check.previous_key, check.previous_field)
                count, previous = pipe.execute()
        except RedisError as exc:
            logger.warning("rate limit storage unavailable: {}", exc.__class__.__name__)
            return
        count, previous = int(count or 0), int(previous or 0)
        if not admitted(rate, check.keep, previous, count + 1):
            self.refuse(check, previous, count)

    def judge(self, check: Check, count: int) -> None:
        """Admit a counted request, or take its count back and raise Refused."""
        previous = check.previous
        if previous is None and previous_matters(check.rate, check.keep, count):
            try:
                previous = int(self.redis.hget(check.previous_key, check.previous_field) or 0)
            except RedisError as exc:
                logger.warning("rate limit storage unavailable: {}", exc.__class__.__name__)
                return
            self.finals.put(check.final, previous)
        if previous is None or admitted(check.rate, check.keep, previous, count):
            return
        try:
            self.redis.hincrby(check.key, check.field, -1)
        except RedisError as exc:
            logger.warning("rate limit count not taken back: {}", exc.__class__.__name__)
        self.refuse(check, previous, count - 1)

    def refuse(self, check: Check, previous: int, count: int) -> None:
        until = refused_until(check.rate, check.index, previous, count)
        self.refused.put((check.kind, check.who, check.rate.period), until)
        raise Refused(check.rate, retry_after(until, check.now))


def retry_after(until: float, now: float) -> int:
    """Whole seconds, at least 1, never before `until` (at `until` itself the count is still just over)."""
    return max(1, math.ceil(until - now + 0.001))


class RateLimits:
    """The configured limits of each caller, and the counter they are checked with."""

    def __init__(self, redis: Redis, config: Mapping[str, Any], clock: Callable[[], float] = time.time) -> None:
        self.window = SlidingWindow(redis, clock)
        self.config = config
        self._parsed: dict[str, Rate] = {}

    def setting(self, table: Mapping[str, Any], role: str, client_id: str) -> Any:
        """The client's override, else its role's value, else the default."""
        return (table.get("clients") or {}).get(client_id, (table.get("roles") or {}).get(role, table.get("default")))

    def rate(self, kind: str, role: str, client_id: str) -> Rate | None:
        text = self.setting(self.config["rate"][kind], role, client_id)
        if not text:
            return None
        return self._parsed.get(text) or self._parsed.setdefault(text, Rate.parse(text))

    def pending(self, kind: str, role: str, client_id: str) -> Check | None:
        """The caller's check for this request, to be sent with the request's own commands (None:
        unlimited); Refused at once if this process knows the caller is over."""
        rate = self.rate(kind, role, client_id)
        return self.window.begin(rate, kind, client_id) if rate else None

    def check(self, kind: str, role: str, client_id: str) -> None:
        """Count this request now, in a round trip of its own."""
        check = self.pending(kind, role, client_id)
        if check is not None:
            self.window.run(check)

    def max_unfinished(self, role: str, client_id: str) -> int | None:
        return self.setting(self.config["max_unfinished"], role, client_id)
