"""The ops API: operators only, live queues and workers within a deadline, counts, revoke."""
from __future__ import annotations

import socket
import time
import uuid

import pytest

from gateway import create_app
from jobs.keys import RECORD_PREFIX
from settings import load_settings
from tests.support.api import b64, basic_header


@pytest.mark.parametrize("path", ["/ops/queues", "/ops/workers", "/ops/tasks/counts"])
@pytest.mark.parametrize("user", ["service", "copytrust"])
def test_clients_may_not_use_the_ops_api(api_as, path, user):
    response = api_as(user).request("GET", path)
    assert response.status_code == 403 and response.json() == {"code": 403, "message": "Forbidden"}


def test_ops_api_requires_credentials(api_as):
    assert api_as(None).request("GET", "/ops/queues").status_code == 401


def test_queues_show_depth_and_age(api):
    api.submitted("calc_hash_parked", {"content": b64(b"waiting")})
    queues = {q["name"]: q for q in api.request("GET", "/ops/queues").json()["queues"]}
    assert set(queues) >= {"hash", "images", "hold", "parked"}
    assert queues["parked"]["depth"] >= 1 and queues["parked"]["oldest_age_seconds"] > 0


def test_workers_lists_the_running_worker_its_queues_and_running_jobs(api, redis_client):
    task_id = api.submitted("hold", {"tag": "ops-active"})
    api.wait_status(task_id, "pending")  # the worker is running it now, blocked until released
    try:
        body = api.request("GET", "/ops/workers").json()
    finally:
        redis_client.rpush(f"release:{task_id}", "go")
    node = f"main@{socket.gethostname()}"
    workers = {w["name"]: w for w in body["workers"]}
    assert workers[node]["queues"] == ["hash", "hold", "images"]
    assert workers[node]["active"] >= 1
    api.wait_status(task_id, "done")


def test_workers_answers_within_its_timeout_with_no_worker(config_files, redis_port, redis_password, vault):
    # Same Redis, another database: a broker no worker listens on.
    settings = load_settings(*config_files, environ={
        "GATEWAY__QUEUE__URL": f"redis://:{redis_password}@127.0.0.1:{redis_port}/9"})
    client = create_app(settings).test_client()
    started = time.monotonic()
    response = client.get("/ops/workers", headers=basic_header(*vault.basic("admin")))
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.get_json()["workers"] == []
    assert elapsed < settings.config["ops"]["inspect_timeout"] + 1.0


def test_task_counts_follow_submissions_and_outcomes(api):
    def counts():
        return api.request("GET", "/ops/tasks/counts", params={"hours": 1}).json()["by_type"].get(
            "calc_hash", {"submitted": 0, "done": 0, "error": {}})
    before = counts()
    task_id = api.submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)})
    api.wait_status(task_id, "done")
    from devsupport.processes import wait_until
    after = wait_until(lambda: (c := counts())["done"] > before["done"] and c, 10, "done counted")
    assert after["submitted"] >= before["submitted"] + 1


def test_task_counts_reject_a_bad_window(api):
    response = api.request("GET", "/ops/tasks/counts", params={"hours": 0})
    assert response.status_code == 400 and "hours" in response.json()["errors"]


def test_revoke_of_a_queued_task_ends_it_cancelled(api, hold_queue_paused):
    task_id = api.submitted("hold", {"tag": "to-revoke"})
    response = api.request("POST", f"/ops/tasks/{task_id}/revoke", json={})
    assert response.status_code == 202 and response.json()["uuid"] == task_id
    hold_queue_paused()  # the worker now takes the message, knows it was revoked, and never runs it
    info = api.wait_status(task_id, "error")
    assert info["code"] == 4 and info["message"] == "The job was cancelled"
    assert api.request("POST", f"/ops/tasks/{task_id}/revoke").status_code == 202  # again: harmless, as a cancel


def test_revoke_and_cancel_of_a_finished_task_are_one_409(api, redis_client):
    """One rule for finished tasks: a done task, and one that ended in error, are refused alike by the
    operator's revoke and the client's cancel, and neither marks the record (revoke once answered 202)."""
    done = api.submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)})
    failed = api.submitted("resize_image", {"content": b64(b"not an image"), "width": 5})
    api.wait_status(done, "done")
    api.wait_status(failed, "error")
    for task_id in (done, failed):
        revoke = api.request("POST", f"/ops/tasks/{task_id}/revoke", json={"terminate": True})
        cancel = api.request("DELETE", f"/tasks/{task_id}")
        assert (revoke.status_code, cancel.status_code) == (409, 409)
        assert revoke.json() == cancel.json() == {"code": 409, "message": "Task already finished", "uuid": task_id}
        assert redis_client.hget(RECORD_PREFIX + task_id, "cancelled") is None
    assert api.taskinfo(done).json()["status"] == "done"
    assert api.taskinfo(failed).json()["code"] == 2


def test_revoke_of_an_unknown_task_is_404(api):
    assert api.request("POST", f"/ops/tasks/{uuid.uuid4()}/revoke").status_code == 404
    assert api.request("POST", "/ops/tasks/not-a-uuid/revoke").status_code == 404
