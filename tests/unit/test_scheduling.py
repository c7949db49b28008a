"""gateway/submission/scheduling.py and a delayed record's status: when a job is due, without Redis."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from gateway.submission.scheduling import due_at, due_errors, max_delay
from jobs.record import TaskRecord
from jobs.status import SCHEDULED, describe

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def settings(max_delay: int = 604800, expires: int = 86400) -> SimpleNamespace:
    return SimpleNamespace(config={"limits": {"max_delay": max_delay}, "results": {"expires": expires}})


@pytest.mark.parametrize(("configured", "expires", "longest"), [(604800, 86400, 86400), (600, 86400, 600), (0, 86400, 0)])
def test_the_longest_delay_is_the_shorter_of_max_delay_and_the_retention(configured, expires, longest):
    assert max_delay(settings(configured, expires)) == longest


@pytest.mark.parametrize("payload", [{}, {"delay_seconds": 0}, {"delay_seconds": 86400}, {"delay_seconds": 1.5},
                                     {"run_at": "2026-12-06T13:00:00+01:00"}, {"run_at": "2026-12-06t12:30:00z"},
                                     {"run_at": "2020-01-01T00:00:00Z"}, {"delay_seconds": None, "run_at": None}])
def test_good_delays_have_no_errors(payload):
    assert due_errors(payload, settings(), NOW) == {}


def test_nothing_is_delayed_when_delays_are_off_but_zero_is_fine():
    assert due_errors({"delay_seconds": 0}, settings(0), NOW) == {}
    assert list(due_errors({"delay_seconds": 1}, settings(0), NOW)) == ["delay_seconds"]


def test_a_past_run_at_runs_at_once_and_a_future_one_at_its_time():
    assert due_at({"run_at": "2020-01-01T00:00:00Z"}, NOW) is None
    assert due_at({"run_at": "2026-12-06T14:00:00.123456+01:00"}, NOW) == NOW + timedelta(hours=1, microseconds=123456)
    assert due_at({"delay_seconds": 2}, NOW) == NOW + timedelta(seconds=2)
    assert due_at({"delay_seconds": 0}, NOW) is None and due_at({}, NOW) is None


def test_a_delayed_record_is_created_until_due_and_its_ttl_counts_from_then():
    record = TaskRecord.new("u-1", "calc_hash", 60, None, "c", due=datetime.now(UTC) + timedelta(seconds=30))
    assert record.scheduled_for is not None and record.expires == record.scheduled_for + timedelta(seconds=60)
    assert TaskRecord.from_hash("u-1", record.to_hash()) == record
    before = describe(record, None, record.created, 0)
    assert (before["status"], before["message"], before["scheduled_for"]) == (
        "created", SCHEDULED, record.scheduled_for.isoformat())
    after = describe(record, None, record.scheduled_for + timedelta(seconds=1), 0)
    assert after["status"] == "created" and after["message"] != SCHEDULED
    assert describe(record, None, record.expires + timedelta(seconds=1), 0)["code"] == 3
