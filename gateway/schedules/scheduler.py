"""RedBeat's scheduler, with one change to what a due entry does: instead of sending a bare Celery
message, it submits the tick through the gateway's Dispatcher (gateway/schedules/firing.py), and only
then moves the entry on. A beat killed between the two fires the tick again when it (or another)
comes back, under the same claim: the task is made once.

Each entry's schedule is taken from the configuration (gateway/schedules/plan.py), not from the copy
RedBeat keeps in Redis, which has no time zone for a crontab. Celery's default entries
(`celery.backend_cleanup`) are not installed: this beat fires the configured schedules only.

Redis going away does not end the process: each pass that cannot reach it is logged in one line and
tried again `scheduler.max_interval` seconds later. When Redis is back the lock is renewed; if it was
lost (Redis restarted without it) it is taken again and the schedules written again; if another
scheduler took it meanwhile, this one stops (its supervisor starts it again, as a standby). A scheduler
that overslept its lock fires at most the ticks of one pass before it finds out, and their claims
(gateway/schedules/firing.py) keep those from making second tasks.

A missed tick (no scheduler ran while it was due) is caught up once: RedBeat sees the entry overdue
and fires it at once, a single time however many ticks were missed, then the schedule goes on from
then (docs/operations.md: Periodic jobs).
"""
from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.utils.objects import cached_property
from loguru import logger
from redbeat import RedBeatScheduler
from redbeat.schedulers import RedBeatSchedulerEntry
from redis.exceptions import LockNotOwnedError, RedisError

from gateway.schedules.beat import runtime
from gateway.schedules.firing import Fired, Unfired
from gateway.schedules.plan import tick_of


class Entry(RedBeatSchedulerEntry):
    @classmethod
    def from_key(cls, key: str, app: Celery | None = None) -> Entry:
        entry = super().from_key(key, app=app)
        planned = runtime().plan.get(entry.name)
        if planned is not None:
            entry.schedule = planned.timing
        return entry


class Scheduler(RedBeatScheduler):
    Entry = Entry

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """RedBeat's pass (renew the lock, fire what is due), riding out Redis outages and a lost lock."""
        if self.lock_key and self.lock is None:  # RedBeat's start-up acquire failed (Redis away): start again
            logger.error("scheduler: could not take its lock at start (Redis unavailable?), stopping")
            raise SystemExit(1)
        try:
            return super().tick(*args, **kwargs)
        except LockNotOwnedError:
            if self._take_lock_again():
                return 0.0
            logger.error("scheduler: another scheduler holds the lock now, stopping")
            raise SystemExit(1) from None
        except RedisError as exc:
            logger.warning("scheduler: Redis unavailable ({}), trying again in {} s",
                           exc.__class__.__name__, self.max_interval)
            return float(self.max_interval)

    def _take_lock_again(self) -> bool:
        """The lock is gone, not taken: Redis restarted without it, and perhaps without the schedules'
        entries too, which are written again (a schedule whose entry survived keeps its last run)."""
        lock: Any = self.lock
        try:
            if not lock.acquire(blocking=False):
                return False
            self.setup_schedule()
        except RedisError:
            return False
        logger.warning("scheduler: its lock was gone (Redis restarted?), taken again")
        return True

    def close(self) -> None:
        """RedBeat releases the lock; with Redis away it simply lapses."""
        try:
            super().close()
        except RedisError:
            self.lock = None

    def install_default_entries(self, data: Any) -> None:
        """None: see the module's docstring."""

    @cached_property
    def _maybe_due_kwargs(self) -> dict[str, Any]:
        """No producer: a tick never publishes through beat's own connection."""
        return {}

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Fired | None:
        planned = runtime().plan.get(entry.name)
        if planned is None:  # an entry in RedBeat's keys that is not in the configuration (written by hand)
            logger.warning("scheduler: entry {} is not a configured schedule, removed", entry.name)
            entry.delete()
            return None
        try:
            fired = runtime().firing.fire(planned, tick_of(entry.last_run_at))
        except Unfired:
            return None  # still due: the next pass fires the same tick
        if advance:
            self.reserve(entry)
        return fired
