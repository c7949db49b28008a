"""Publishing an accepted job as a standard Celery task message, never hanging, never half-done."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass
import uuid as uuidlib
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from loguru import logger
from redis import Redis
from redis.exceptions import RedisError

from gateway import transport
from gateway.errors import ServiceUnavailable, TooManyRequests
from gateway.jobs import JobType
from gateway.store import CapReached, Idempotency, TaskRecord, TaskStore
from tasks.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER, SUBMITTED_HEADER

PUBLISH_ERRORS = (OperationalError, KombuError, RedisError, OSError, socket.timeout)


@dataclass(frozen=True)
class Submitted:
    record: TaskRecord
    new: bool  # False: an idempotency key named an existing task, nothing was queued
    same_body: bool  # for an existing task: whether this request's body matches the one that made it


class Dispatcher:
    """Records accepted tasks and publishes them.

    The message is built by Celery and kombu as usual, but its Redis commands are captured
    (gateway/transport.py). When the broker and the task store are the same Redis (the default), the
    commands run inside the store's save script: record and message in one round trip, all or nothing.
    Otherwise the record is written first and the message published on the broker; a publish that
    fails takes the record with it. Either way a failure leaves nothing behind and answers 503.
    """

    def __init__(self, celery: Celery, store: TaskStore, broker: Redis, same_redis: bool) -> None:
        self.celery = celery
        self.store = store
        self.broker = broker
        self.same_redis = same_redis

    def submit(self, job: JobType, upload: dict[str, Any], external_id: str | None, owner: str,
               idempotency: Idempotency | None = None, callback_url: str | None = None,
               max_unfinished: int | None = None) -> Submitted:
        """With `idempotency`, a key that already names a task returns that task and queues nothing."""
        record = TaskRecord.new(str(uuidlib.uuid4()), job.name, job.ttl, external_id, owner, callback_url)
        try:
            commands = self._message(job, record, upload)
        except PUBLISH_ERRORS as exc:
            logger.warning("broker unavailable, task {} not queued: {}", record.uuid, exc.__class__.__name__)
            raise ServiceUnavailable("Broker unavailable") from None
        try:
            existing = self.store.save(record, idempotency, max_unfinished, commands if self.same_redis else ())
        except CapReached:
            raise TooManyRequests(f"Too many unfinished tasks: at most {max_unfinished} may be queued or running "
                                  "at once; wait for some to finish") from None
        except RedisError as exc:
            logger.warning("task store unavailable, task {} not queued: {}", record.uuid, exc.__class__.__name__)
            raise ServiceUnavailable("Broker unavailable" if self.same_redis else "Task store unavailable") from None
        if existing is not None:
            return Submitted(TaskRecord.from_hash(existing.uuid, existing.record), new=False,
                             same_body=existing.body_hash == idempotency.body_hash)
        if not self.same_redis:
            try:
                self._run_on_broker(commands)
            except PUBLISH_ERRORS as exc:
                logger.warning("broker unavailable, task {} not queued: {}", record.uuid, exc.__class__.__name__)
                self._forget(record, idempotency)
                raise ServiceUnavailable("Broker unavailable") from None
        return Submitted(record, new=True, same_body=True)

    def requeue(self, task_id: str, entry: dict[str, Any], job: JobType | None) -> None:
        """Send a dead-lettered job again under its own id, with a fresh TTL, as if just accepted."""
        expires = datetime.now(timezone.utc) + timedelta(seconds=job.ttl if job else 3600)
        try:
            self.store.reset_for_requeue(task_id, expires)
            self.celery.send_task(
                entry["task"], args=entry.get("args") or (), kwargs=entry.get("kwargs") or {}, task_id=task_id,
                queue=entry.get("queue") or (job.queue if job else None), expires=expires,
                headers={CLIENT_HEADER: entry.get("owner"), JOB_TYPE_HEADER: entry.get("type"),
                         SUBMITTED_HEADER: datetime.now(timezone.utc).timestamp(),
                         **({CALLBACK_HEADER: entry["callback"]} if entry.get("callback") else {})},
                argsrepr="()", kwargsrepr="{'upload': <requeued>}", retry=False)
        except (*PUBLISH_ERRORS, RedisError) as exc:
            logger.warning("could not requeue task {}: {}", task_id, exc.__class__.__name__)
            raise ServiceUnavailable("Broker unavailable") from None

    def cancel(self, record: TaskRecord, terminate: bool) -> None:
        """Mark the record (the worker checks it before running) and revoke the task in every worker."""
        try:
            self.store.mark_cancelled(record)
            self.celery.control.revoke(record.uuid, terminate=terminate, signal="SIGTERM")
        except PUBLISH_ERRORS as exc:
            logger.warning("could not revoke task {}: {}", record.uuid, exc.__class__.__name__)
            raise ServiceUnavailable("Broker unavailable") from None

    def _message(self, job: JobType, record: TaskRecord, upload: dict[str, Any]) -> list[tuple[str, tuple]]:
        """The Redis commands of one standard Celery task message and its task-sent event."""
        with transport.capture() as captured:
            with self.celery.producer_or_acquire() as producer, producer.batch():
                self.celery.send_task(
                    job.task, kwargs={"upload": upload}, task_id=record.uuid, queue=job.queue,
                    expires=record.expires, time_limit=job.time_limit, soft_time_limit=job.soft_time_limit,
                    headers={CLIENT_HEADER: record.owner, JOB_TYPE_HEADER: job.name,
                             SUBMITTED_HEADER: record.created.timestamp(),
                             **({CALLBACK_HEADER: record.callback_url} if record.callback_url else {})},
                    # Flower and worker logs show these instead of the payload itself.
                    argsrepr="()", kwargsrepr=f"{{'upload': <{job.name} upload, {len(upload)} fields>}}",
                    retry=False, producer=producer,
                )
        commands = transport.captured_commands(captured)
        if not any(name == "lpush" for name, _ in commands):
            raise OperationalError("the task message was not captured")  # never publish half a task
        return commands

    def _run_on_broker(self, commands: list[tuple[str, tuple]]) -> None:
        with self.broker.pipeline(transaction=False) as pipe:
            for name, args in commands:
                getattr(pipe, name)(*args)
            pipe.execute()

    def _forget(self, record: TaskRecord, idempotency: Idempotency | None) -> None:
        try:
            self.store.discard(record, idempotency)
        except RedisError:
            logger.error("could not remove the record of unqueued task {}", record.uuid)
