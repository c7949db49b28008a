"""The gateway's own record of each accepted task, in Redis beside Celery's result meta.

Keys (all live as long as results do, `results.expires`):
- `gw:task:<uuid>`: the record (type, created, expires, ExternalId, owner, callback, cancelled).
- `gw:owner:<client_id>`: sorted set of the client's task ids by creation time; the listing index.
- `gw:open:<client_id>`: the client's unfinished tasks (score: when they expire), for the cap on
  unfinished tasks; workers remove a task when it ends, expired ones fall out by score.
- `gw:idem:<client_id>:<sha256>`: the task an ExternalId / Idempotency-Key already names, with a hash
  of the body that created it.
Saving is one Lua script: the idempotency check, the record, the index and the submission count
happen atomically in one round trip, so concurrent duplicates queue exactly one task. Reading a
task is one pipelined round trip: the record and Celery's meta key together.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from redis import Redis

from tasks import stats
from tasks.headers import OPEN_PREFIX, RECORD_PREFIX

OWNER_PREFIX = "gw:owner:"
IDEMPOTENCY_PREFIX = "gw:idem:"
# Celery's Redis result backend key for a task (KeyValueStoreBackend.task_keyprefix).
META_PREFIX = "celery-task-meta-"

# KEYS: record, owner index, stats total, stats hour, open set[, idempotency key]
# ARGV: ttl, score, uuid, stats field, idempotency value, cap ("" = none), expires score,
#       publish commands (JSON list of [name, [args...]], "[]" for none), then the record's field/value pairs
# The publish commands are the task message's LPUSH and its task-sent event's PUBLISH, exactly as kombu
# builds them (gateway/transport.py): they run only when the task is recorded, in the same script.
SAVE_SCRIPT = """
local ttl = tonumber(ARGV[1])
if #KEYS == 6 then
  local existing = redis.call('GET', KEYS[6])
  if existing then return existing end
end
if ARGV[6] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[2])
  if redis.call('ZCARD', KEYS[5]) >= tonumber(ARGV[6]) then return '!cap' end
end
if #KEYS == 6 then redis.call('SET', KEYS[6], ARGV[5], 'EX', ttl) end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[3])
redis.call('EXPIRE', KEYS[5], ttl)
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
redis.call('EXPIRE', KEYS[4], ttl + 3600)
for _, command in ipairs(cjson.decode(ARGV[8])) do
  redis.call(command[1], unpack(command[2]))
end
return false
"""


class CapReached(Exception):
    """The owner has as many unfinished tasks as its cap allows."""


@dataclass(frozen=True)
class TaskRecord:
    uuid: str
    type: str
    created: datetime
    expires: datetime
    external_id: str | None
    owner: str
    callback_url: str | None = None
    cancelled: bool = False

    @classmethod
    def new(cls, uuid: str, job_type: str, ttl: float, external_id: str | None, owner: str,
            callback_url: str | None = None) -> TaskRecord:
        created = datetime.now(timezone.utc)
        return cls(uuid, job_type, created, created + timedelta(seconds=ttl), external_id, owner, callback_url)

    def to_hash(self) -> dict[str, str]:
        return {"type": self.type, "created": self.created.isoformat(), "expires": self.expires.isoformat(),
                "external_id": self.external_id or "", "owner": self.owner, "callback_url": self.callback_url or ""}

    @classmethod
    def from_hash(cls, uuid: str, data: dict[str, str]) -> TaskRecord:
        return cls(uuid, data["type"], datetime.fromisoformat(data["created"]),
                   datetime.fromisoformat(data["expires"]), data.get("external_id") or None, data["owner"],
                   data.get("callback_url") or None, data.get("cancelled") == "1")


@dataclass(frozen=True)
class Idempotency:
    """An idempotency claim: its key (already hashed with the owner) and the hash of the request body."""

    key: str
    body_hash: str


@dataclass(frozen=True)
class Existing:
    """The task an idempotency key already names."""

    uuid: str
    body_hash: str
    record: dict[str, Any] = field(default_factory=dict)


class TaskStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._save = redis.register_script(SAVE_SCRIPT)

    def save(self, record: TaskRecord, idempotency: Idempotency | None = None,
             max_unfinished: int | None = None, publish: list[tuple[str, tuple]] = ()) -> Existing | None:
        """Record a new task and run its `publish` commands, atomically; or, when `idempotency` names a
        task already, return that one and change nothing. Raises CapReached when the owner already has
        `max_unfinished` unexpired tasks not finished."""
        keys = [RECORD_PREFIX + record.uuid, OWNER_PREFIX + record.owner, stats.TOTAL_KEY, stats.hour_key(),
                OPEN_PREFIX + record.owner]
        claim = ""
        if idempotency is not None:
            keys.append(idempotency.key)
            claim = json.dumps({"uuid": record.uuid, "body": idempotency.body_hash, "record": record.to_hash()})
        fields = [item for pair in record.to_hash().items() for item in pair]
        found = self._save(keys=keys, args=[self.ttl, record.created.timestamp(), record.uuid,
                                            f"submitted|{record.type}", claim, max_unfinished or "",
                                            record.expires.timestamp(),
                                            json.dumps([[name, list(args)] for name, args in publish]), *fields])
        if not found:
            return None
        if found == "!cap":
            raise CapReached()
        existing = json.loads(found)
        return Existing(existing["uuid"], existing["body"], existing["record"])

    def discard(self, record: TaskRecord, idempotency: Idempotency | None = None) -> None:
        """Undo `save` for a task that was never queued: record, index entry, claim and count go."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(RECORD_PREFIX + record.uuid).zrem(OWNER_PREFIX + record.owner, record.uuid)
            pipe.zrem(OPEN_PREFIX + record.owner, record.uuid)
            if idempotency is not None:
                pipe.delete(idempotency.key)
            stats.add(pipe, f"submitted|{record.type}", self.ttl, amount=-1)
            pipe.execute()

    def load(self, uuid: str) -> tuple[TaskRecord | None, dict[str, Any] | None]:
        """The record (None if unknown) and Celery's result meta (None while Celery has none)."""
        return self.load_many([uuid])[0]

    def load_many(self, uuids: list[str]) -> list[tuple[TaskRecord | None, dict[str, Any] | None]]:
        """Records and metas of several tasks in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for uuid in uuids:
                pipe.hgetall(RECORD_PREFIX + uuid).get(META_PREFIX + uuid)
            replies = pipe.execute()
        loaded = []
        for i, uuid in enumerate(uuids):
            data, meta = replies[2 * i], replies[2 * i + 1]
            loaded.append((TaskRecord.from_hash(uuid, data), json.loads(meta) if meta else None) if data
                          else (None, None))
        return loaded

    def claimed(self, key: str) -> str | None:
        """The task id an idempotency key names, if any."""
        found = self.redis.get(key)
        return json.loads(found)["uuid"] if found else None

    def reset_for_requeue(self, uuid: str, expires: datetime) -> None:
        """Forget the failed outcome (the task shows `created` again) and give the record a new expiry."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(META_PREFIX + uuid).hset(RECORD_PREFIX + uuid, "expires", expires.isoformat())
            pipe.expire(RECORD_PREFIX + uuid, self.ttl).execute()

    def mark_cancelled(self, record: TaskRecord) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(RECORD_PREFIX + record.uuid, "cancelled", "1").zrem(OPEN_PREFIX + record.owner, record.uuid)
            pipe.execute()

    def page(self, owner: str, before: tuple[float, str] | None, count: int) -> list[tuple[str, float]]:
        """Up to `count` of the owner's task ids, newest first, strictly after the cursor `before`."""
        high = f"{before[0]!r}" if before else "+inf"
        # Members sharing the cursor's score come in reverse lexicographic order: skip those not past it.
        rows = self.redis.zrevrangebyscore(OWNER_PREFIX + owner, high, "-inf", start=0,
                                           num=count + 64 if before else count, withscores=True)
        if before:
            rows = [(m, s) for m, s in rows if s < before[0] or m < before[1]][:count]
        return rows
