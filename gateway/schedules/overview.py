"""What /ops/schedules shows, read in one round trip from RedBeat's keys (jobs/keys.py gw:beat:) and the
tasks the ticks made (gw:schedule-runs): per configured schedule, its last run and task, and when the
next is due; and whether a scheduler holds the lock now.

`last_run_at` is RedBeat's, once a scheduler has fired the schedule (null before: RedBeat keeps the
time it first saw the schedule, which is not a run). `next_run_at` is computed from it the way the
scheduler computes it (gateway/schedules/plan.py); a time in the past means the tick is overdue: no
scheduler runs, or one is about to fire it. Null: no scheduler has seen the schedule yet.
"""
from __future__ import annotations

import json
from typing import Any

from redbeat.decoder import RedBeatJSONDecoder
from redis import Redis

from gateway.schedules.plan import Planned
from jobs.keys import BEAT_LOCK, BEAT_PREFIX, SCHEDULE_RUNS


def overview(redis: Redis, planned: dict[str, Planned]) -> dict[str, Any]:
    names = sorted(planned)
    with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(BEAT_PREFIX + name, "meta")
        pipe.hmget(SCHEDULE_RUNS, names) if names else pipe.exists(SCHEDULE_RUNS)
        pipe.pttl(BEAT_LOCK)
        replies = pipe.execute()
    metas, runs, lock_ttl = replies[:len(names)], replies[len(names)] if names else [], replies[-1]
    return {"scheduler": {"lock_held": lock_ttl > 0,
                          "lock_expires_in": round(lock_ttl / 1000, 3) if lock_ttl > 0 else None},
            "schedules": [_row(planned[name], meta, run) for name, meta, run in zip(names, metas, runs, strict=True)]}


def _row(planned: Planned, raw_meta: str | None, raw_run: str | None) -> dict[str, Any]:
    meta = json.loads(raw_meta, cls=RedBeatJSONDecoder) if raw_meta else {}
    seen_at = meta.get("last_run_at")
    run = json.loads(raw_run) if raw_run else {}
    return {"name": planned.name, "type": planned.type, "owner": planned.owner, "every": planned.every,
            "cron": planned.cron, "timezone": planned.timezone,
            "last_run_at": seen_at if seen_at is not None and "total_run_count" in meta else None,
            "next_run_at": planned.next_run(seen_at) if seen_at is not None else None,
            "last_task": run.get("uuid")}
