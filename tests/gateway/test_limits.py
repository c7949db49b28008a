"""Rate limits and the unfinished-task cap, per client, shared across both gunicorn workers via Redis."""
from __future__ import annotations

import uuid

import requests

from tests.support.api import b64


def submit(gateway_url: str, token: str, job_type: str = "calc_hash") -> requests.Response:
    # A new connection per request: the kernel spreads them over both gunicorn worker processes.
    return requests.post(gateway_url + "/submit", json={"type": job_type, "upload": {"content": b64(b"rl")}},
                         headers={"Authorization": "Bearer " + token, "Connection": "close"}, timeout=10)


def test_rate_limit_is_shared_by_both_workers_and_per_client(gateway_url, worker, vault):
    limited = vault.jwt(client_id="rl-client", client_role="service")
    responses = [submit(gateway_url, limited) for _ in range(12)]
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 5 and statuses.count(429) == 7  # 5/minute across the two processes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json() == {"code": 429, "message": "Rate limit exceeded: 5/minute"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    other = vault.jwt(client_id=f"neighbour-{uuid.uuid4().hex[:6]}", client_role="service")
    assert all(submit(gateway_url, other).status_code == 202 for _ in range(8))


def test_unfinished_cap_refuses_with_a_clear_message_and_frees_up_on_cancel(gateway_url, worker, vault, redis_client):
    token = vault.jwt(client_id="capped-client", client_role="admin")
    accepted = [submit(gateway_url, token, "calc_hash_parked") for _ in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    queued = redis_client.llen("parked")
    refused = submit(gateway_url, token, "calc_hash_parked")
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Too many unfinished tasks: at most 3")
    assert redis_client.llen("parked") == queued
    first = accepted[0].json()["uuid"]
    cancel = requests.delete(f"{gateway_url}/tasks/{first}", headers={"Authorization": "Bearer " + token}, timeout=10)
    assert cancel.status_code == 202
    assert submit(gateway_url, token, "calc_hash_parked").status_code == 202


def test_finished_tasks_leave_the_cap(gateway_url, worker, vault, redis_client):
    client_id = f"cap-done-{uuid.uuid4().hex[:6]}"
    token = vault.jwt(client_id=client_id, client_role="admin")
    response = requests.post(gateway_url + "/submit", json={"type": "hold", "upload": {"tag": "cap"}},
                             headers={"Authorization": "Bearer " + token}, timeout=10)
    task_id = response.json()["uuid"]
    assert redis_client.zscore(f"gw:open:{client_id}", task_id) is not None  # held: still unfinished
    redis_client.rpush(f"release:{task_id}", "go")
    from devsupport.processes import wait_until
    wait_until(lambda: redis_client.zscore(f"gw:open:{client_id}", task_id) is None, 30, "finished task left the set")
