"""A tick becomes a task: the same save-and-publish as a submit (gateway/submission/publishing.py
`Dispatcher.submit`), so the run is an ordinary task of the schedule's owner: in its listing and its
unfinished set (and under its cap), counted in the submission stats and metrics, its webhook fired
when the schedule names a `callback_url`.

The submit carries an idempotency claim named by the schedule and its tick (gateway/schedules/plan.py
`tick_of`), scoped to the owner like any claim (gateway/submission/idempotency.py): a tick fired twice, by two
beats around a lock handover or by one that restarted between its submit and its bookkeeping, makes one
task. The claim lives as long as results do.

With tracing on (settings/tracing.py), each tick is the root of a trace: a `schedule tick` span, the
submit's `publish` under it, and the worker's spans of the job under that.

A tick the task store cannot take (Redis away, outcome unknown) is `Unfired`: the scheduler leaves the
entry due and tries again on its next pass, under the same claim, so a retry after an unknown outcome
never makes a second task. A tick refused by the owner's cap (`limits.max_unfinished`: the client's own
value, else the default; the owner's role is Vault's and not known here) is skipped and logged.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loguru import logger
from redis import Redis
from redis.exceptions import RedisError

from gateway.http.errors import ApiError, TooManyRequests
from gateway.schedules.plan import Planned
from gateway.submission import idempotency
from gateway.submission.publishing import Dispatcher, Idempotency
from jobs.catalogue import JobCatalogue
from jobs.keys import SCHEDULE_RUNS
from settings import tracing


class Unfired(Exception):
    """The tick made no task and must be fired again."""


@dataclass(frozen=True)
class Fired:
    uuid: str | None  # None: skipped (the owner's cap)
    new: bool  # False: the tick's claim already named a task (a second firing of one tick)


def claim(planned: Planned, tick: str) -> Idempotency:
    """The tick's idempotency claim; its body hash is the schedule's submit, as a client's would be."""
    body = {"type": planned.type, "upload": dict(planned.upload), "ExternalId": None,
            "callback_url": planned.callback_url}
    return Idempotency((idempotency.key(planned.owner, f"schedule:{planned.name}\0{tick}"),),
                       idempotency.body_hash(body))


def owner_cap(limits: Mapping[str, Any], owner: str) -> int | None:
    caps = limits["max_unfinished"]
    clients = caps.get("clients") or {}
    return clients[owner] if owner in clients else caps.get("default")


class Firing:
    def __init__(self, dispatcher: Dispatcher, catalogue: JobCatalogue, limits: Mapping[str, Any]) -> None:
        self.dispatcher = dispatcher
        self.catalogue = catalogue
        self.limits = limits

    @property
    def redis(self) -> Redis:
        return self.dispatcher.store.redis

    def fire(self, planned: Planned, tick: str) -> Fired:
        """Submit the tick's task (see the module's docstring); raise Unfired to be called again."""
        with tracing.span("schedule tick", attributes={"schedule.name": planned.name, "schedule.tick": tick}):
            return self._fire(planned, tick)

    def _fire(self, planned: Planned, tick: str) -> Fired:
        job = self.catalogue[planned.type]
        try:
            submitted = self.dispatcher.submit(job, dict(planned.upload), None, planned.owner, claim(planned, tick),
                                               planned.callback_url, owner_cap(self.limits, planned.owner))
        except TooManyRequests:
            logger.warning("schedule {}: tick {} skipped, owner {} has as many unfinished tasks as its cap allows",
                           planned.name, tick, planned.owner)
            return Fired(None, new=False)
        except ApiError as exc:
            logger.warning("schedule {}: tick {} not fired ({}), tried again on the next pass",
                           planned.name, tick, exc.message)
            raise Unfired(planned.name) from None
        uuid = submitted.record.uuid
        if submitted.new:
            logger.info("schedule {}: tick {} made task {} for {}", planned.name, tick, uuid, planned.owner)
        else:
            logger.info("schedule {}: tick {} already made task {}", planned.name, tick, uuid)
        self._note(planned.name, tick, uuid)
        return Fired(uuid, submitted.new)

    def _note(self, name: str, tick: str, uuid: str) -> None:
        """The task of the schedule's latest tick, for /ops/schedules; a failure here loses only that."""
        try:
            self.redis.hset(SCHEDULE_RUNS, name, json.dumps({"uuid": uuid, "tick": tick, "fired_at": time.time()}))
        except RedisError:
            logger.warning("schedule {}: could not note the task of tick {}", name, tick)
