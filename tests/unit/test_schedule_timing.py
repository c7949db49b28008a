"""Cron expressions and time zones of the schedules: what settings/cron.py accepts, Celery's crontab reads
the same way, and a cron schedule runs in its own time zone (gateway/schedules/plan.py)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from celery import Celery

from gateway.schedules.plan import plan, tick_of
from settings.cron import parse_cron

APP = Celery("timing", set_as_current=False)


@pytest.mark.parametrize(("text", "minutes", "hours", "days_of_week"), [
    ("*/15 * * * *", {0, 15, 30, 45}, set(range(24)), set(range(7))),
    ("5,35 8-18/5 * * mon-fri", {5, 35}, {8, 13, 18}, {1, 2, 3, 4, 5}),
    ("0 0 * * sun", {0}, {0}, {0}),
])
def test_accepted_expressions_mean_the_same_to_celery(text, minutes, hours, days_of_week):
    cron = plan({"s": {"type": "t", "upload": {}, "owner": "o", "cron": text}}, APP)["s"].timing
    assert (cron.minute, cron.hour, cron.day_of_week) == (minutes, hours, days_of_week)


@pytest.mark.parametrize("text", ["* * * *", "@daily", "60 * * * *", "* * * * 7", "10-5 * * * *", "*/0 * * * *",
                                  "* * 0 * *", "* * * 13 *", "0 0 L * *", "0 0 * * mon#2"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_cron(text)


@pytest.mark.parametrize(("after", "due"), [
    (datetime(2026, 1, 10, 12, tzinfo=UTC), datetime(2026, 1, 11, 2, tzinfo=UTC)),  # CET: 03:00 is 02:00 UTC
    (datetime(2026, 7, 10, 12, tzinfo=UTC), datetime(2026, 7, 11, 1, tzinfo=UTC)),  # CEST: 03:00 is 01:00 UTC
])
def test_a_cron_schedule_runs_in_its_own_time_zone(after, due):
    planned = plan({"s": {"type": "t", "upload": {}, "owner": "o", "cron": "0 3 * * *", "timezone": "Europe/Paris"}},
                   APP)["s"]
    assert planned.next_run(after) == due


def test_an_interval_runs_that_long_after_the_last_run():
    planned = plan({"s": {"type": "t", "upload": {}, "owner": "o", "every": 90}}, APP)["s"]
    last = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert planned.next_run(last) == datetime(2026, 1, 10, 12, 1, 30, tzinfo=UTC)


def test_a_tick_is_named_by_the_run_it_follows():
    last = datetime(2026, 1, 10, 12, 0, 0, 123456, tzinfo=UTC)
    assert tick_of(last) == tick_of(datetime.fromisoformat(last.isoformat())) != tick_of(None)
