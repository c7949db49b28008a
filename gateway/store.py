"""The gateway's own record of each accepted task, in Redis beside Celery's result meta.

A record lives as long as results do (`results.expires`). Reading a task is one round trip: the
record and Celery's meta key are fetched in a single pipeline.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from redis import Redis

from tasks import stats

RECORD_PREFIX = "gw:task:"
# Celery's Redis result backend key for a task (KeyValueStoreBackend.task_keyprefix).
META_PREFIX = "celery-task-meta-"


@dataclass(frozen=True)
class TaskRecord:
    uuid: str
    type: str
    created: datetime
    expires: datetime
    external_id: str | None
    owner: str

    @classmethod
    def new(cls, uuid: str, job_type: str, ttl: float, external_id: str | None, owner: str) -> TaskRecord:
        created = datetime.now(timezone.utc)
        return cls(uuid, job_type, created, created + timedelta(seconds=ttl), external_id, owner)

    def to_hash(self) -> dict[str, str]:
        return {"type": self.type, "created": self.created.isoformat(), "expires": self.expires.isoformat(),
                "external_id": self.external_id or "", "owner": self.owner}

    @classmethod
    def from_hash(cls, uuid: str, data: dict[str, str]) -> TaskRecord:
        return cls(uuid, data["type"], datetime.fromisoformat(data["created"]),
                   datetime.fromisoformat(data["expires"]), data.get("external_id") or None, data["owner"])


class TaskStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def save(self, record: TaskRecord) -> None:
        """The record and the submission count, in one round trip."""
        key = RECORD_PREFIX + record.uuid
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record.to_hash()).expire(key, self.ttl)
            stats.add(pipe, f"submitted|{record.type}", self.ttl)
            pipe.execute()

    def discard(self, record: TaskRecord) -> None:
        """Undo `save` for a task that was never queued: the record goes, the count goes back."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(RECORD_PREFIX + record.uuid)
            stats.add(pipe, f"submitted|{record.type}", self.ttl, amount=-1)
            pipe.execute()

    def load(self, uuid: str) -> tuple[TaskRecord | None, dict[str, Any] | None]:
        """The record (None if unknown) and Celery's result meta (None while Celery has none)."""
        with self.redis.pipeline(transaction=False) as pipe:
            data, meta = pipe.hgetall(RECORD_PREFIX + uuid).get(META_PREFIX + uuid).execute()
        if not data:
            return None, None
        return TaskRecord.from_hash(uuid, data), json.loads(meta) if meta else None
