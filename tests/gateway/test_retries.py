"""Retries for transient failures, dead letters after the last attempt, requeue from the ops API."""
from __future__ import annotations

from devsupport.processes import wait_until


def test_a_transient_failure_is_retried_and_then_succeeds(api, redis_client):
    task_id = api.submitted("flaky", {"tag": "retry-me"})
    info = api.wait_status(task_id, "done", "error")
    assert info["status"] == "done" and info["result"] == {"attempt": 2, "tag": "retry-me"}
    assert redis_client.get(f"runs:{task_id}") == "2"


def test_bad_content_is_never_retried(api, redis_client):
    task_id = api.submitted("resize_image", {"content": "bm90IGFuIGltYWdl", "width": 3})
    info = api.wait_status(task_id, "error")
    assert info["code"] == 2
    assert task_id not in {d["uuid"] for d in api.request("GET", "/ops/deadletters").json()["deadletters"]}


def test_exhausted_retries_end_in_error_7_and_the_dead_letter_list(api, api_as, redis_client):
    task_id = api.submitted("doomed", {"tag": "doomed"})
    info = api.wait_status(task_id, "error")
    assert info["code"] == 7 and info["message"] == "The job kept failing and was set aside after its retries"
    assert redis_client.get(f"runs:{task_id}") == "2"  # max_attempts
    letters = {d["uuid"]: d for d in api.request("GET", "/ops/deadletters").json()["deadletters"]}
    assert letters[task_id]["attempts"] == 2 and letters[task_id]["type"] == "doomed"
    assert letters[task_id]["error"] == "TransientError" and "kwargs" not in letters[task_id]
    assert api_as("service").request("GET", "/ops/deadletters").status_code == 403

    requeued = api.request("POST", f"/ops/deadletters/{task_id}/requeue")
    assert requeued.status_code == 202
    assert task_id not in {d["uuid"] for d in api.request("GET", "/ops/deadletters").json()["deadletters"]}
    # It ran again (two more attempts) and, still failing, is back in the list.
    wait_until(lambda: redis_client.get(f"runs:{task_id}") == "4", 30, "requeued job ran its attempts")
    wait_until(lambda: task_id in {d["uuid"] for d in api.request("GET", "/ops/deadletters").json()["deadletters"]},
               30, "dead-lettered again")
    assert api.wait_status(task_id, "error")["code"] == 7


def test_requeue_of_an_unknown_dead_letter_is_404(api):
    assert api.request("POST", "/ops/deadletters/00000000-0000-0000-0000-000000000000/requeue").status_code == 404
