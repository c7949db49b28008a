"""Reading the gateway's record of each accepted task, in Redis beside Celery's result meta (key
names: jobs/keys.py), for the gateway's routes and the webhook task. Reading a task is one pipelined
round trip: the record and Celery's meta key together. Records are written when a task is published
(gateway/submission/publishing.py), in the same round trip as its message.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

from redis import Redis

from jobs.keys import LEASE_PREFIX, META_PREFIX, OPEN_PREFIX, OWNER_PREFIX, RECORD_PREFIX
from jobs.record import TaskRecord


class TaskStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def load(self, uuid: str) -> tuple[TaskRecord | None, dict[str, Any] | None]:
        """The record (None if unknown) and Celery's result meta (None while Celery has none)."""
        return self.load_many([uuid])[0]

    def load_many(self, uuids: list[str]) -> list[tuple[TaskRecord | None, dict[str, Any] | None]]:
        """Records and metas of several tasks in one round trip, each record with whether a worker
        holds its lease."""
        with self.redis.pipeline(transaction=False) as pipe:
            for uuid in uuids:
                pipe.hgetall(RECORD_PREFIX + uuid)
                pipe.get(META_PREFIX + uuid)
                pipe.exists(LEASE_PREFIX + uuid)
            replies = pipe.execute()
        loaded: list[tuple[TaskRecord | None, dict[str, Any] | None]] = []
        for i, uuid in enumerate(uuids):
            data, meta, leased = replies[3 * i:3 * i + 3]
            loaded.append((replace(TaskRecord.from_hash(uuid, data), held=bool(leased)),
                           json.loads(meta) if meta else None) if data else (None, None))
        return loaded

    def claimed(self, key: str) -> str | None:
        """The task id an idempotency key names, if any."""
        found = self.redis.get(key)
        return json.loads(found)["uuid"] if found else None

    def mark_cancelled(self, record: TaskRecord) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(RECORD_PREFIX + record.uuid, "cancelled", "1")
            pipe.zrem(OPEN_PREFIX + record.owner, record.uuid)
            pipe.execute()

    def page(self, owner: str, before: tuple[float, str] | None, count: int) -> list[tuple[str, float]]:
        """Up to `count` of the owner's task ids, newest first, strictly after the cursor `before`."""
        high = f"{before[0]!r}" if before else "+inf"
        # The client decodes replies (gateway/health/clients.py) and withscores gives (member, score) pairs,
        # which redis-py's return type cannot tell apart from its other shapes.
        # Members sharing the cursor's score come in reverse lexicographic order: skip those not past it.
        rows = cast("list[tuple[str, float]]",
                    self.redis.zrevrangebyscore(OWNER_PREFIX + owner, high, "-inf", start=0,
                                                num=count + 64 if before else count, withscores=True))
        if before:
            rows = [(m, s) for m, s in rows if s < before[0] or m < before[1]][:count]
        return rows
