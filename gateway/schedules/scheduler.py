"""RedBeat's scheduler, with one change to what a due entry does: instead of sending a bare Celery
message, it submits the tick through the gateway's Dispatcher (gateway/schedules/firing.py), and only
then moves the entry on. A beat killed between the two fires the tick again when it (or another)
comes back, under the same claim: the task is made once.

Each entry's schedule is taken from the configuration (gateway/schedules/plan.py), not from the copy
RedBeat keeps in Redis, which has no time zone for a crontab. Celery's default entries
(`celery.backend_cleanup`) are not installed: this beat fires the configured schedules only.

A missed tick (no scheduler ran while it was due) is caught up once: RedBeat sees the entry overdue
and fires it at once, a single time however many ticks were missed, then the schedule goes on from
then (docs/operations.md: Periodic jobs).
"""
from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.utils.objects import cached_property
from redbeat import RedBeatScheduler
from redbeat.schedulers import RedBeatSchedulerEntry

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

    def install_default_entries(self, data: Any) -> None:
        """None: see the module's docstring."""

    @cached_property
    def _maybe_due_kwargs(self) -> dict[str, Any]:
        """No producer: a tick never publishes through beat's own connection."""
        return {}

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Fired | None:
        planned = runtime().plan.get(entry.name)
        if planned is None:  # an entry left from an older configuration, not yet removed
            return None
        try:
            fired = runtime().firing.fire(planned, tick_of(entry.last_run_at))
        except Unfired:
            return None  # still due: the next pass fires the same tick
        if advance:
            self.reserve(entry)
        return fired
