"""The client library's calls against the live stack, sync (`Client`): submit, get, wait with progress,
result, listing through the cursor, cancel, health, and the gateway's errors as typed exceptions."""
from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from jobgateway_client import (
    AuthenticationError,
    BadRequest,
    BasicAuth,
    Client,
    Conflict,
    ErrorCode,
    JobFailed,
    NotFound,
    PermissionDenied,
    TaskInfo,
    WaitTimeout,
    content_from_bytes,
    content_from_path,
    upload_from_path,
)
from tests.support import images


def test_submit_and_wait_calc_hash_returns_the_digest(admin, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(images.png(40, 30))
    task = admin.submit("calc_hash", {"content": content_from_path(photo), "algorithms": ["sha256", "md5"]})
    assert task.new and task.idempotency_key
    info = task.wait(timeout=30)
    assert info.done and info.code == ErrorCode.NONE
    assert info.result["digests"] == {"sha256": hashlib.sha256(photo.read_bytes()).hexdigest(),
                                      "md5": hashlib.md5(photo.read_bytes()).hexdigest()}
    assert admin.get(task.uuid) == info


def test_submit_with_a_delay_is_created_with_its_time_then_done(admin):
    run_at = datetime.now(UTC) + timedelta(seconds=1)
    task = admin.submit("calc_hash", {"content": content_from_bytes(b"later")}, run_at=run_at)
    info = admin.get(task.uuid)
    assert info.status == "created" and info.scheduled_for == run_at
    assert task.wait(timeout=30).done
    with pytest.raises(ValueError):
        admin.submit("calc_hash", {"content": content_from_bytes(b"naive")}, run_at=datetime.now())


def test_submit_repeated_with_the_same_idempotency_key_returns_the_same_task(admin):
    key = f"lib-{uuid.uuid4()}"
    upload = {"content": content_from_bytes(b"once")}
    first = admin.submit("calc_hash", upload, idempotency_key=key)
    again = admin.submit("calc_hash", upload, idempotency_key=key)
    assert (first.new, again.new) == (True, False)
    assert again.uuid == first.uuid and again.idempotency_key == key


def test_submit_with_an_external_id_keeps_it_as_the_key_and_listing_finds_it(admin):
    """No generated header when an ExternalId is given: the gateway keys on the ExternalId, so a later
    submit with it finds the task, and so does GET /tasks?ExternalId= (a header would prevent both)."""
    external_id = f"order-{uuid.uuid4().hex[:8]}"
    upload = {"content": content_from_bytes(b"external")}
    first = admin.submit("calc_hash", upload, external_id=external_id)
    again = admin.submit("calc_hash", upload, external_id=external_id)
    assert first.idempotency_key is None and first.submitted.external_id == external_id
    assert (again.uuid, again.new) == (first.uuid, False)
    assert [row.uuid for row in admin.tasks(external_id=external_id)] == [first.uuid]


def test_wait_reports_the_progress_a_running_job_reports(admin, redis_client):
    """The hold job reports 50 % `holding` and then blocks until released: released from on_update
    as soon as the progress is seen, so the wait must have seen it to finish."""
    task = admin.submit("hold", {"tag": "progress"})
    updates: list[TaskInfo] = []

    def on_update(info: TaskInfo) -> None:
        updates.append(info)
        if info.progress is not None:
            redis_client.rpush(f"release:{task.uuid}", "go")
    info = task.wait(timeout=60, on_update=on_update)
    assert info.done and info.result == {"released": True, "tag": "progress"}
    running = [u for u in updates if u.progress is not None]
    assert running and running[0].status == "pending"
    assert (running[0].progress.percent, running[0].progress.stage) == (50, "holding")
    assert updates[-1] == info


def test_wait_on_a_job_that_fails_raises_job_failed_with_its_code(admin):
    task = admin.submit("resize_image", {"content": content_from_bytes(b"not an image"), "width": 10})
    with pytest.raises(JobFailed) as failed:
        task.wait(timeout=30)
    assert failed.value.code == ErrorCode.BAD_CONTENT and failed.value.task.failed
    assert "not a decodable image" in failed.value.message
    assert admin.wait(task.uuid, 5, raise_on_error=False).code == ErrorCode.BAD_CONTENT


def test_wait_on_a_task_no_worker_takes_times_out_with_its_last_state(admin):
    task = admin.submit("calc_hash_parked", {"content": content_from_bytes(b"parked")})
    with pytest.raises(WaitTimeout) as timed_out:
        task.wait(timeout=0.6)
    assert timed_out.value.uuid == task.uuid and timed_out.value.last.status == "created"


def test_result_of_an_image_job_is_saved_to_a_file(admin, tmp_path):
    photo = tmp_path / "in.png"
    photo.write_bytes(images.png(400, 300))
    task = admin.submit("resize_image", upload_from_path(photo, width=100, format="webp"))
    info = task.wait(timeout=30)
    out = tmp_path / "small.webp"
    saved = task.result(out)
    assert (saved.media_type, saved.path, saved.content) == ("image/webp", out, None)
    assert saved.size == out.stat().st_size > 0
    assert images.decode(out.read_bytes()).size == (100, 75) == (info.result["width"], info.result["height"])
    assert not list(tmp_path.glob("*.part"))
    in_memory = admin.result(task.uuid)
    assert in_memory.content == out.read_bytes() and in_memory.is_image


def test_result_of_a_json_job_is_its_result(admin):
    task = admin.submit("calc_hash", {"content": content_from_bytes(b"json result")})
    info = task.wait(timeout=30)
    result = task.result()
    assert result.media_type == "application/json" and result.json() == info.result


def test_result_of_a_task_not_done_is_a_conflict_naming_it(admin):
    task = admin.submit("calc_hash_parked", {"content": content_from_bytes(b"not yet")})
    with pytest.raises(Conflict) as conflict:
        task.result()
    assert conflict.value.uuid == task.uuid and conflict.value.code == 409


def test_tasks_iterates_every_page_through_the_cursor(gateway_url, worker, fresh_identity):
    """Seven tasks read three a page: only following next_cursor twice yields them all, newest first."""
    _, token = fresh_identity("admin")
    with Client(gateway_url, token) as client:
        submitted = [client.submit("calc_hash_parked", {"content": content_from_bytes(b"page %d" % i)}).uuid
                     for i in range(7)]
        listed = list(client.tasks(page_size=3))
        assert [row.uuid for row in listed] == submitted[::-1]
        assert all(row.status == "created" and row.result is None for row in listed)
        assert [row.uuid for row in client.tasks(job_type="calc_hash_parked", status="created", page_size=2)] == submitted[::-1]
        assert list(client.tasks(status="done")) == []


def test_cancel_ends_a_queued_task_with_code_4_and_a_finished_one_is_a_conflict(admin):
    task = admin.submit("calc_hash_parked", {"content": content_from_bytes(b"cancel me")})
    cancelled = task.cancel()
    assert (cancelled.uuid, cancelled.status, cancelled.code) == (task.uuid, "error", ErrorCode.CANCELLED)
    assert admin.cancel(task.uuid).code == ErrorCode.CANCELLED  # repeating is harmless
    done = admin.submit("calc_hash", {"content": content_from_bytes(b"finished")})
    done.wait(timeout=30)
    with pytest.raises(Conflict) as conflict:
        done.cancel()
    assert conflict.value.uuid == done.uuid


def test_health_of_the_session_gateway_is_ok(admin):
    health = admin.health()
    assert (health.ok, health.status, health.code, health.message) == (True, 200, 1, "All right")


def test_bad_upload_is_a_bad_request_listing_every_field(admin):
    with pytest.raises(BadRequest) as bad:
        admin.submit("resize_image", {"content": "***not base64***", "width": 0})
    assert bad.value.status == bad.value.code == 400
    assert {"upload.content", "upload.width"} <= set(bad.value.errors)


def test_unknown_task_is_not_found_with_the_gateways_message(admin):
    with pytest.raises(NotFound) as missing:
        admin.get(str(uuid.uuid4()))
    assert (missing.value.code, missing.value.message) == (404, "Task not found")
    with pytest.raises(NotFound):
        admin.cancel("../../ops/deadletters")  # an id is one quoted path segment, never a path to follow


def test_role_without_the_job_type_is_permission_denied(client_as):
    with pytest.raises(PermissionDenied) as denied:
        client_as("service").submit("resize_image", {"content": content_from_bytes(images.png(8, 8)), "width": 4})
    assert denied.value.code == 403 and "resize_image" in denied.value.message


def test_same_key_with_another_body_is_a_conflict_naming_the_first_task(admin):
    key = f"lib-{uuid.uuid4()}"
    first = admin.submit("calc_hash", {"content": content_from_bytes(b"one")}, idempotency_key=key)
    with pytest.raises(Conflict) as conflict:
        admin.submit("calc_hash", {"content": content_from_bytes(b"two")}, idempotency_key=key)
    assert conflict.value.uuid == first.uuid


def test_wrong_password_is_an_authentication_error_at_once(gateway_url, worker, retries):
    with Client(gateway_url, BasicAuth("service", "not-the-password"), on_retry=retries) as client, \
            pytest.raises(AuthenticationError) as refused:
        client.get(str(uuid.uuid4()))
    assert refused.value.status == 401 and retries == []
    assert "not-the-password" not in repr(client._credentials.auth)


def test_credentials_in_the_url_are_refused():
    with pytest.raises(ValueError, match="credentials"):
        Client("http://user:secret@127.0.0.1:1")
