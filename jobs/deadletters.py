"""Jobs that exhausted their retries, kept for operators to inspect and requeue (ops API).

`gw:deadletters` is a hash: task id -> JSON with what a requeue needs (task name, queue, job type,
owner, the original kwargs) and what an operator needs (attempts, error class, when). The payload is
kept because a requeue must send the same job; nothing here is ever logged or shown by the ops API.
"""
from __future__ import annotations

import json
import time
from typing import Any

from jobs.keys import DEADLETTERS as KEY


def add(redis: Any, task_id: str, entry: dict[str, Any]) -> None:
    redis.hset(KEY, task_id, json.dumps({**entry, "failed_at": time.time()}))


def load(redis: Any, task_id: str) -> dict[str, Any] | None:
    raw = redis.hget(KEY, task_id)
    return json.loads(raw) if raw else None


def all_entries(redis: Any) -> dict[str, dict[str, Any]]:
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in redis.hgetall(KEY).items()}


def remove(redis: Any, task_id: str) -> None:
    redis.hdel(KEY, task_id)
