"""The ops API (SPEC §7): queues, workers, task counts, revoke and dead letters, for the operator roles.

Operator roles are configuration (`ops.roles`, default admin and ops). Every broker or worker call has
a short deadline: with no worker online the worker list is empty after `ops.inspect_timeout` seconds,
and with the broker down the answer is a 503, never a hung request.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from gateway.access import decorators as auth
from gateway.extensions import http_live
from gateway.health.drain import drain_of
from gateway.health.queues import http_workers, queue_stats
from gateway.http.contract import declare, optional_body, query, returns
from gateway.http.errors import Conflict, ServiceUnavailable, TaskNotFound, ValidationFailed
from gateway.http.schemas import (
    Counts,
    CountsQuery,
    DeadLetters,
    Draining,
    Queues,
    Requeued,
    Revoked,
    RevokeRequest,
    Schedules,
    Workers,
    counts_document,
    retention_hours,
)
from gateway.schedules.overview import overview
from gateway.schedules.plan import plan
from gateway.services import services
from jobs import deadletters, stats
from jobs.ids import canonical_uuid
from jobs.status import code_for_reason, describe

bp = Blueprint("ops", __name__, url_prefix="/ops")
BROKER_ERRORS = (RedisError, OperationalError, KombuError, OSError)


@bp.get("/queues")
@declare("Queue depth and oldest message age", tag="operations")
@returns(200, Queues, "Queues")
@auth.login_required()
@auth.operator_required
def queues() -> dict[str, Any]:
    try:
        waiting = queue_stats(services().broker, services().catalogue.queues)
    except RedisError:
        raise ServiceUnavailable("Broker unavailable") from None
    return {"queues": [{"name": q.name, "depth": q.depth, "oldest_age_seconds": q.oldest_age} for q in waiting]}


@bp.get("/workers")
@declare("Workers online, their queues and running tasks", tag="operations")
@returns(200, Workers, "Workers")
@auth.login_required()
@auth.operator_required
def workers() -> dict[str, Any]:
    inspect = services().celery.control.inspect(timeout=services().settings.config["ops"]["inspect_timeout"])
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(2) as pool:  # both broadcasts wait out the same deadline, not one each
            queues_f, active_f = pool.submit(inspect.active_queues), pool.submit(inspect.active)
            consuming, running = queues_f.result() or {}, active_f.result() or {}
    except BROKER_ERRORS:
        raise ServiceUnavailable("Broker unavailable") from None
    names = sorted(set(consuming) | set(running))
    celery = [{"name": name, "kind": "celery", "queues": sorted(q["name"] for q in consuming.get(name) or []),
               "active": len(running.get(name) or [])} for name in names]
    try:
        seen = http_workers(services().broker, http_live(services().settings.config["workers"]))
    except BROKER_ERRORS:
        raise ServiceUnavailable("Broker unavailable") from None
    http: dict[str, list[str]] = {}
    for worker, queue in seen:
        http.setdefault(worker, []).append(queue)
    return {"workers": celery + [{"name": name, "kind": "http", "queues": queues, "active": None}
                                 for name, queues in sorted(http.items())],
            "waited_seconds": round(time.monotonic() - started, 3)}


@bp.get("/tasks/counts")
@declare("Task counts by type and outcome over a window of hours (default and most: the retention)", tag="operations")
@returns(200, Counts, "Counts")
@auth.login_required()
@auth.operator_required
@query(CountsQuery, document=counts_document)
def task_counts(args: dict[str, Any]) -> dict[str, Any]:
    most = retention_hours(services().settings)
    hours = args.get("hours", most)
    if hours > most:
        raise ValidationFailed(errors={"hours": [f"Must be an integer from 1 to {most}."]})
    now = time.time()
    try:
        with services().store.redis.pipeline(transaction=False) as pipe:
            for i in range(hours):
                pipe.hgetall(stats.hour_key(now - 3600 * i))
            buckets = pipe.execute()
    except RedisError:
        raise ServiceUnavailable("Task store unavailable") from None
    return {"window_hours": hours, **_summarise(buckets)}


def _summarise(buckets: list[dict[str, str]]) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        for field, value in bucket.items():
            kind, job_type, reason = stats.parse(field)
            entry = by_type.setdefault(job_type, {stats.SUBMITTED: 0, stats.DONE: 0, stats.ERROR: {}})
            if kind in (stats.SUBMITTED, stats.DONE):
                entry[kind] += int(value)
            elif kind == stats.ERROR:
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
@declare("Revoke any task that has not finished", tag="operations", errors=(404, 409))
@returns(202, Revoked, "Revoked")
@auth.login_required()
@auth.operator_required
@optional_body(RevokeRequest)
def revoke(data: dict[str, Any], task_id: str) -> tuple[dict[str, Any], int]:
    """As DELETE /tasks/<uuid> for any client's task, with the choice to terminate a running one; a task
    that already finished is the same 409 (`Dispatcher.cancel`)."""
    canonical = canonical_uuid(task_id)
    record, meta = services().store.load(canonical) if canonical else (None, None)
    if record is None:
        raise TaskNotFound()
    info = describe(record, meta, datetime.now(UTC), services().settings.config["results"]["expired_grace"])
    services().dispatcher.cancel(record, info, terminate=data["terminate"])
    return {"uuid": canonical, "revoked": True, "terminate": data["terminate"]}, 202


@bp.get("/deadletters")
@declare("Jobs set aside after their retries: who, what, when, why; never the payload", tag="operations")
@returns(200, DeadLetters, "Dead letters")
@auth.login_required()
@auth.operator_required
def dead_letters() -> dict[str, Any]:
    try:
        entries = deadletters.all_entries(services().store.redis)
    except RedisError:
        raise ServiceUnavailable("Task store unavailable") from None
    shown = [{"uuid": task_id, "type": e.get("type"), "owner": e.get("owner"), "attempts": e.get("attempts"),
              "error": e.get("error"), "failed_at": e.get("failed_at")} for task_id, e in entries.items()]
    return {"deadletters": sorted(shown, key=lambda e: e["failed_at"] or 0, reverse=True)}


@bp.post("/deadletters/<task_id>/requeue")
@declare("Send a dead-lettered job again, under its own id", tag="operations", errors=(404, 409))
@returns(202, Requeued, "Requeued")
@auth.login_required()
@auth.operator_required
def requeue(task_id: str) -> tuple[dict[str, Any], int]:
    canonical = canonical_uuid(task_id)
    if not canonical:
        raise TaskNotFound()
    entry = deadletters.load(services().store.redis, canonical)
    record, _ = services().store.load(canonical) if entry else (None, None)
    if entry is None or record is None:
        raise TaskNotFound()
    job = services().catalogue.get(entry.get("type") or record.type)
    if job is None:
        raise Conflict("The job type of this task is no longer configured", extra={"uuid": canonical})
    services().dispatcher.requeue(record, job, (entry.get("kwargs") or {}).get("upload") or {})
    deadletters.remove(services().store.redis, canonical)
    return {"uuid": canonical, "requeued": True}, 202


@bp.get("/schedules")
@declare("Periodic jobs: each schedule's last and next run and its last task; whether a scheduler runs",
         tag="operations")
@returns(200, Schedules, "Schedules")
@auth.login_required()
@auth.operator_required
def schedules() -> dict[str, Any]:
    planned = plan(services().settings.config["schedules"], services().celery)
    try:
        return overview(services().store.redis, planned)
    except RedisError:
        raise ServiceUnavailable("Task store unavailable") from None


@bp.post("/drain")
@declare("Drain this gateway: /readyz 503 at once, new submits 503 after ops.drain_grace; reads go on",
         tag="operations")
@returns(202, Draining, "Draining (a second call answers the same times)")
@auth.login_required()
@auth.operator_required
def drain() -> tuple[dict[str, Any], int]:
    state = drain_of(current_app).start()
    return {"draining": True, "since": datetime.fromtimestamp(state.since, UTC),
            "refuse_submits_at": datetime.fromtimestamp(state.refuse_submits_at, UTC)}, 202
