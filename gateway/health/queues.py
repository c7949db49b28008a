"""What is waiting in the broker, read at call time: depth and age of the oldest message per queue.

kombu's Redis transport keeps a queue as a list (LPUSH to publish, the worker's transport takes from
the right end, so the oldest message sits there); kombu's priority lists (`<queue>\\x06\\x16<n>`) are
counted too, though celeryconfig keeps a single list per queue. The age comes
from the `gateway_submitted_at` header the gateway puts on each message; messages published by others
(Flower, scripts) have no age. Reads use their own Redis client with a short timeout, so a scrape or an
ops request never waits long on a sick broker.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from jobs.headers import SUBMITTED_HEADER
from jobs.keys import ALIVE_PREFIX, HTTP_WORKERS, LANDINGS

PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)  # kombu's default steps besides 0, which is the queue's own name


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int
    oldest_age: float | None  # seconds; None when empty or unknown


def queue_stats(redis: Redis, queues: list[str]) -> list[QueueStats]:
    """One pipelined round trip for every queue; raises RedisError when the broker does not answer."""
    names = [[q, *(f"{q}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)] for q in queues]
    with redis.pipeline(transaction=False) as pipe:
        for group in names:
            for name in group:
                pipe.llen(name)
            pipe.lindex(group[0], -1)
        replies = pipe.execute()
    now, stats, width = time.time(), [], len(PRIORITY_STEPS) + 2
    for i, queue in enumerate(queues):
        chunk = replies[i * width:(i + 1) * width]
        stats.append(QueueStats(queue, sum(chunk[:-1]), _age(chunk[-1], now)))
    return stats


def queue_workers(redis: Redis, queues: list[str], http_live: float = 0) -> dict[str, int]:
    """Live workers consuming each queue: the nodes that registered a landing list for it (`gw:landings`,
    field -> JSON {"node", "queue"}, written by tasks/delivery/landing.py) whose alive key has not lapsed,
    and the HTTP workers that asked for a job of it, or heartbeat one, within `http_live` seconds
    (`http_workers`). A worker that died still counts until its alive key lapses
    (`workers.visibility_timeout`), or its `http_live` passes. Three commands; raises RedisError when the
    broker does not answer."""
    places = []
    for raw in redis.hgetall(LANDINGS).values():
        try:
            place = json.loads(raw)
            places.append((str(place["node"]), str(place["queue"])))
        except (ValueError, KeyError, TypeError):
            continue
    nodes = sorted({node for node, _ in places})
    replies = redis.mget([ALIVE_PREFIX + node for node in nodes]) if nodes else []
    alive = {node for node, reply in zip(nodes, replies, strict=True) if reply is not None}
    counts = dict.fromkeys(queues, 0)
    for node, queue in set(places):
        if node in alive and queue in counts:
            counts[queue] += 1
    for _, queue in http_workers(redis, http_live):
        if queue in counts:
            counts[queue] += 1
    return counts


def http_live(workers: Mapping[str, Any]) -> float:
    """Seconds an HTTP worker counts as live after it last asked for a job or heartbeat one: a live one
    does either at least every lease (`workers.http_lease`) or long poll (`workers.http_max_wait`)."""
    return float(workers["http_lease"] + workers["http_max_wait"])


def http_workers(redis: Redis, live: float) -> list[tuple[str, str]]:
    """(worker, queue) of the HTTP workers seen within `live` seconds (`gw:http-workers`, written by
    gateway/workers/leasing.py), sorted."""
    now = time.time()
    seen = []
    for raw_field, raw_when in redis.hgetall(HTTP_WORKERS).items():
        name = raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field)
        worker, _, queue = name.rpartition("|")
        try:
            if float(raw_when) >= now - live:
                seen.append((worker, queue))
        except (TypeError, ValueError):
            continue
    return sorted(seen)


def _age(raw: str | bytes | None, now: float) -> float | None:
    if raw is None:
        return None
    try:
        submitted = json.loads(raw).get("headers", {}).get(SUBMITTED_HEADER)
    except (ValueError, AttributeError):
        return None
    return max(0.0, now - submitted) if isinstance(submitted, (int, float)) else None
