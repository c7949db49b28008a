"""The one way a job reaches the workers: its record and its standard Celery task message, written
together, never hanging, never half-done. Submits and operator requeues both come through here.

The message is built by Celery and kombu as usual, but its Redis commands are captured
(gateway/submission/capture.py) and run inside the save script below, after the request's rate-limit check,
with the record, the owner's index, the unfinished set and its cap, the submission count and the idempotency
claim: one round trip, all or nothing. When the broker is another Redis than the task store, the record
is written first and the message then published on the broker; a publish that fails takes the record
with it. Either way a failure leaves
nothing behind and answers 503.

A delayed job (`delay_seconds` / `run_at`, gateway/submission/scheduling.py) is saved the same way, in the
same script or round trip, except that its message's commands are held in the broker's `gw:delayed` set
until it is due instead of run (jobs/delayed.py `hold`); the workers move it onto its queue then. Its
record, claims and index entry live `results.expires` past its due time, its TTL counts from it, and it
stays in the owner's unfinished set (the cap counts it) until it ends.

One failure is different: the script (or the publish) was sent and no answer came in time. A stalled
Redis runs it when it resumes, so the task may exist: that 503 says the outcome is unknown and carries
the uuid the task has if it does (`/taskinfo` tells later). A retry with the same Idempotency-Key or
ExternalId is safe either way: the claims are checked and taken inside the same script.

Replication to Redis replicas is asynchronous: a task answered 202 just before its master dies may be
missing from the replica Sentinel promotes. With `queue.wait_replicas` N > 0 (`ReplicaWait`), the save is
followed on the same connection, in the same round trip, by `WAIT N timeout`: a task whose save fewer
than N replicas acknowledged in time is answered 503 "outcome unknown" with its uuid (it is on the master,
and may or may not survive its loss). 0, the default, waits for no replica (docs/operations.md: Scaling out).
"""
from __future__ import annotations

import json
import math
import socket
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from loguru import logger
from redis import Redis
from redis.exceptions import NoScriptError, RedisError

from gateway.access.ratelimit import RATE_LUA, Check
from gateway.health import metrics
from gateway.health.breaker import Unanswered
from gateway.http.errors import Conflict, ServiceUnavailable, TooManyRequests
from gateway.marks import Marks
from gateway.submission import capture
from gateway.submission.capture import Commands
from gateway.submission.scheduling import max_delay
from jobs import delayed, stats
from jobs.catalogue import JobType
from jobs.headers import CALLBACK_HEADER, CLIENT_HEADER, JOB_TYPE_HEADER, SUBMITTED_HEADER
from jobs.keys import LEASE_PREFIX, META_PREFIX, OPEN_PREFIX, OWNER_PREFIX, RECORD_PREFIX
from jobs.record import TaskRecord
from jobs.status import cancellable
from jobs.store import TaskStore
from settings import Settings, tracing

PUBLISH_ERRORS = (OperationalError, KombuError, RedisError, OSError, socket.timeout)

# KEYS: record, owner index, stats total, stats hour, open set[, the rate check's two hashes][, idempotency
#       claims: the key's, the ExternalId's]
# ARGV: ttl, score, uuid, stats field, claim value (JSON: uuid, body hash, record), cap ("" = none), expires score,
#       commands (JSON list of [name, [args...]], "[]" for none), the rate check (JSON, "" = none: see
#       gateway/access/ratelimit.py RATE_LUA), housekeeping (JSON: below), the record's and claims' TTL (the
#       results' TTL, plus a delayed job's delay), then the record's field/value pairs
# Replies {outcome, the previous window's count if the rate check read it, else -1}; outcome: "" (recorded),
# "!rate:<count>", "!cap", "!split:<uuid>", or the claim that already names a task.
# The rate check comes first: a refused submit writes nothing (its own count is taken back).
# The commands are the task message's LPUSH and its task-sent event's PUBLISH, exactly as kombu builds
# them (gateway/submission/capture.py), or for a delayed job the ZADD and HSET that hold them until it is due
# (jobs/delayed.py), and for a requeue the reset of the old outcome: they run only when the
# task is recorded, in the same script.
# Claims (gateway/submission/idempotency.py): when one already names a task, that task is the answer; a
# claim not yet taken is bound to it for as long as the one found lives, when the bodies match (a repeat).
# Two claims naming two different tasks answer '!split:<uuid of the first>'. A new task takes every claim.
# Housekeeping, decided by the process (Housekeeping below): `index_ttl`, when set, is when the owner's
# index and open set expire (both outlive their newest entry by at least the results' TTL: the process
# sets it once per TTL-long period); `trim`, now and then, drops index entries older than `keep` (the results'
# TTL and the longest delay: their records are gone, listing skips them meanwhile) and open entries past their expiry (the cap
# counts only those not yet expired, ZCOUNT, meanwhile); `hour_ttl`: the hour's counts are new to the process.
SAVE_SCRIPT = RATE_LUA + """
local ttl, life = tonumber(ARGV[1]), tonumber(ARGV[11])
local claims = 6
if ARGV[9] ~= '' then
  claims = 8
  rate_check(cjson.decode(ARGV[9]), KEYS[6], KEYS[7])
  if rate_refused then return {'!rate:' .. rate_refused, rate_previous} end
end
if #KEYS >= claims then
  local found, found_at, found_key, unclaimed = nil, nil, nil, {}
  for i = claims, #KEYS do
    local existing = redis.call('GET', KEYS[i])
    if not existing then
      table.insert(unclaimed, KEYS[i])
    elseif not found then
      found, found_at, found_key = existing, cjson.decode(existing), KEYS[i]
    elseif cjson.decode(existing).uuid ~= found_at.uuid then
      return {'!split:' .. found_at.uuid, rate_previous}
    end
  end
  if found then
    -- A write, so that the WAIT sent after this script (queue.wait_replicas) covers the claim and the task
    -- it names: a repeat is acknowledged only as safely as a first save.
    redis.call('SET', found_key, found, 'KEEPTTL')
    if #unclaimed > 0 and found_at.body == cjson.decode(ARGV[5]).body then
      local left = redis.call('PTTL', found_key)
      for _, key in ipairs(unclaimed) do
        if left > 0 then redis.call('SET', key, found, 'PX', left) else redis.call('SET', key, found, 'EX', life) end
      end
    end
    return {found, rate_previous}
  end
end
if ARGV[6] ~= '' and redis.call('ZCOUNT', KEYS[5], '(' .. ARGV[2], '+inf') >= tonumber(ARGV[6]) then
  return {'!cap', rate_previous}
end
local chores = cjson.decode(ARGV[10])
for i = claims, #KEYS do redis.call('SET', KEYS[i], ARGV[5], 'EX', life) end
redis.call('HSET', KEYS[1], unpack(ARGV, 12))
redis.call('EXPIRE', KEYS[1], life)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[3])
if chores.index_ttl ~= 0 then
  redis.call('EXPIREAT', KEYS[2], chores.index_ttl)
  redis.call('EXPIREAT', KEYS[5], chores.index_ttl)
end
if chores.trim then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - chores.keep)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[2])
end
""" + stats.lua_increment("KEYS[3]", "KEYS[4]", "ARGV[4]", "ttl", expire_when="chores.hour_ttl") + """
for _, command in ipairs(cjson.decode(ARGV[8])) do
  redis.call(command[1], unpack(command[2]))
end
return {'', rate_previous}
"""
TRIM_EVERY = 60.0  # seconds between trims of one owner's index and open set, per process
INDEX_TTL_MARGIN = 3600  # seconds an index outlives its period's end: replicas' clocks may differ


class Housekeeping:
    """What a save script must do beyond the task itself, decided by what this process remembers
    (gateway/marks.py): TTLs not yet set for the period, and the trim now and then. `max_delay`: a delayed
    task outlives its submit by that much more, and its index and open entries with it."""

    def __init__(self, ttl: int, clock: Callable[[], float] = time.time, max_delay: int = 0) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_delay = max_delay
        self.marks = Marks()

    def chores(self, owner: str) -> dict[str, Any]:
        now = self.clock()
        period, hour_key = math.floor(now / self.ttl), stats.hour_key(now)
        trimmed = self.marks.get(("trim", owner))
        return {"index_ttl": 0 if self.marks.holds(("index", owner), period) else
                (period + 2) * self.ttl + self.max_delay + INDEX_TTL_MARGIN,
                "keep": self.ttl + self.max_delay,
                "trim": trimmed is None or now - trimmed >= TRIM_EVERY,
                "hour_ttl": not self.marks.holds("hour", hour_key),
                "period": period, "now": now, "hour": hour_key}

    def done(self, owner: str, chores: Mapping[str, Any]) -> None:
        """The script recorded a task, so it did the chores."""
        self.marks.put(("index", owner), chores["period"])
        self.marks.put("hour", chores["hour"])
        if chores["trim"]:
            self.marks.put(("trim", owner), chores["now"])


OUTCOME_UNKNOWN = ("Broker did not answer in time: the task may have been queued under this uuid. "
                   "Read it with /taskinfo, or repeat the request with the same Idempotency-Key")


def _outcome_unknown(uuid: str, why: str = "broker did not answer") -> ServiceUnavailable:
    logger.warning("{}, task {} may have been queued", why, uuid)
    metrics.note_submit_outcome("outcome_unknown")
    return ServiceUnavailable(OUTCOME_UNKNOWN, extra={"uuid": uuid})


def publish_span(job: JobType, uuid: str) -> Any:
    """The `publish` span (settings/tracing.py): from before the task's record is made (its `created`, which
    the worker's queue wait counts from) to the message's save. The message is built inside it, so it
    carries its `traceparent`: the worker's spans of the job are its children."""
    return tracing.span("publish", "PRODUCER", {"messaging.message.id": uuid, "messaging.system": "celery",
                                                "messaging.destination.name": job.queue, "job.type": job.name})


def message_commands(celery: Celery, job: JobType, record: TaskRecord, upload: dict[str, Any]) -> Commands:
    """The Redis commands of one standard Celery task message and its task-sent event."""
    with capture.capture() as captured, celery.producer_or_acquire() as producer, producer.batch():
        celery.send_task(
            job.task, kwargs={"upload": upload}, task_id=record.uuid, queue=job.queue,
            # No message `expires`: the TTL means "no worker started it in time", so the worker
            # checks it against the record when it starts the job (tasks/delivery/startcheck.py). kombu would
            # discard an old message unasked, even one whose job a dead worker had started.
            time_limit=job.time_limit, soft_time_limit=job.soft_time_limit,
            # "Submitted" is when the job became due: its TTL, its queue wait and its queue's age count from then.
            headers={CLIENT_HEADER: record.owner, JOB_TYPE_HEADER: job.name,
                     SUBMITTED_HEADER: record.due.timestamp(),
                     **({CALLBACK_HEADER: record.callback_url} if record.callback_url else {}),
                     **tracing.message_headers()},
            # Flower and worker logs show these instead of the payload itself.
            argsrepr="()", kwargsrepr=f"{{'upload': <{job.name} upload, {len(upload)} fields>}}",
            # Nothing to declare: the message goes to the anonymous exchange, straight to its queue's list
            # (the workers declare their queues); a declare would reach Redis outside the save script.
            retry=False, producer=producer, declare=[],
        )
    commands = capture.captured_commands(captured)
    if not any(name == "lpush" for name, _ in commands):
        raise OperationalError("the task message was not captured")  # never publish half a task
    return commands


class CapReached(Exception):
    """The owner has as many unfinished tasks as its cap allows."""


class ClaimsDisagree(Exception):
    """A submit's Idempotency-Key and ExternalId already name two different tasks."""

    def __init__(self, uuid: str) -> None:
        super().__init__(uuid)
        self.uuid = uuid  # the task the first claim (the Idempotency-Key) names


CLAIMS_DISAGREE = "The Idempotency-Key and the ExternalId name two different tasks"
FINISHED = "Task already finished"


@dataclass(frozen=True)
class Idempotency:
    """A submit's idempotency claims: their keys (already hashed with the owner; the Idempotency-Key's
    first, then the ExternalId's) and the hash of the request body."""

    keys: tuple[str, ...]
    body_hash: str


@dataclass(frozen=True)
class Existing:
    """The task an idempotency claim already names."""

    uuid: str
    body_hash: str
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Submitted:
    record: TaskRecord
    new: bool  # False: an idempotency key named an existing task, nothing was queued
    same_body: bool  # for an existing task: whether this request's body matches the one that made it


@dataclass(frozen=True)
class ReplicaWait:
    """How many replicas must acknowledge a save, within `timeout_ms`, before it is answered 202 (0: none)."""

    replicas: int = 0
    timeout_ms: int = 0

    @classmethod
    def from_config(cls, queue: Mapping[str, Any]) -> ReplicaWait:
        return cls(queue["wait_replicas"], queue["wait_timeout_ms"])


class NotReplicated(Exception):
    """The save ran on the master (or found the task a repeat names there), and fewer replicas than asked
    acknowledged it in time."""

    def __init__(self, uuid: str) -> None:
        super().__init__(uuid)
        self.uuid = uuid


class Dispatcher:
    """Records tasks and publishes their messages (see the module's docstring)."""

    def __init__(self, celery: Celery, store: TaskStore, broker: Redis, same_redis: bool,
                 wait: ReplicaWait = ReplicaWait(), max_delay: int = 0) -> None:
        self.celery = celery
        self.store = store
        self.broker = broker
        self.same_redis = same_redis
        self.wait = wait
        self._save = store.redis.register_script(SAVE_SCRIPT)
        self.housekeeping = Housekeeping(store.ttl, max_delay=max_delay)
        self.mover = delayed.Mover(broker)

    @classmethod
    def from_settings(cls, celery: Celery, store: TaskStore, broker: Redis, settings: Settings) -> Dispatcher:
        """The Dispatcher of a deployment: the gateway's and the scheduler's (gateway/schedules/beat.py) must
        agree, or one's housekeeping would expire or trim an owner's index sooner than the other's (a
        delayed task's entry outlives its submit by up to the longest delay)."""
        return cls(celery, store, broker, same_redis=settings.broker_url == settings.result_url,
                   wait=ReplicaWait.from_config(settings.config["queue"]), max_delay=max_delay(settings))

    def submit(self, job: JobType, upload: dict[str, Any], external_id: str | None, owner: str,
               idempotency: Idempotency | None = None, callback_url: str | None = None,
               max_unfinished: int | None = None, rate: Check | None = None, due: datetime | None = None) -> Submitted:
        """With `idempotency`, a claim that already names a task returns that task and queues nothing.
        `rate`: the request's rate-limit check, made first inside the save script (Refused: nothing saved).
        `due` (checked by gateway/submission/scheduling.py): a delayed job's message waits until then."""
        uuid = str(uuidlib.uuid4())
        with publish_span(job, uuid):
            record = TaskRecord.new(uuid, job.name, job.ttl, external_id, owner, callback_url, due)
            existing = self._publish(job, record, upload, idempotency, max_unfinished, rate=rate)
        if existing is not None:
            assert idempotency is not None  # only a claimed idempotency key names an existing task
            return Submitted(TaskRecord.from_hash(existing.uuid, existing.record), new=False,
                             same_body=existing.body_hash == idempotency.body_hash)
        return Submitted(record, new=True, same_body=True)

    def requeue(self, record: TaskRecord, job: JobType, upload: dict[str, Any]) -> None:
        """Send a dead-lettered job again under its own id, with a fresh TTL, as if just accepted: the
        old outcome, any cancel, its start and its count of lost deliveries are forgotten in the same
        round trip that queues the message. A delayed job is requeued to run at once."""
        with publish_span(job, record.uuid):
            created = datetime.now(UTC)
            again = replace(record, created=created, expires=created + timedelta(seconds=job.ttl), cancelled=False,
                            scheduled_for=None)
            reset = [("del", (META_PREFIX + record.uuid, LEASE_PREFIX + record.uuid)),
                     ("hdel", (RECORD_PREFIX + record.uuid, "cancelled", "started", "runs", "scheduled_for"))]
            self._publish(job, again, upload, None, None, reset)

    def cancel(self, record: TaskRecord, info: Mapping[str, Any], terminate: bool) -> None:
        """Mark the record (the worker checks it before running) and revoke the task in every worker.
        Every route that cancels comes here (DELETE /tasks/<uuid>, POST /ops/tasks/<uuid>/revoke), with
        the task's TaskInfo as just read: a task that already finished is refused with one 409.

        A delayed job still waiting is moved onto its queue at once, with the mark (in the same transaction
        when the broker is the task store, just after it otherwise): the worker taking it finds it
        cancelled and ends it as any cancelled queued job, counted and its webhook sent, never run."""
        if not cancellable(info):
            raise Conflict(FINISHED, extra={"uuid": record.uuid})
        waiting = record.scheduled_for is not None
        try:
            self.store.mark_cancelled(record, self.mover if waiting and self.same_redis else None)
            if waiting and not self.same_redis:
                self.mover.release(record.uuid)
            self.celery.control.revoke(record.uuid, terminate=terminate, signal="SIGTERM")
        except PUBLISH_ERRORS as exc:
            logger.warning("could not revoke task {}: {}", record.uuid, exc.__class__.__name__)
            raise ServiceUnavailable("Broker unavailable") from None

    def _publish(self, job: JobType, record: TaskRecord, upload: dict[str, Any], idempotency: Idempotency | None,
                 max_unfinished: int | None, store_commands: Sequence[tuple[str, tuple]] = (),
                 rate: Check | None = None) -> Existing | None:
        try:
            message = message_commands(self.celery, job, record, upload)
        except PUBLISH_ERRORS as exc:
            logger.warning("broker unavailable, task {} not queued: {}", record.uuid, exc.__class__.__name__)
            raise ServiceUnavailable("Broker unavailable") from None
        if record.scheduled_for is not None:
            message = delayed.hold(message, record.uuid, record.scheduled_for.timestamp())
        try:
            existing = self._record(record, idempotency, max_unfinished,
                                    [*store_commands, *(message if self.same_redis else ())], rate)
        except ClaimsDisagree as split:
            raise Conflict(CLAIMS_DISAGREE, extra={"uuid": split.uuid}) from None
        except CapReached:
            metrics.note_submit_outcome("over_cap")
            raise TooManyRequests(f"Too many unfinished tasks: at most {max_unfinished} may be queued or running "
                                  "at once; wait for some to finish") from None
        except Unanswered:
            raise _outcome_unknown(record.uuid) from None
        except NotReplicated as short:
            raise _outcome_unknown(short.uuid, "too few replicas acknowledged its save") from None
        except RedisError as exc:
            logger.warning("task store unavailable, task {} not queued: {}", record.uuid, exc.__class__.__name__)
            if not self.same_redis:
                metrics.note_submit_outcome("store_down")
            raise ServiceUnavailable("Broker unavailable" if self.same_redis else "Task store unavailable") from None
        if existing is None and not self.same_redis:
            try:
                self._run_on_broker(message, record)
            except Unanswered:
                raise _outcome_unknown(record.uuid) from None  # the message may be queued: keep its record
            except NotReplicated as short:
                raise _outcome_unknown(short.uuid, "too few replicas acknowledged its message") from None
            except PUBLISH_ERRORS as exc:
                logger.warning("broker unavailable, task {} not queued: {}", record.uuid, exc.__class__.__name__)
                self._forget(record, idempotency)
                raise ServiceUnavailable("Broker unavailable") from None
        return existing

    def _record(self, record: TaskRecord, idempotency: Idempotency | None, max_unfinished: int | None,
                commands: Commands, rate: Check | None = None) -> Existing | None:
        """Run the save script; the Existing task when an idempotency claim already names one."""
        chores = self.housekeeping.chores(record.owner)
        keys = [RECORD_PREFIX + record.uuid, OWNER_PREFIX + record.owner, stats.TOTAL_KEY, chores["hour"],
                OPEN_PREFIX + record.owner, *(rate.script_keys() if rate else ())]
        claim = ""
        if idempotency is not None:
            keys.extend(idempotency.keys)
            claim = json.dumps({"uuid": record.uuid, "body": idempotency.body_hash, "record": record.to_hash()})
        fields = [item for pair in record.to_hash().items() for item in pair]
        args = [self.store.ttl, record.created.timestamp(), record.uuid, stats.field(stats.SUBMITTED, record.type), claim,
                max_unfinished or "", record.expires.timestamp(), capture.as_json(commands),
                rate.script_argument() if rate else "",
                json.dumps({key: chores[key] for key in ("index_ttl", "trim", "hour_ttl", "keep")}),
                self.store.ttl + math.ceil((record.due - record.created).total_seconds()), *fields]
        if self.wait.replicas:
            (found, previous), acknowledged = self._save_and_wait(keys, args)
        else:
            (found, previous), acknowledged = self._save(keys=keys, args=args), 0
        if rate is not None:
            rate.settle_script(int(found.removeprefix("!rate:")) if found.startswith("!rate:") else None, int(previous))
        if not found:
            self.housekeeping.done(record.owner, chores)
            self._check_replicated(acknowledged, record.uuid)
            return None
        if found == "!cap":
            raise CapReached()
        if found.startswith("!split:"):
            raise ClaimsDisagree(found.removeprefix("!split:"))
        existing = json.loads(found)
        if idempotency is not None and existing["body"] == idempotency.body_hash:
            # A repeat answers 200 with the task its key names: not before that task is as replicated as a
            # first save's 202 (it may be the very save whose WAIT fell short, answered "outcome unknown").
            self._check_replicated(acknowledged, existing["uuid"])
        return Existing(existing["uuid"], existing["body"], existing["record"])

    def _save_and_wait(self, keys: list[str], args: list[Any]) -> tuple[Any, int]:
        """The save script and its WAIT on one connection, in one round trip. EVALSHA itself: redis-py's
        pipelined Script asks SCRIPT EXISTS first, a round trip more on every submit. A server without the
        script (a master just promoted, a restart) refuses it and nothing ran: it is loaded, and the pair
        sent again."""
        try:
            return self._evalsha_and_wait(keys, args)
        except NoScriptError:
            self.store.redis.script_load(SAVE_SCRIPT)
            return self._evalsha_and_wait(keys, args)

    def _evalsha_and_wait(self, keys: list[str], args: list[Any]) -> tuple[Any, int]:
        with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._save.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
            saved, acknowledged = pipe.execute()
        return saved, acknowledged

    def _check_replicated(self, acknowledged: int, uuid: str) -> None:
        if acknowledged < self.wait.replicas:
            logger.warning("save of task {} acknowledged by {} of {} replicas", uuid, acknowledged,
                           self.wait.replicas)
            raise NotReplicated(uuid)

    def _run_on_broker(self, commands: Commands, record: TaskRecord) -> None:
        with self.broker.pipeline(transaction=False) as pipe:
            capture.queue_on(pipe, commands)
            if self.wait.replicas:
                pipe.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
            replies = pipe.execute()
        if self.wait.replicas:
            self._check_replicated(replies[-1], record.uuid)

    def _forget(self, record: TaskRecord, idempotency: Idempotency | None) -> None:
        """Undo the save of a task that was never queued: record, index entry, claims and count go."""
        try:
            with self.store.redis.pipeline(transaction=True) as pipe:
                pipe.delete(RECORD_PREFIX + record.uuid)
                pipe.zrem(OWNER_PREFIX + record.owner, record.uuid)
                pipe.zrem(OPEN_PREFIX + record.owner, record.uuid)
                if idempotency is not None:
                    pipe.delete(*idempotency.keys)
                stats.add(pipe, stats.field(stats.SUBMITTED, record.type), self.store.ttl, amount=-1)
                pipe.execute()
        except RedisError:
            logger.error("could not remove the record of unqueued task {}", record.uuid)
