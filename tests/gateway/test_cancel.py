"""DELETE /tasks/<uuid>: a queued task never runs, a running one is terminated where allowed."""
from __future__ import annotations

import json
import uuid

from tests.support.api import b64


def _hold_revoked(api) -> int:
    counts = api.request("GET", "/ops/tasks/counts", params={"hours": 1}).json()["by_type"]
    return counts.get("hold", {}).get("error", {}).get("4", 0)


def test_cancel_of_a_queued_task_means_it_never_runs(api, redis_client, hold_queue_paused):
    revoked_before = _hold_revoked(api)
    task_id = api.submitted("hold", {"tag": "never"})
    response = api.request("DELETE", f"/tasks/{task_id}")
    assert response.status_code == 202
    assert response.json()["status"] == "error" and response.json()["code"] == 4
    redis_client.rpush(f"release:{task_id}", "go")  # if it ever ran, it would finish at once
    hold_queue_paused()
    # The worker takes the message and drops it: Celery's meta becomes REVOKED, never SUCCESS.
    from devsupport.processes import wait_until
    meta = wait_until(lambda: (raw := redis_client.get(f"celery-task-meta-{task_id}")) and json.loads(raw),
                      30, "worker recorded the revoke")
    assert meta["status"] == "REVOKED"
    info = api.taskinfo(task_id).json()
    assert info["status"] == "error" and info["code"] == 4 and info["message"] == "The job was cancelled"
    # Counted under its job type (it was counted under the Celery task name, tests.hold, and the
    # type's unfinished count never came down).
    wait_until(lambda: _hold_revoked(api) == revoked_before + 1, 10, "the revoke counted under hold")


def test_cancel_of_a_running_task_terminates_it(api, redis_client):
    task_id = api.submitted("hold", {"tag": "running"})
    api.wait_status(task_id, "pending")
    assert api.request("DELETE", f"/tasks/{task_id}").status_code == 202
    from devsupport.processes import wait_until
    meta = wait_until(lambda: (raw := redis_client.get(f"celery-task-meta-{task_id}")) and
                      json.loads(raw)["status"] == "REVOKED" and json.loads(raw), 30, "terminated")
    redis_client.rpush(f"release:{task_id}", "late")
    assert meta["status"] == "REVOKED"
    assert api.taskinfo(task_id).json()["code"] == 4


def test_cancel_is_idempotent_and_refuses_finished_tasks(api):
    queued = api.submitted("calc_hash_parked", {"content": b64(b"cancel twice")})
    assert api.request("DELETE", f"/tasks/{queued}").status_code == 202
    assert api.request("DELETE", f"/tasks/{queued}").status_code == 202
    done = api.submitted("calc_hash", {"content": b64(b"finished")})
    api.wait_status(done, "done")
    finished = api.request("DELETE", f"/tasks/{done}")
    assert finished.status_code == 409 and finished.json()["uuid"] == done


def test_cancel_of_foreign_unknown_or_malformed_ids_is_one_404(api_as):
    task_id = api_as("service").submitted("calc_hash", {"content": b64(b"mine")})
    stranger = api_as("service2")
    bodies = [stranger.request("DELETE", f"/tasks/{t}") for t in (task_id, uuid.uuid4(), "nope")]
    assert {r.status_code for r in bodies} == {404} and len({r.content for r in bodies}) == 1
    assert api_as("service").taskinfo(task_id).status_code == 200
