"""Rate limits and the unfinished-task cap, per client, shared across both gunicorn workers via Redis;
the sliding-window counter against the `limits` library's it replaced, on a stopped clock."""
from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from devsupport.processes import free_port
from gateway.access.ratelimit import Rate, RateLimits, Refused, SlidingWindow
from gateway.health.clients import RATE_LIMIT_TIMEOUT, redis_client
from tests.support.api import b64
from tests.support.ratewindows import clear_of_window_edge


def submit(gateway_url: str, token: str, job_type: str = "calc_hash") -> requests.Response:
    # A new connection per request: the kernel spreads them over both gunicorn worker processes.
    return requests.post(gateway_url + "/submit", json={"type": job_type, "upload": {"content": b64(b"rl")}},
                         headers={"Authorization": "Bearer " + token, "Connection": "close"}, timeout=10)


def test_rate_limit_is_shared_by_both_workers_and_per_client(gateway_url, worker, vault):
    limited = vault.jwt(client_id="rl-client", client_role="service")
    clear_of_window_edge(60, 10)
    responses = [submit(gateway_url, limited) for _ in range(12)]
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 5 and statuses.count(429) == 7  # 5/minute across the two processes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json() == {"code": 429, "message": "Rate limit exceeded: 5/minute"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    other = vault.jwt(client_id=f"neighbour-{uuid.uuid4().hex[:6]}", client_role="service")
    assert all(submit(gateway_url, other).status_code == 202 for _ in range(8))


def test_unfinished_cap_refuses_with_a_clear_message_and_frees_up_on_cancel(gateway_url, worker, vault, redis_client):
    token = vault.jwt(client_id="capped-client", client_role="admin")
    accepted = [submit(gateway_url, token, "calc_hash_parked") for _ in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    queued = redis_client.llen("parked")
    refused = submit(gateway_url, token, "calc_hash_parked")
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Too many unfinished tasks: at most 3")
    assert redis_client.llen("parked") == queued
    first = accepted[0].json()["uuid"]
    cancel = requests.delete(f"{gateway_url}/tasks/{first}", headers={"Authorization": "Bearer " + token}, timeout=10)
    assert cancel.status_code == 202
    assert submit(gateway_url, token, "calc_hash_parked").status_code == 202


def test_finished_tasks_leave_the_cap(gateway_url, worker, vault, redis_client):
    client_id = f"cap-done-{uuid.uuid4().hex[:6]}"
    token = vault.jwt(client_id=client_id, client_role="admin")
    response = requests.post(gateway_url + "/submit", json={"type": "hold", "upload": {"tag": "cap"}},
                             headers={"Authorization": "Bearer " + token}, timeout=10)
    task_id = response.json()["uuid"]
    assert redis_client.zscore(f"gw:open:{client_id}", task_id) is not None  # held: still unfinished
    redis_client.rpush(f"release:{task_id}", "go")
    from devsupport.processes import wait_until
    wait_until(lambda: redis_client.zscore(f"gw:open:{client_id}", task_id) is None, 30, "finished task left the set")


class Clock:
    """A stopped clock that tests move, starting at the beginning of a window in the future (the
    counter's keys expire at times it computes, so they must not lie in the real past)."""

    def __init__(self, period: int) -> None:
        import time
        self.now = float((math.floor(time.time() / period) + 1) * period)

    def __call__(self) -> float:
        return self.now


@dataclass
class LimitsLibrary:
    """The `limits` library's sliding-window counter (limits 5.8, RedisStorage's
    acquire_sliding_window.lua), transcribed: a caller's first window begins at its first request,
    lives 2 P, and becomes the previous one, weighted by the time it has left, P after it began."""

    rate: Rate
    current: tuple[int, float] | None = None  # (count, expires at)
    previous: tuple[int, float] | None = None

    def hit(self, now: float) -> bool:
        period = self.rate.period
        self.current = self.current if self.current and self.current[1] > now else None
        self.previous = self.previous if self.previous and self.previous[1] > now else None
        if self.current and self.current[1] - now < period:
            self.previous, self.current = self.current, (0, self.current[1] + period)
        weighted = math.floor(self.previous[0] * (self.previous[1] - now) / period) if self.previous else 0
        count = self.current[0] if self.current else 0
        if weighted + count + 1 > self.rate.amount:
            return False
        self.current = (count + 1, self.current[1]) if self.current else (1, now + 2 * period)
        return True


def admitted(window: SlidingWindow, rate: Rate, who: str) -> bool:
    try:
        window.hit(rate, "test", who)
    except Refused:
        return False
    return True


@pytest.fixture
def clocked(redis_client) -> Iterator[tuple[Clock, SlidingWindow, SlidingWindow]]:
    """A clock and two counters on it (two gateway processes) sharing the test Redis."""
    clock = Clock(60)
    yield clock, SlidingWindow(redis_client, clock), SlidingWindow(redis_client, clock)


@pytest.mark.parametrize("text", ["10/minute", "3 per minute", "50/second"])
def test_counter_admits_what_the_limits_library_admitted(clocked, text):
    """Where the library's windows begin on the clock's (a first request at a window's start, no
    window without requests), both admit exactly the same requests; two processes share the count."""
    clock, one, other = clocked
    rate, who, rng = Rate.parse(text), uuid.uuid4().hex, random.Random(text)
    library = LimitsLibrary(rate)
    decisions = []
    for n in range(1500):
        expected = library.hit(clock.now)
        decisions.append(expected)
        assert admitted(one if n % 2 else other, rate, who) == expected, (n, clock.now)
        # Bursts and pauses, about 1.6 N per window, no pause as long as a window.
        clock.now += rate.period * rng.choice([0.0, 0.0, 0.002, 0.01, 0.03, 0.1, 0.5, 0.95]) * 3 / rate.amount
    assert 0.1 < decisions.count(False) / len(decisions) < 0.9  # the limit was met, and not always


def test_a_window_admits_n_and_refused_requests_are_not_counted(clocked):
    clock, one, _ = clocked
    rate, who = Rate.parse("5/minute"), uuid.uuid4().hex
    assert [admitted(one, rate, who) for _ in range(12)] == [True] * 5 + [False] * 7
    clock.now += 2 * rate.period  # the refused seven weigh nothing after them
    assert [admitted(one, rate, who) for _ in range(6)] == [True] * 5 + [False]


@pytest.mark.parametrize("wait", [30, 5])
def test_retry_after_is_when_the_next_request_passes(clocked, redis_client, wait):
    """Refused at `wait` seconds into a window: once with this window full (the next begins 30 s
    later), once with the previous window's count still weighing; a process that never saw the
    refusal agrees, the second before Retry-After and at it."""
    clock, one, _ = clocked
    rate, who = Rate.parse("5/minute"), uuid.uuid4().hex
    if wait == 5:  # five at the end of the previous window, one admitted at 5 s into this one
        clock.now += 59
        assert all(admitted(one, rate, who) for _ in range(5))
        clock.now += 6
        assert admitted(one, rate, who)
    else:
        clock.now += wait
        assert all(admitted(one, rate, who) for _ in range(5))
    with pytest.raises(Refused) as refused:
        one.hit(rate, "test", who)
    retry_after, refused_at = refused.value.retry_after, clock.now
    assert refused.value.headers == {"Retry-After": str(retry_after)}
    assert retry_after == (31 if wait == 30 else 8)  # at 30 s the full window still weighs 5
    fresh = SlidingWindow(redis_client, clock)
    clock.now = refused_at + retry_after - 1
    assert not admitted(fresh, rate, who)
    clock.now = refused_at + retry_after
    assert admitted(SlidingWindow(redis_client, clock), rate, who)


def test_client_override_beats_its_role_which_beats_the_default(redis_client):
    config = {"rate": {"read": {"default": "200/second", "roles": {"service": "10/second"},
                                "clients": {"special": "3/minute", "free": None}}}}
    limits = RateLimits(redis_client, config)
    assert limits.rate("read", "admin", "anyone") == Rate("200/second", 200, 1)
    assert limits.rate("read", "service", "anyone") == Rate("10/second", 10, 1)
    assert limits.rate("read", "service", "special") == Rate("3/minute", 3, 60)
    assert limits.rate("read", "service", "free") is None


def test_the_counter_fails_open_when_redis_cannot_be_asked():
    dead = SlidingWindow(redis_client(f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_TIMEOUT))
    rate = Rate.parse("1/hour")
    assert all(admitted(dead, rate, "anyone") for _ in range(3))  # the first fails, the breaker refuses the rest
    dead.exceeded(rate, "test", "anyone")  # the throttle's read-only check passes too
