"""Idempotent submit: same ExternalId (or Idempotency-Key) and body -> the original task; different body -> 409."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from gateway.submission import idempotency
from jobs.keys import RECORD_PREFIX
from tests.support.api import b64


def parked(tag: str) -> dict:
    return {"content": b64(tag.encode())}


def test_repeat_with_same_body_returns_the_original_and_queues_nothing(api, redis_client):
    external_id = f"ext-{uuid.uuid4()}"
    first = api.submit("calc_hash_parked", parked("a"), ExternalId=external_id)
    queued = redis_client.llen("parked")
    again = api.submit("calc_hash_parked", parked("a"), ExternalId=external_id)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert redis_client.llen("parked") == queued


def test_repeat_with_a_different_body_is_409_naming_the_original(api, redis_client):
    external_id = f"ext-{uuid.uuid4()}"
    first = api.submit("calc_hash_parked", parked("a"), ExternalId=external_id).json()
    queued = redis_client.llen("parked")
    conflict = api.submit("calc_hash_parked", parked("b"), ExternalId=external_id)
    assert conflict.status_code == 409
    assert conflict.json() == {"code": 409, "message": "This idempotency key already names a task with a different body",
                               "uuid": first["uuid"]}
    assert redis_client.llen("parked") == queued


def test_idempotency_key_header_works_the_same_way(api):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.request("POST", "/submit", json={"type": "calc_hash_parked", "upload": parked("h")}, headers=key)
    again = api.request("POST", "/submit", json={"type": "calc_hash_parked", "upload": parked("h")}, headers=key)
    other = api.request("POST", "/submit", json={"type": "calc_hash_parked", "upload": parked("x")}, headers=key)
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert first.json()["uuid"] == again.json()["uuid"] == other.json()["uuid"]


def test_keys_are_per_client(api_as):
    external_id = f"shared-{uuid.uuid4()}"
    mine = api_as("service").submit("calc_hash", parked("s"), ExternalId=external_id)
    theirs = api_as("copytrust").submit("calc_hash", parked("s"), ExternalId=external_id)
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["uuid"] != theirs.json()["uuid"]


def test_without_external_id_every_submit_is_new(api):
    one, two = (api.submit("calc_hash_parked", parked("same")) for _ in range(2))
    assert one.status_code == two.status_code == 202 and one.json()["uuid"] != two.json()["uuid"]


def test_concurrent_duplicates_queue_exactly_one_task(gateway_url, worker, vault, redis_client):
    """32 identical submissions at once over both gunicorn workers: one 202, the rest 200, one message."""
    external_id = f"race-{uuid.uuid4()}"
    body = {"type": "calc_hash_parked", "upload": parked("race"), "ExternalId": external_id}
    queued = redis_client.llen("parked")
    records = len(redis_client.keys(RECORD_PREFIX + "*"))
    session_auth = vault.basic("admin")
    requests.post(gateway_url + "/submit", json={"type": "calc_hash_parked", "upload": parked("warm")},
                  auth=session_auth, timeout=10)  # log in once so the race is about the submit, not Vault

    def post(_: int) -> requests.Response:
        return requests.post(gateway_url + "/submit", json=body, auth=session_auth, timeout=10)

    with ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(post, range(32)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 31 + [202]
    assert len({r.json()["uuid"] for r in responses}) == 1
    assert redis_client.llen("parked") == queued + 2  # the warm-up and exactly one of the 32
    assert len(redis_client.keys(RECORD_PREFIX + "*")) == records + 2


def submit_with(api, body: dict, key: str | None = None):
    return api.request("POST", "/submit", json=body, headers={"Idempotency-Key": key} if key else None)


def test_external_id_sent_with_a_key_still_names_the_task(api, redis_client):
    """Header and ExternalId first, then the same ExternalId alone: both claims were recorded, the
    second submit is the original task (it once made a second one)."""
    external_id, key = f"both-{uuid.uuid4()}", f"key-{uuid.uuid4()}"
    body = {"type": "calc_hash_parked", "upload": parked("both"), "ExternalId": external_id}
    first = submit_with(api, body, key)
    queued = redis_client.llen("parked")
    again = submit_with(api, body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["uuid"] == first.json()["uuid"]
    assert redis_client.llen("parked") == queued
    listed = api.request("GET", "/tasks", params={"ExternalId": external_id}).json()["tasks"]
    assert [row["uuid"] for row in listed] == [first.json()["uuid"]]


def test_key_sent_after_its_external_id_names_the_same_task(api, redis_client):
    """ExternalId alone first, then with a new Idempotency-Key: the ExternalId names the original, and
    the key is bound to it, so the key alone names it too."""
    external_id, key = f"later-{uuid.uuid4()}", f"key-{uuid.uuid4()}"
    body = {"type": "calc_hash_parked", "upload": parked("later"), "ExternalId": external_id}
    first = submit_with(api, body)
    queued = redis_client.llen("parked")
    with_key = submit_with(api, body, key)
    key_alone = submit_with(api, {"type": "calc_hash_parked", "upload": parked("other"), "ExternalId": external_id}, key)
    assert (first.status_code, with_key.status_code, key_alone.status_code) == (202, 200, 409)
    assert first.json()["uuid"] == with_key.json()["uuid"] == key_alone.json()["uuid"]
    assert submit_with(api, body, key).status_code == 200
    assert redis_client.llen("parked") == queued
    # The bound key lives no longer than the claim it was bound to (read second, it has had longer to run down).
    external_id_left = redis_client.pttl(idempotency.external_id_key("client-admin", external_id))
    assert 0 < redis_client.pttl(idempotency.key("client-admin", "key:" + key)) <= external_id_left


def test_key_and_external_id_naming_two_tasks_is_a_409(api, redis_client):
    """The key names one task and the ExternalId another: no third task, a 409 naming the key's."""
    external_id, key = f"split-{uuid.uuid4()}", f"key-{uuid.uuid4()}"
    by_key = submit_with(api, {"type": "calc_hash_parked", "upload": parked("split")}, key)
    by_external_id = submit_with(api, {"type": "calc_hash_parked", "upload": parked("split"), "ExternalId": external_id})
    queued = redis_client.llen("parked")
    both = submit_with(api, {"type": "calc_hash_parked", "upload": parked("split"), "ExternalId": external_id}, key)
    assert (by_key.status_code, by_external_id.status_code) == (202, 202)
    assert both.status_code == 409
    assert both.json() == {"code": 409, "message": "The Idempotency-Key and the ExternalId name two different tasks",
                           "uuid": by_key.json()["uuid"]}
    assert redis_client.llen("parked") == queued
