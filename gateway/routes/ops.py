"""The ops API (SPEC §7): queues, workers, task counts and revoke, for the operator roles only.

Operator roles are configuration (`ops.roles`, default admin and ops). Every broker or worker call has
a short deadline: with no worker online the worker list is empty after `ops.inspect_timeout` seconds,
and with the broker down the answer is a 503, never a hung request.
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, request
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from gateway import auth
from gateway.errors import ServiceUnavailable, TaskNotFound, ValidationFailed
from gateway.extensions import services
from gateway.queues import queue_stats
from gateway.status import code_for_reason
from tasks import deadletters, stats

bp = Blueprint("ops", __name__, url_prefix="/ops")
BROKER_ERRORS = (RedisError, OperationalError, KombuError, OSError)


@bp.get("/queues")
@auth.login_required()
@auth.operator_required
def queues() -> dict:
    found = services()
    try:
        waiting = queue_stats(found.broker_collector.broker, found.broker_collector.queues)
    except RedisError:
        raise ServiceUnavailable("Broker unavailable") from None
    return {"queues": [{"name": q.name, "depth": q.depth, "oldest_age_seconds": q.oldest_age} for q in waiting]}


@bp.get("/workers")
@auth.login_required()
@auth.operator_required
def workers() -> dict:
    timeout = services().settings.config["ops"]["inspect_timeout"]
    inspect = services().celery.control.inspect(timeout=timeout)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(2) as pool:  # both broadcasts wait out the same deadline, not one each
            queues_f, active_f = pool.submit(inspect.active_queues), pool.submit(inspect.active)
            consuming, running = queues_f.result() or {}, active_f.result() or {}
    except BROKER_ERRORS:
        raise ServiceUnavailable("Broker unavailable") from None
    names = sorted(set(consuming) | set(running))
    return {"workers": [{"name": name, "queues": sorted(q["name"] for q in consuming.get(name) or []),
                         "active": len(running.get(name) or [])} for name in names],
            "waited_seconds": round(time.monotonic() - started, 3)}


@bp.get("/tasks/counts")
@auth.login_required()
@auth.operator_required
def task_counts() -> dict:
    retention_hours = max(1, services().settings.config["results"]["expires"] // 3600)
    hours = request.args.get("hours", default=retention_hours, type=int)
    if hours is None or not 1 <= hours <= retention_hours:
        raise ValidationFailed(errors={"hours": [f"Must be an integer from 1 to {retention_hours}."]})
    now = time.time()
    keys = [stats.hour_key(now - 3600 * i) for i in range(hours)]
    try:
        with services().store.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            buckets = pipe.execute()
    except RedisError:
        raise ServiceUnavailable("Task store unavailable") from None
    return {"window_hours": hours, **_summarise(buckets)}


def _summarise(buckets: list[dict[str, str]]) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        for field, value in bucket.items():
            kind, job_type, reason = stats.parse(field)
            entry = by_type.setdefault(job_type, {"submitted": 0, "done": 0, "error": {}})
            if kind in ("submitted", "done"):
                entry[kind] += int(value)
            elif kind == "error":
                code = str(int(code_for_reason(reason)))
                entry["error"][code] = entry["error"].get(code, 0) + int(value)
    for entry in by_type.values():
        finished = entry["done"] + sum(entry["error"].values())
        entry["unfinished"] = max(0, entry["submitted"] - finished)  # created or pending
    totals = {"submitted": sum(e["submitted"] for e in by_type.values()),
              "done": sum(e["done"] for e in by_type.values()),
              "error": sum(sum(e["error"].values()) for e in by_type.values()),
              "unfinished": sum(e["unfinished"] for e in by_type.values())}
    return {"totals": totals, "by_type": by_type}


@bp.post("/tasks/<task_id>/revoke")
@auth.login_required()
@auth.operator_required
def revoke(task_id: str) -> tuple[dict, int]:
    try:
        task_id = str(uuid.UUID(task_id))
    except ValueError:
        raise TaskNotFound() from None
    record, _ = services().store.load(task_id)
    if record is None:
        raise TaskNotFound()
    body = request.get_json(silent=True)
    terminate = isinstance(body, dict) and body.get("terminate") is True
    services().dispatcher.cancel(record, terminate=terminate)
    return {"uuid": task_id, "revoked": True, "terminate": terminate}, 202


@bp.get("/deadletters")
@auth.login_required()
@auth.operator_required
def dead_letters() -> dict:
    """Jobs set aside after their retries: who, what, when, why; never the payload."""
    try:
        entries = deadletters.all_entries(services().store.redis)
    except RedisError:
        raise ServiceUnavailable("Task store unavailable") from None
    shown = [{"uuid": task_id, "type": e.get("type"), "owner": e.get("owner"), "attempts": e.get("attempts"),
              "error": e.get("error"), "failed_at": e.get("failed_at")} for task_id, e in entries.items()]
    return {"deadletters": sorted(shown, key=lambda e: e["failed_at"] or 0, reverse=True)}


@bp.post("/deadletters/<task_id>/requeue")
@auth.login_required()
@auth.operator_required
def requeue(task_id: str) -> tuple[dict, int]:
    entry = deadletters.load(services().store.redis, task_id)
    if entry is None:
        raise TaskNotFound()
    services().dispatcher.requeue(task_id, entry, services().catalogue.get(entry.get("type") or ""))
    deadletters.remove(services().store.redis, task_id)
    return {"uuid": task_id, "requeued": True}, 202
