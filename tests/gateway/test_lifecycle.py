"""Status transitions, observed through /taskinfo: created -> pending -> done, and expiry."""
from __future__ import annotations

import base64
import json
from datetime import datetime

from devsupport.processes import start_worker, wait_until
from tests.support.api import b64


def test_submit_answers_202_with_location_and_contract_fields(api):
    response = api.submit("calc_hash", {"content": b64(b"x")}, ExternalId="abc-1")
    body = response.json()
    assert response.status_code == 202
    assert set(body) == {"ExternalId", "type", "uuid", "created"}
    assert body["ExternalId"] == "abc-1" and body["type"] == "calc_hash"
    assert response.headers["Location"] == f"/taskinfo?taskid={body['uuid']}"
    assert datetime.fromisoformat(body["created"]).utcoffset() is not None


def test_status_goes_created_then_pending_then_done(api, redis_client, hold_queue_paused):
    task_id = api.submitted("hold", {"tag": "t1"})
    created = api.taskinfo(task_id).json()
    assert created["status"] == "created" and created["code"] == 0 and created["processed"] is None

    hold_queue_paused()
    pending = api.wait_status(task_id, "pending", "done", "error")
    assert pending["status"] == "pending" and pending["result"] is None

    redis_client.rpush(f"release:{task_id}", "go")
    done = api.wait_status(task_id, "done", "error")
    assert done["status"] == "done" and done["result"] == {"released": True, "tag": "t1"}
    assert datetime.fromisoformat(done["processed"]) >= datetime.fromisoformat(done["created"])


def test_taskinfo_has_exactly_the_contract_fields(api):
    info = api.taskinfo(api.submitted("calc_hash_parked", {"content": b64(b"x")})).json()
    assert set(info) == {"uuid", "type", "status", "created", "processed", "message", "code", "result"}
    assert info["status"] == "created" and info["type"] == "calc_hash_parked"


def test_unstarted_job_past_its_ttl_is_an_expired_error(api):
    task_id = api.submitted("calc_hash_expiring", {"content": b64(b"late")})
    info = api.wait_status(task_id, "error", timeout=15)
    assert info["code"] == 3
    assert "expired" in info["message"]


def test_late_worker_never_runs_an_expired_job(api, service_env, run_dir, redis_client):
    task_id = api.submitted("calc_hash_expiring", {"content": b64(b"too late")})
    api.wait_status(task_id, "error", timeout=15)
    late = start_worker("late", "parked", service_env, run_dir)
    try:
        meta = wait_until(lambda: redis_client.get(f"celery-task-meta-{task_id}"), 60, "late worker handled the job")
        assert json.loads(meta)["status"] == "REVOKED"
        info = api.taskinfo(task_id).json()
        assert (info["status"], info["code"]) == ("error", 3)
    finally:
        late.stop()


def test_a_running_job_shows_its_progress(api, redis_client):
    task_id = api.submitted("hold", {"tag": "progress"})
    info = api.wait_status(task_id, "pending")
    from devsupport.processes import wait_until
    info = wait_until(lambda: (body := api.taskinfo(task_id).json()).get("progress") and body, 30, "progress shown")
    assert info["status"] == "pending" and info["progress"] == {"percent": 50, "stage": "holding"}
    redis_client.rpush(f"release:{task_id}", "go")
    done = api.wait_status(task_id, "done")
    assert "progress" not in done


def test_submit_publishes_a_task_sent_event(api, redis_client):
    """Flower and other event consumers see the task as soon as it is queued (task_send_sent_event)."""
    from devsupport.processes import wait_until

    subscriber = redis_client.pubsub()
    subscriber.psubscribe("*celeryev/task.sent")
    wait_until(lambda: subscriber.get_message(timeout=0.1), 5, "subscribed")
    task_id = api.submitted("calc_hash_parked", {"content": b64(b"event")})

    def sent_event():
        message = subscriber.get_message(timeout=0.2)
        if not message or message["type"] != "pmessage":
            return False
        envelope = json.loads(message["data"])  # kombu's Redis envelope; the event body is base64 JSON
        event = json.loads(base64.b64decode(envelope["body"]))
        return event.get("type") == "task-sent" and event.get("uuid") == task_id
    wait_until(sent_event, 10, "task-sent event for the task")
    subscriber.close()
