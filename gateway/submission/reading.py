"""How a task reads: its TaskInfo from its record and Celery's meta (jobs/status.py), the result inline
only when small (jobs/results.py); for GET /taskinfo, in the request's one round trip with its rate-limit
check, and for a finished task, from this process's memory when it read it before.

A finished task (its meta in one of jobs/status.py `FINISHED_STATES`) reads the same until it expires,
with one exception: an operator's requeue of a dead letter (gateway/submission/publishing.py
`Dispatcher.requeue`), which gives the record a new `created` in the same script that deletes the old
outcome. So a re-read asks Redis only for the record's `created`: the one remembered, and the TaskInfo
remembered is still the truth; none, and the task has expired (404, as a full read would say); another,
and the task was requeued: it is read afresh. Remembered per process, a bounded number of small bodies.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobs import results
from jobs.keys import RECORD_PREFIX
from jobs.record import TaskRecord
from jobs.status import FINISHED_STATES, describe
from jobs.store import Ahead, TaskStore

REMEMBERED = 2048  # finished tasks one process remembers
REMEMBERED_RESULT_BYTES = 4096  # a TaskInfo with a larger result (as JSON) is not remembered


@dataclass(frozen=True)
class Finished:
    owner: str
    created: str  # the record's `created` as stored: a requeue changes it
    info: dict[str, Any]


class FinishedTasks:
    """The finished tasks' TaskInfo bodies this process read last (least recently read goes first)."""

    def __init__(self, bound: int = REMEMBERED) -> None:
        self.bound = bound
        self._tasks: OrderedDict[str, Finished] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, uuid: str) -> Finished | None:
        with self._lock:
            found = self._tasks.get(uuid)
            if found is not None:
                self._tasks.move_to_end(uuid)
            return found

    def put(self, uuid: str, finished: Finished) -> None:
        with self._lock:
            self._tasks[uuid] = finished
            self._tasks.move_to_end(uuid)
            while len(self._tasks) > self.bound:
                self._tasks.popitem(last=False)

    def forget(self, uuid: str) -> None:
        with self._lock:
            self._tasks.pop(uuid, None)


class TaskReader:
    """Reads tasks for the routes (see the module's docstring)."""

    def __init__(self, store: TaskStore, config: Mapping[str, Any]) -> None:
        self.store = store
        self.grace = config["expired_grace"]
        self.max_inline = config["max_inline_bytes"]
        self.finished = FinishedTasks()

    def status(self, record: TaskRecord, meta: dict[str, Any] | None) -> dict[str, Any]:
        """TaskInfo as the Celery meta says, the result as stored (jobs/status.py)."""
        return describe(record, meta, datetime.now(UTC), self.grace)

    def describe(self, record: TaskRecord, meta: dict[str, Any] | None) -> dict[str, Any]:
        """TaskInfo, its result inline only when small (jobs/results.py)."""
        info = self.status(record, meta)
        return info | {"result": results.present(record.uuid, info["result"], self.store.redis, self.max_inline)}

    def info(self, uuid: str, ahead: Ahead | None = None) -> tuple[str, dict[str, Any]] | None:
        """(owner, TaskInfo) of a task, None if there is none; `ahead`'s commands (the rate check) go
        first in the same round trip and are settled before anything read is looked at."""
        known = self.finished.get(uuid)
        if known is not None:
            with self.store.redis.pipeline(transaction=False) as pipe:
                first = ahead.queue(pipe) if ahead is not None else 0
                pipe.hget(RECORD_PREFIX + uuid, "created")
                replies = pipe.execute(raise_on_error=False)
            if ahead is not None:
                ahead.settle(replies[:first])
            if isinstance(replies[first], Exception):
                raise replies[first]
            if replies[first] == known.created:
                return known.owner, dict(known.info)
            self.finished.forget(uuid)
            if replies[first] is None:
                return None
            ahead = None  # counted already
        record, meta = self.store.load(uuid, ahead)
        if record is None:
            return None
        info = self.describe(record, meta)
        if meta is not None and meta.get("status") in FINISHED_STATES and _small(info["result"]):
            self.finished.put(uuid, Finished(record.owner, record.created.isoformat(), info))
        return record.owner, dict(info)


def _small(result: Any) -> bool:
    return result is None or len(json.dumps(result, separators=(",", ":"))) <= REMEMBERED_RESULT_BYTES
