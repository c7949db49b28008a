"""GET /tasks: own tasks, newest first, filters, cursor pages; admin may list any client's."""
from __future__ import annotations

import uuid
from datetime import datetime

from tests.support.api import b64


def test_pages_walk_every_task_newest_first_without_repeats(api_as):
    client = api_as("copytrust")
    mine = [client.submitted("calc_hash", {"content": b64(f"list-{i}".encode())}) for i in range(7)]
    seen, cursor = [], None
    for _ in range(20):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.request("GET", "/tasks", params=params).json()
        assert len(body["tasks"]) <= 3
        seen += [t["uuid"] for t in body["tasks"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    positions = [seen.index(task_id) for task_id in mine]
    assert positions == sorted(positions, reverse=True)  # newest first
    created = [datetime.fromisoformat(t) for t in
               (client.taskinfo(task_id).json()["created"] for task_id in seen[:5])]
    assert created == sorted(created, reverse=True)


def test_listing_shows_only_the_callers_tasks(api_as):
    theirs = api_as("service").submitted("calc_hash", {"content": b64(b"not yours")})
    mine = api_as("service2").submitted("calc_hash", {"content": b64(b"yours")})
    listed = {t["uuid"] for t in api_as("service2").request("GET", "/tasks", params={"limit": 200}).json()["tasks"]}
    assert mine in listed and theirs not in listed


def test_filters_by_status_type_and_external_id(api):
    external_id = f"find-me-{uuid.uuid4()}"
    done = api.submitted("calc_hash", {"content": b64(b"filter")}, ExternalId=external_id)
    waiting = api.submitted("calc_hash_parked", {"content": b64(b"filter")})
    api.wait_status(done, "done")
    by_ext = api.request("GET", "/tasks", params={"ExternalId": external_id}).json()["tasks"]
    assert [t["uuid"] for t in by_ext] == [done]
    created = api.request("GET", "/tasks", params={"status": "created", "type": "calc_hash_parked"}).json()["tasks"]
    assert waiting in {t["uuid"] for t in created} and all(t["status"] == "created" for t in created)
    finished = api.request("GET", "/tasks", params={"status": "done", "limit": 200}).json()["tasks"]
    assert done in {t["uuid"] for t in finished} and waiting not in {t["uuid"] for t in finished}


def test_created_after_bounds_the_listing(api_as):
    client = api_as("copytrust")
    first = client.submit("calc_hash", {"content": b64(b"before")}).json()
    later = client.submitted("calc_hash", {"content": b64(b"after")})
    listed = client.request("GET", "/tasks", params={"created_after": first["created"]}).json()["tasks"]
    assert [t["uuid"] for t in listed] == [later]


def test_admin_lists_another_clients_tasks_clients_may_not(api, api_as):
    task_id = api_as("service2").submitted("calc_hash", {"content": b64(b"admin sees")})
    listed = api.request("GET", "/tasks", params={"client_id": "client-service-2", "limit": 200}).json()["tasks"]
    assert task_id in {t["uuid"] for t in listed}
    refused = api_as("service").request("GET", "/tasks", params={"client_id": "client-service-2"})
    assert refused.status_code == 403


def test_bad_parameters_are_400_listing_every_field(api):
    response = api.request("GET", "/tasks", params={"limit": 0, "status": "weird", "cursor": "!!"})
    assert response.status_code == 400
    assert {"limit", "status"} <= set(response.json()["errors"])
    bad_cursor = api.request("GET", "/tasks", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["errors"]
