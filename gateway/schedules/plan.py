"""The configured schedules as Celery schedule objects: what the scheduler runs and what /ops/schedules
shows, built the same way in both.

`every` is Celery's interval schedule: a run every N seconds after the previous one. `cron` is Celery's
crontab in the schedule's own time zone (`timezone`, IANA, default UTC): `ZonedCrontab` reads the
fields in that zone, so `0 3 * * *` in Europe/Paris is 03:00 Paris time on both sides of a DST change.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from celery import Celery
from celery.schedules import BaseSchedule, crontab, schedule

from settings.cron import parse_cron, zone


class ZonedCrontab(crontab):
    """A crontab whose fields are read in `zone_name`, whatever the Celery app's own time zone (UTC)."""

    def __init__(self, zone_name: str, **fields: Any) -> None:
        super().__init__(**fields)
        self.zone_name = zone_name

    @property
    def tz(self) -> tzinfo:
        return zone(self.zone_name)


@dataclass(frozen=True)
class Planned:
    """One configured schedule."""

    name: str
    type: str
    upload: Mapping[str, Any]
    owner: str
    callback_url: str | None
    timing: BaseSchedule
    every: float | None
    cron: str | None
    timezone: str

    def next_run(self, last_run_at: datetime) -> datetime:
        """When the tick after `last_run_at` is due (in the past when it is overdue), as Celery's schedule
        computes it, in UTC."""
        if isinstance(self.timing, crontab):
            start, delta, _ = self.timing.remaining_delta(last_run_at)
            return (start + delta).astimezone(UTC)
        assert isinstance(self.timing, schedule)
        return (self.timing.maybe_make_aware(last_run_at) + self.timing.run_every).astimezone(UTC)


def timing(conf: Mapping[str, Any], app: Celery) -> BaseSchedule:
    if "every" in conf:
        return schedule(timedelta(seconds=conf["every"]), app=app)
    cron = parse_cron(conf["cron"])
    return ZonedCrontab(conf.get("timezone", "UTC"), minute=cron.minute, hour=cron.hour,
                        day_of_month=cron.day_of_month, month_of_year=cron.month_of_year,
                        day_of_week=cron.day_of_week, app=app)


def plan(schedules: Mapping[str, Mapping[str, Any]], app: Celery) -> dict[str, Planned]:
    """Every configured schedule (already checked with the settings: settings/__init__.py)."""
    return {name: Planned(name, conf["type"], conf["upload"], conf["owner"], conf.get("callback_url"),
                          timing(conf, app), conf.get("every"), conf.get("cron"), conf.get("timezone", "UTC"))
            for name, conf in schedules.items()}


def tick_of(last_run_at: datetime | None) -> str:
    """The tick a scheduler is about to fire, named by the previous run it follows, which every beat reads
    from the same RedBeat entry: two beats firing one tick (a lock handover, a restart mid-tick) name
    it alike, so its idempotency claim lets one task through (gateway/schedules/firing.py)."""
    return "first" if last_run_at is None else last_run_at.isoformat()
