"""jobs/status.py: Celery state -> the four statuses and the stable error codes, without Redis."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.record import TaskRecord
from jobs.status import MESSAGES, REQUEUED, ErrorCode, cancellable, code_for_reason, describe, failure, running

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def record(**changes) -> TaskRecord:
    base = TaskRecord("u-1", "calc_hash", NOW - timedelta(seconds=10), NOW + timedelta(seconds=50), None, "c")
    return TaskRecord(**{**base.__dict__, **changes})


@pytest.mark.parametrize(("meta", "status", "code"), [
    (None, "created", 0),
    ({"status": "STARTED"}, "pending", 0),
    ({"status": "RETRY"}, "pending", 0),
    ({"status": "PROGRESS", "result": {"percent": 40, "stage": "resizing"}}, "pending", 0),
    ({"status": "SUCCESS", "result": {"size": 1}, "date_done": "2026-11-23T12:00:00"}, "done", 0),
    ({"status": "FAILURE", "result": {"exc_type": "BadContent", "exc_message": ["not an image"]}}, "error", 2),
    ({"status": "FAILURE", "result": {"exc_type": "ZeroDivisionError", "exc_message": ["secret"]}}, "error", 1),
    ({"status": "FAILURE", "result": {"exc_type": "OutOfBounds", "exc_message": ["over max_output_side"]}}, "error", 2),
    ({"status": "FAILURE", "result": {"exc_type": "MemoryError", "exc_message": []}}, "error", 2),
    ({"status": "FAILURE", "result": {"exc_type": "SoftTimeLimitExceeded"}}, "error", 5),
    ({"status": "FAILURE", "result": {"exc_type": "WorkerLostError"}}, "error", 6),
    ({"status": "FAILURE", "result": {"exc_type": "RetriesExhausted"}}, "error", 7),
    ({"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", "exc_message": ["expired"]}}, "error", 3),
    ({"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", "exc_message": ["revoked"]}}, "error", 4),
])
def test_celery_states_map_to_the_four_statuses(meta, status, code):
    info = describe(record(), meta, NOW, grace=5)
    assert (info["status"], info["code"]) == (status, code)


def test_a_memory_error_is_bad_content_with_a_fixed_message():
    assert failure("FAILURE", {"exc_type": "MemoryError", "exc_message": ["at 0x7f.."]}) == (
        ErrorCode.BAD_CONTENT, "The job needed more memory than a worker may use")


def test_unexpected_exception_text_never_reaches_the_client():
    _, message = failure("FAILURE", {"exc_type": "KeyError", "exc_message": ["/etc/secret path"]})
    assert "secret" not in message


def test_unstarted_task_past_its_ttl_and_grace_is_expired():
    late = NOW + timedelta(seconds=60)
    assert describe(record(), None, late, grace=5)["code"] == int(ErrorCode.EXPIRED)
    assert describe(record(), None, late, grace=30)["status"] == "created"


def test_cancelled_record_is_final_before_any_worker_sees_it():
    info = describe(record(cancelled=True), None, NOW, grace=5)
    assert (info["status"], info["code"], info["message"]) == ("error", 4, MESSAGES[ErrorCode.CANCELLED])


def test_progress_is_shown_only_when_well_formed():
    assert describe(record(), {"status": "PROGRESS", "result": {"percent": 10, "stage": "x"}}, NOW, 5)["progress"] == {
        "percent": 10, "stage": "x"}
    assert "progress" not in describe(record(), {"status": "PROGRESS", "result": "junk"}, NOW, 5)


@pytest.mark.parametrize(("reason", "code"), [("expired", 3), ("revoked", 4), ("TaskRevokedError", 4),
                                              ("BadContent", 2), ("TimeLimitExceeded", 5), ("Whatever", 1)])
def test_counted_reasons_map_to_the_same_codes(reason, code):
    assert code_for_reason(reason) == code


@pytest.mark.parametrize(("status", "code", "expected"), [
    ("created", 0, True), ("pending", 0, True), ("error", int(ErrorCode.CANCELLED), True),
    ("done", 0, False), *(("error", int(code), False) for code in ErrorCode if code != ErrorCode.CANCELLED),
])
def test_only_an_unfinished_or_cancelled_task_is_cancellable(status, code, expected):
    assert cancellable({"status": status, "code": code}) is expected


def test_a_started_job_is_pending_while_its_lease_lives_and_queued_again_after():
    """The start check marks the record `started`; Celery's meta stays empty until the job ends."""
    assert describe(record(started=True), None, NOW, grace=5)["status"] == "pending"
    lost = describe(record(started=True, held=False), None, NOW, grace=5)
    assert (lost["status"], lost["message"]) == ("created", REQUEUED)
    assert describe(record(started=True), None, NOW + timedelta(seconds=600), grace=5)["status"] == "pending"
    assert running(record(started=True), None) and not running(record(), None)
    assert not running(record(started=True), {"status": "SUCCESS"})
