"""Lease, heartbeat and finish: the HTTP worker API's logic (routes: gateway/routes/internal.py).

A lease takes the message at the consuming end of the queue and records it in kombu's `unacked` in one
script (scripts.TAKE), then runs the start check every worker runs (jobs/attempts.py). A long poll
waits with `BLMOVE q q RIGHT RIGHT`: it returns as soon as the queue holds a message and moves nothing
(the message goes back where it was), so waiting never holds a message and never reorders the queue;
the take that follows may find it already taken by another worker, and waits again. A long poll holds
one gunicorn thread, at most `wait` + 1 s, so a gateway process holds at most `workers.http_long_polls`
of them at once; a lease request beyond that is answered at once.

A message taken off the queue is never in the gateway's hands only: until it ends it is a delivery in
`unacked`, which any Celery worker's sweep, or this module's (`sweep`, for queues only HTTP workers
serve), puts back in its queue once nobody has refreshed it for `workers.visibility_timeout` seconds.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, cast

from celery import Celery
from loguru import logger
from redis import Redis

from gateway.submission import capture
from gateway.submission.capture import Commands
from gateway.workers import endings, messages, scripts
from gateway.workers.endings import Outcome
from jobs import attempts, deadletters, delayed, results, stats, timings
from jobs.catalogue import JobCatalogue, JobType
from jobs.headers import SUBMITTED_HEADER
from jobs.keys import (
    HTTP_WORKERS,
    KOMBU_UNACKED,
    KOMBU_UNACKED_INDEX,
    LEASE_PREFIX,
    META_PREFIX,
    OPEN_PREFIX,
    RECORD_PREFIX,
)
from settings import tracing

MAX_TAKES = 32  # messages one lease request may take and end (finished, cancelled, expired) before it answers
SWEEP_EVERY = 5.0  # seconds between one gateway process's sweeps for lapsed deliveries
LATE = 1.0  # a long poll's read may take this much longer than its wait
PRUNE_EVERY = 300.0  # seconds between one process's pruning of the HTTP workers seen
FORGET_AFTER = 86400.0  # an HTTP worker not seen for this long is forgotten


@dataclass(frozen=True)
class Lease:
    uuid: str
    job: JobType
    upload: Any
    attempt: int
    token: str
    expires_at: float
    expires_in: float  # seconds: what a worker whose clock differs from the gateway's should go by
    traceparent: str | None = None  # the message's W3C traceparent: the worker's spans continue the job's trace


class Refused(Exception):
    """The call's lease is not (or no longer) the caller's: `reason` says why (409), or the task is gone (404)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The reasons a heartbeat or finish is refused, as the API names them.
REASONS = {"stale": "expired", "lapsed": "expired", "finished": "finished", "ended": "finished",
           "cancelled": "cancelled", "timed_out": "timed_out", "gone": "gone"}


class HttpWorkers:
    """One per gateway process (gateway/extensions.py)."""

    def __init__(self, celery: Celery, catalogue: JobCatalogue, store: Redis, broker: Redis, waiting: Redis,
                 config: Mapping[str, Any], same_redis: bool) -> None:
        self.celery = celery
        self.catalogue = catalogue
        self.store = store
        self.broker = broker
        self.waiting = waiting  # the broker, for long polls: no read timeout of its own (`_wait`)
        self.workers = config["workers"]
        self.ttl = int(config["results"]["expires"])
        self.same_redis = same_redis
        self.max_wait = float(self.workers["http_max_wait"])
        self.lease_seconds = int(self.workers["http_lease"])
        self._polls = threading.BoundedSemaphore(max(1, self.workers["http_long_polls"]))
        self._polls_enabled = self.workers["http_long_polls"] > 0
        self._swept = self._pruned = 0.0
        self._hour = ""
        # EVALSHA, each script loaded once per server (redis-py loads it again after a restart).
        self._take, self._put_back, self._ack_script = (broker.register_script(script) for script in
                                                        (scripts.TAKE, scripts.PUT_BACK, scripts.ACK))
        self._start_check, self._heartbeat, self._end_script = (store.register_script(script) for script in
                                                                (scripts.START, scripts.HEARTBEAT, scripts.END))
        self.mover = delayed.Mover(broker)

    # -- lease ------------------------------------------------------------------------------------------

    def lease(self, queue: str, worker: str, wait: float, gone: Callable[[], bool] = lambda: False) -> Lease | None:
        """The next job of `queue` for `worker`, waiting up to `wait` seconds; None if none came (or the
        long polls of this process are all taken and none was ready). `gone`: whether the caller hung up
        (a worker killed in its long poll): nothing is taken for it then, and its thread is freed within
        SWEEP_EVERY seconds. Meanwhile the sweep runs every SWEEP_EVERY seconds, so a lapsed lease comes
        back even while every HTTP worker of a queue waits in a long poll."""
        wait = min(wait, self.max_wait)
        polling = wait > 0 and self._polls_enabled and self._polls.acquire(blocking=False)
        deadline = time.monotonic() + (wait if polling else 0)
        try:
            self.sweep()
            ended = 0
            while ended < MAX_TAKES and not gone():
                now = time.time()
                taken = self._take(keys=[queue, KOMBU_UNACKED, KOMBU_UNACKED_INDEX, HTTP_WORKERS],
                                   args=[self.due_score(now), f"{worker}|{queue}", now])
                if not taken:
                    remaining = deadline - time.monotonic()
                    if remaining < 0.01:
                        return None
                    self._wait(queue, min(remaining, SWEEP_EVERY))
                    self.sweep()
                    continue
                lease, handed_back = self._start(queue, worker, *taken)
                if lease is not None or handed_back:
                    return lease
                ended += 1
            return None
        finally:
            if polling:
                self._polls.release()

    def _wait(self, queue: str, seconds: float) -> None:
        """Block until `queue` holds a message, at most `seconds` (the take that follows tells)."""
        pool = self.waiting.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_command("BLMOVE", queue, queue, "RIGHT", "RIGHT", f"{seconds:.3f}")
            connection.read_response(timeout=seconds + LATE)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def _start(self, queue: str, worker: str, tag: str, raw: str) -> tuple[Lease | None, bool]:
        """The start check of a message just taken: (its Lease, False) when it is to run; otherwise it
        ends as the check says: (None, whether it went back to its queue, for a Celery worker)."""
        try:
            delivery = messages.read(tag, raw) if tag else None
        except messages.Unreadable:
            delivery = None
        job = self.catalogue.get(delivery.job_type) if delivery is not None and delivery.job_type else None
        if delivery is None or job is None or job.queue != queue:
            # Not a job an HTTP worker can run (another task, a type this gateway does not know): it goes
            # back to the far end of its queue, for a Celery worker.
            return self._hand_back(queue, tag, raw)
        token, now = secrets.token_urlsafe(24), time.time()
        submitted = delivery.headers.get(SUBMITTED_HEADER)
        holder = f"http:{worker}"
        verdict, lost = self._start_check(
            keys=[RECORD_PREFIX + delivery.uuid, LEASE_PREFIX + delivery.uuid, META_PREFIX + delivery.uuid],
            args=[now, float(submitted) + job.ttl if submitted is not None else "", self.workers["max_deliveries"],
                  self.lease_seconds, f"{holder}|{token}", token, holder, tag, now + job.time_limit, queue])
        lost = int(lost)
        if verdict == attempts.RUN:
            self._send_events(worker, [
                ("task-received", {"uuid": delivery.uuid, "name": delivery.task,
                                   "args": delivery.headers.get("argsrepr"), "kwargs": delivery.headers.get("kwargsrepr"),
                                   "root_id": delivery.headers.get("root_id"), "parent_id": delivery.headers.get("parent_id"),
                                   "retries": delivery.headers.get("retries", 0), "eta": None, "expires": None}),
                ("task-started", {"uuid": delivery.uuid})])
            logger.info("lease: task {} to HTTP worker {} (attempt {})", delivery.uuid, worker, lost + 1)
            return Lease(delivery.uuid, job, delivery.upload, lost + 1, token, now + self.lease_seconds,
                         self.lease_seconds, _traceparent(delivery.headers)), False
        if verdict == attempts.UNRECORDED:
            return self._hand_back(queue, tag, raw)
        if verdict == attempts.FINISHED:
            logger.info("lease: task {} redelivered after it finished: skipped", delivery.uuid)
            self._ack(tag)
        elif verdict == attempts.HELD:
            # Left in `unacked`: it comes back when the lease that holds it lapses, and is checked again.
            logger.warning("lease: task {} redelivered while another worker holds it: checked again later", delivery.uuid)
        elif verdict == attempts.CANCELLED:
            self._end(delivery.uuid, "", job.name, endings.revoked(job.name, "cancelled"), worker, tag,
                      delivery.callback, delivery.owner)
        elif verdict == attempts.EXPIRED:
            logger.info("lease: task {} expired before a worker started it", delivery.uuid)
            self._end(delivery.uuid, "", job.name, endings.revoked(job.name, "expired"), worker, tag,
                      delivery.callback, delivery.owner)
        elif verdict == attempts.LOST:
            logger.warning("lease: task {} set aside: its worker died on each of {} deliveries", delivery.uuid, lost)
            deadletters.add(self.store, delivery.uuid, {
                "task": delivery.task, "queue": queue, "type": job.name, "owner": delivery.owner,
                "callback": delivery.callback, "args": [], "kwargs": {"upload": delivery.upload}, "attempts": lost,
                "error": "WorkerLost"})
            self._end(delivery.uuid, "", job.name, endings.worker_lost(job.name, lost), worker, tag,
                      delivery.callback, delivery.owner)
        return None, False

    def _hand_back(self, queue: str, tag: str, raw: str) -> tuple[None, bool]:
        """A message no HTTP worker can run goes back to the far end of its queue (a TAKE of something that
        is no kombu message, tag "", already put it back)."""
        if tag:
            self._put_back(keys=[queue, KOMBU_UNACKED, KOMBU_UNACKED_INDEX], args=[tag, raw])
        logger.info("lease: a message of queue {} that no HTTP worker runs went back", queue)
        return None, True

    # -- heartbeat and finish ---------------------------------------------------------------------------

    def heartbeat(self, uuid: str, token: str, progress: dict[str, Any] | None) -> tuple[float, float]:
        """Extend the lease: (when it now lapses, in how many seconds). When its job was cancelled or ran
        past its time limit meanwhile, end it so and refuse (Refused: cancelled / timed_out)."""
        now = time.time()
        meta = endings.progress_meta(uuid, progress["percent"], progress.get("stage", "")) if progress else ""
        answer = self._heartbeat(keys=[RECORD_PREFIX + uuid, LEASE_PREFIX + uuid, META_PREFIX + uuid],
                                 args=[token, now, self.lease_seconds, meta, self.ttl])
        if answer[0] != "ok":
            self._refuse(uuid, token, answer[0])
        worker = str(answer[3]).removeprefix("http:")
        with self.broker.pipeline(transaction=False) as pipe:
            pipe.zadd(KOMBU_UNACKED_INDEX, {answer[1]: self.due_score(now)}, xx=True)
            pipe.hset(HTTP_WORKERS, f"{worker}|{answer[2]}", now)
            pipe.execute()
        return now + self.lease_seconds, self.lease_seconds

    def due_score(self, now: float) -> float:
        """The score in kombu's `unacked_index` that makes a delivery due for the sweep `lease_seconds`
        after `now`: sweeps put back what scores below `now - visibility_timeout` (kombu's rule, for
        every delivery alike), so an HTTP lease of its own length is the same index, shifted."""
        return now - self.workers["visibility_timeout"] + self.lease_seconds

    def finish(self, uuid: str, token: str, job: JobType, outcome: Outcome) -> None:
        """End the job with `outcome`; the same call again is answered the same (a repeat)."""
        record = self._record(uuid)
        answer = self._end(uuid, token, job.name, outcome, record["worker"], record["tag"], record["callback"],
                           record["owner"], refuse_interrupted=True, timing=record["timing"])
        if answer == "finished":
            return  # this token finished it already: a repeat
        if answer != "ok":
            self._refuse(uuid, token, answer)

    def job_of(self, uuid: str) -> JobType | None:
        """The job type of a recorded task (None: no such task, or a type no longer configured)."""
        job_type = cast("str | None", self.store.hget(RECORD_PREFIX + uuid, "type"))  # the store decodes replies
        return self.catalogue.get(job_type) if job_type else None

    def set_aside(self, uuid: str, result: Any) -> Any:
        """An image result's content under its own key, as a Celery image job stores it (jobs/results.py)."""
        if isinstance(result, dict) and isinstance(result.get("content"), str) and result.get("format") in results.MEDIA_TYPES:
            return results.set_aside(self.store, uuid, result, self.ttl)
        return result

    def _refuse(self, uuid: str, token: str, problem: str) -> NoReturn:
        if problem in ("cancelled", "timed_out"):
            record = self._record(uuid)
            job = self.catalogue.get(record["type"]) if record["type"] else None
            if job is not None:
                outcome = (endings.revoked(job.name, "cancelled") if problem == "cancelled"
                           else endings.timed_out(job.name, job.time_limit))
                self._end(uuid, token, job.name, outcome, record["worker"], record["tag"], record["callback"],
                          record["owner"])
        raise Refused(REASONS.get(problem, "expired"))

    def _record(self, uuid: str) -> dict[str, Any]:
        """Who holds the task's HTTP lease and what its end needs: read before the script that checks the
        token, which refuses everything if the lease changed hands meanwhile."""
        job_type, worker, tag, callback, owner, created, scheduled, since = cast("list[str | None]", self.store.hmget(
            RECORD_PREFIX + uuid, "type", "http_worker", "http_tag", "callback_url", "owner", "created", "scheduled_for",
            "http_since"))
        return {"type": job_type, "worker": (worker or "http:").removeprefix("http:"), "tag": tag or "",
                "callback": callback or None, "owner": owner, "timing": _timing(scheduled or created, since)}

    # -- ending -----------------------------------------------------------------------------------------

    def _end(self, uuid: str, token: str, job_type: str, outcome: Outcome, worker: str, tag: str,
             callback: str | None, owner: str | None, refuse_interrupted: bool = False,
             timing: tuple[float, float | None] | None = None) -> str:
        """Run scripts.END; the broker's part (webhook message, events, the acknowledgement of delivery
        `tag`) inside it when the broker is the same Redis, right after it otherwise. Returns the script's
        answer ("ok" when it ended the job). `timing`: (runtime, queue wait) of an attempt that ran to its
        end, for the timing histograms, as a Celery worker counts them (tasks/timing.py)."""
        kind, fields = outcome.event
        broker = [*endings.webhook_commands(self.celery, uuid, callback, owner),
                  *(self._event_commands(worker, [(kind, {"uuid": uuid, **fields})]) if kind else []),
                  *((("hdel", (KOMBU_UNACKED, tag)), ("zrem", (KOMBU_UNACKED_INDEX, tag))) if tag else ())]
        hour = stats.hour_key()
        answer = self._end_script(
            keys=[RECORD_PREFIX + uuid, LEASE_PREFIX + uuid, META_PREFIX + uuid, stats.TOTAL_KEY, hour,
                  OPEN_PREFIX + (owner or ""), timings.KEY],
            args=[token, time.time(), outcome.meta(uuid), self.ttl, outcome.count, uuid,
                  capture.as_json(broker if self.same_redis else []),
                  "1" if refuse_interrupted else "0", "1" if hour != self._hour else "0",
                  json.dumps(timings.increments(job_type, *timing) if timing else [])])
        if answer[0] != "ok":
            return str(answer[0])
        self._hour = hour
        if not self.same_redis:
            self._run_on_broker(broker)
        logger.info("task {} ended ({}) for HTTP worker {}", uuid, outcome.state, worker)
        return "ok"

    def _ack(self, tag: str) -> None:
        self._ack_script(keys=[KOMBU_UNACKED, KOMBU_UNACKED_INDEX], args=[tag])

    def _send_events(self, worker: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Best effort, as a Celery worker's events are."""
        try:
            self._run_on_broker(self._event_commands(worker, events))
        except Exception as exc:  # noqa: BLE001 - events are best effort
            logger.warning("could not send task events: {}", exc.__class__.__name__)

    def _event_commands(self, worker: str, events: list[tuple[str, dict[str, Any]]]) -> Commands:
        try:
            return endings.event_commands(self.celery, worker, events)
        except Exception as exc:  # noqa: BLE001 - events are best effort
            logger.warning("could not build task events: {}", exc.__class__.__name__)
            return []

    def _run_on_broker(self, commands: Commands) -> None:
        if not commands:
            return
        with self.broker.pipeline(transaction=False) as pipe:
            capture.queue_on(pipe, commands)
            pipe.execute()

    # -- the sweep --------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Put back deliveries nobody refreshed for `workers.visibility_timeout` seconds, at most every
        SWEEP_EVERY seconds per process: what every Celery worker does (tasks/delivery/transport.py
        QoS.restore_visible), for queues served by HTTP workers only. One read when nothing is due; the
        put back itself is kombu's own, under its lock. Delayed jobs that are due are moved onto their
        queues here too (jobs/delayed.py), so HTTP workers get them with no Celery worker running."""
        now = time.time()
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        try:
            self.mover.tick(now)
        except Exception as exc:  # noqa: BLE001 - the next sweep (or a Celery worker) moves them
            logger.warning("could not move delayed jobs: {}", exc.__class__.__name__)
        try:
            due = self.broker.zrange(KOMBU_UNACKED_INDEX, 0, now - self.workers["visibility_timeout"], byscore=True,
                                     offset=0, num=1)
            if now - self._pruned >= PRUNE_EVERY:
                self._pruned = now
                stale = [name for name, seen in self.broker.hgetall(HTTP_WORKERS).items() if float(seen) < now - FORGET_AFTER]
                if stale:
                    self.broker.hdel(HTTP_WORKERS, *stale)
            if due:
                with self.celery.producer_or_acquire() as producer:
                    qos = producer.channel.qos
                    qos.visibility_timeout = self.workers["visibility_timeout"]
                    qos.restore_visible(num=10, interval=1)
        except Exception as exc:  # noqa: BLE001 - the next sweep (or a Celery worker's) tries again
            logger.warning("could not sweep lapsed deliveries: {}", exc.__class__.__name__)


def _timing(created: str | None, since: str | None) -> tuple[float, float | None] | None:
    """(runtime until now, queue wait) of the attempt leased at `since`, for a task due at `created` (its
    submit, or a delayed job's scheduled time)."""
    if not since:
        return None
    leased = float(since)
    wait = max(0.0, leased - datetime.fromisoformat(created).timestamp()) if created else None
    return max(0.0, time.time() - leased), wait



def _traceparent(headers: Mapping[str, Any]) -> str | None:
    """The gateway's own `publish` span wrote it (settings/tracing.py); a message from elsewhere may hold anything."""
    value = headers.get(tracing.TRACEPARENT)
    return value if isinstance(value, str) and len(value) <= tracing.MAX_TRACEPARENT else None
