"""Reading the gateway's record of each accepted task, in Redis beside Celery's result meta (key
names: jobs/keys.py), for the gateway's routes and the webhook task. Reading a task is one pipelined
round trip: the record and Celery's meta key together (and the request's rate-limit check, when the
gateway hands it over); a running task's lease is read after, in a second. Records are written when a task is published
(gateway/submission/publishing.py), in the same round trip as its message.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol, cast

from redis import Redis
from redis.client import Pipeline

from jobs.delayed import Mover
from jobs.keys import LEASE_PREFIX, META_PREFIX, OPEN_PREFIX, OWNER_PREFIX, RECORD_PREFIX
from jobs.record import TaskRecord
from jobs.status import running as is_running


class Ahead(Protocol):
    """Commands that go first in a read's round trip, and judge their own replies before the read's
    are looked at (gateway/access/ratelimit.py `Check`)."""

    def queue(self, pipe: Pipeline) -> int: ...

    def settle(self, replies: Sequence[Any]) -> None: ...


class TaskStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def load(self, uuid: str, ahead: Ahead | None = None) -> tuple[TaskRecord | None, dict[str, Any] | None]:
        """The record (None if unknown) and Celery's result meta (None while Celery has none)."""
        return self.load_many([uuid], ahead)[0]

    def load_many(self, uuids: list[str], ahead: Ahead | None = None,
                  ) -> list[tuple[TaskRecord | None, dict[str, Any] | None]]:
        """Records and metas of several tasks in one round trip, after `ahead`'s commands (a rate-limit
        check, which may refuse the request before anything read is looked at). Whether a worker holds
        a task's lease matters only while it runs (jobs/status.py `running`): read then, for those, in a second one."""
        with self.redis.pipeline(transaction=False) as pipe:
            first = ahead.queue(pipe) if ahead is not None else 0
            for uuid in uuids:
                pipe.hgetall(RECORD_PREFIX + uuid)
                pipe.get(META_PREFIX + uuid)
            replies = pipe.execute(raise_on_error=False)
        if ahead is not None:
            ahead.settle(replies[:first])
        for reply in replies[first:]:
            if isinstance(reply, Exception):
                raise reply
        loaded: list[tuple[TaskRecord | None, dict[str, Any] | None]] = []
        for i, uuid in enumerate(uuids):
            data, meta = replies[first + 2 * i:first + 2 * i + 2]
            loaded.append((TaskRecord.from_hash(uuid, data), json.loads(meta) if meta else None) if data else (None, None))
        return self._with_leases(loaded)

    def _with_leases(self, loaded: list[tuple[TaskRecord | None, dict[str, Any] | None]],
                     ) -> list[tuple[TaskRecord | None, dict[str, Any] | None]]:
        """Each running task's record with whether a live worker holds its lease (jobs/status.py)."""
        running = [i for i, (record, meta) in enumerate(loaded) if record is not None and is_running(record, meta)]
        if not running:
            return loaded
        with self.redis.pipeline(transaction=False) as pipe:
            for i in running:
                pipe.exists(LEASE_PREFIX + loaded[i][0].uuid)  # type: ignore[union-attr]
            leased = pipe.execute()
        for i, held in zip(running, leased, strict=True):
            record, meta = loaded[i]
            loaded[i] = (replace(record, held=bool(held)), meta)  # type: ignore[type-var]
        return loaded

    def claimed(self, key: str) -> str | None:
        """The task id an idempotency key names, if any."""
        found = self.redis.get(key)
        return json.loads(found)["uuid"] if found else None

    def mark_cancelled(self, record: TaskRecord, release: Mover | None = None) -> None:
        """`release`: a delayed task's message is moved onto its queue in the same transaction (the broker
        is this Redis), so no mover can find it waiting and uncancelled (jobs/delayed.py)."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(RECORD_PREFIX + record.uuid, "cancelled", "1")
            pipe.zrem(OPEN_PREFIX + record.owner, record.uuid)
            if release is not None:
                release.release_on(pipe, record.uuid)
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
