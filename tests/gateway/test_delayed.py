"""Delayed jobs (`delay_seconds`, `run_at`): `created` with `scheduled_for` until due, then run once, not
before; cancelled before due, never run; moved once however many processes move; kept across a Redis
restart from its AOF; bad inputs are 400s (jobs/delayed.py, gateway/submission/scheduling.py)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from redis import Redis

from devsupport.processes import ROOT, start_redis, start_worker, wait_until
from gateway import create_app
from jobs import delayed
from jobs.keys import DELAYED, DELAYED_MESSAGES, RECORD_PREFIX
from jobs.status import SCHEDULED
from settings import load_settings
from tests.gateway.test_http_workers import TYPE, Worker, digests, drain_queue
from tests.support.api import b64, basic_header


def _started_at(redis_client: Redis, task_id: str) -> float:
    return float(redis_client.hget(RECORD_PREFIX + task_id, "started"))


def test_delayed_job_is_created_until_due_then_runs_once_not_before(api, redis_client, settings):
    task_id = api.submitted("hold", {"tag": "later"}, delay_seconds=2)
    redis_client.rpush(f"release:{task_id}", "go")  # it finishes at once when it runs
    rows = api.request("GET", "/tasks", params={"limit": 20}).json()["tasks"]
    assert [row["status"] for row in rows if row["uuid"] == task_id] == ["created"]
    info = api.taskinfo(task_id).json()
    assert info["status"] == "created" and info["message"] == SCHEDULED
    due = datetime.fromisoformat(info["scheduled_for"])
    assert timedelta(seconds=1.5) < due - datetime.fromisoformat(info["created"]) <= timedelta(seconds=2.01)
    assert redis_client.zscore(DELAYED, task_id) == pytest.approx(due.timestamp())
    assert task_id not in "".join(redis_client.lrange("hold", 0, -1))  # off its queue until due
    # Its record outlives the results' retention from when it is due, not from its submit.
    assert redis_client.ttl(RECORD_PREFIX + task_id) > settings.config["results"]["expires"]
    done = api.wait_status(task_id, "done", "error", timeout=20)
    assert done["status"] == "done" and done["scheduled_for"] == info["scheduled_for"]
    assert _started_at(redis_client, task_id) >= due.timestamp()
    assert _started_at(redis_client, task_id) - due.timestamp() < delayed.MOVE_EVERY + delayed.CLOCK_MARGIN + 1
    assert redis_client.get(f"starts:{task_id}") == "1"
    assert redis_client.zscore(DELAYED, task_id) is None and not redis_client.hexists(DELAYED_MESSAGES, task_id)


def test_a_delayed_job_dead_lettered_and_requeued_runs_again_at_once(api, redis_client):
    task_id = api.submitted("doomed", {"tag": "doomed later"}, delay_seconds=0.5)
    assert api.wait_status(task_id, "error")["code"] == 7
    assert api.request("POST", f"/ops/deadletters/{task_id}/requeue").status_code == 202
    assert "scheduled_for" not in api.taskinfo(task_id).json()
    wait_until(lambda: redis_client.get(f"runs:{task_id}") == "4", 30, "the requeued job ran its attempts")


def test_an_http_worker_leases_a_delayed_job_once_it_is_due(api, api_as):
    worker = Worker(api_as("system"))
    drain_queue(worker)
    content = b"leased later"
    task_id = api.submitted(TYPE, {"content": b64(content)}, delay_seconds=1)
    due = datetime.fromisoformat(api.taskinfo(task_id).json()["scheduled_for"])
    job = worker.leased(wait=10)
    assert job["uuid"] == task_id and job["attempt"] == 1 and datetime.now(UTC) >= due
    assert worker.finish(task_id, job["lease"]["token"], result=digests(content)).status_code == 200
    assert api.wait_status(task_id, "done")["scheduled_for"] == due.isoformat()


def test_a_delayed_job_counts_as_unfinished_until_its_ttl_from_its_time(gateway_url, worker, vault, redis_client,
                                                                         settings):
    client_id = f"delayed-cap-{uuid.uuid4().hex[:6]}"
    auth = {"Authorization": "Bearer " + vault.jwt(client_id=client_id, client_role="admin")}
    response = requests.post(gateway_url + "/submit", headers=auth, timeout=10,
                             json={"type": "calc_hash_parked", "upload": {"content": "eA=="}, "delay_seconds": 3600})
    task_id = response.json()["uuid"]
    due = datetime.fromisoformat(requests.get(gateway_url + "/taskinfo", params={"taskid": task_id}, headers=auth,
                                              timeout=10).json()["scheduled_for"])
    ttl = settings.config["jobs"]["calc_hash_parked"]["ttl"]
    # The cap counts open entries not yet expired (ZCOUNT above now): this one for its delay and its TTL.
    assert redis_client.zscore(f"gw:open:{client_id}", task_id) == pytest.approx(due.timestamp() + ttl)
    assert requests.delete(f"{gateway_url}/tasks/{task_id}", headers=auth, timeout=10).status_code == 202
    assert redis_client.zscore(f"gw:open:{client_id}", task_id) is None


def test_run_at_in_the_past_runs_at_once(api):
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    task_id = api.submitted("calc_hash", {"content": "eA=="}, run_at=past)
    info = api.wait_status(task_id, "done", timeout=20)
    assert "scheduled_for" not in info


def test_cancel_before_due_means_it_never_runs(api, redis_client):
    task_id = api.submitted("hold", {"tag": "never"}, run_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    redis_client.rpush(f"release:{task_id}", "go")
    response = api.request("DELETE", f"/tasks/{task_id}")
    assert response.status_code == 202 and response.json()["code"] == 4
    assert redis_client.zscore(DELAYED, task_id) is None  # moved out with the cancel, to be ended by a worker
    meta = wait_until(lambda: (raw := redis_client.get(f"celery-task-meta-{task_id}")) and json.loads(raw),
                      20, "a worker ended the cancelled job")
    assert meta["status"] == "REVOKED"
    assert redis_client.get(f"starts:{task_id}") is None
    assert api.taskinfo(task_id).json()["status"] == "error"


MOVER = """
import sys, time
from redis import Redis
from jobs.delayed import Mover
mover, stop = Mover(Redis.from_url(sys.argv[1])), time.monotonic() + 1.5
while time.monotonic() < stop:
    mover.tick()
"""


def test_movers_in_several_processes_move_each_message_once(redis_client, settings):
    """Six processes (and the session's workers) move 300 due messages: each lands on its list once."""
    run = uuid.uuid4().hex[:8]
    ids = [f"{run}-{i}" for i in range(300)]
    with redis_client.pipeline() as pipe:
        for i in ids:
            for name, args in delayed.hold([("lpush", (f"moved:{i}", "m")), ("incr", (f"moved-count:{run}",))],
                                           i, time.time() - 1):
                pipe.execute_command(name.upper(), *args)
        pipe.execute()
    movers = [subprocess.Popen([sys.executable, "-c", MOVER, settings.broker_url], cwd=ROOT) for _ in range(6)]
    for proc in movers:
        assert proc.wait(30) == 0
    assert redis_client.get(f"moved-count:{run}") == "300"
    assert {redis_client.llen(f"moved:{i}") for i in ids} == {1}
    assert not any(redis_client.zscore(DELAYED, i) for i in ids)


@pytest.mark.parametrize("extra, field", [
    ({"delay_seconds": -1}, "delay_seconds"),
    ({"delay_seconds": "5"}, "delay_seconds"),
    ({"delay_seconds": True}, "delay_seconds"),
    ({"delay_seconds": 10**12}, "delay_seconds"),
    ({"run_at": "2030-01-01T10:00:00"}, "run_at"),
    ({"run_at": "tomorrow"}, "run_at"),
    ({"run_at": "2999-01-01T10:00:00Z"}, "run_at"),
    ({"delay_seconds": 5, "run_at": "2030-01-01T10:00:00Z"}, "run_at"),
])
def test_bad_delays_are_400_naming_the_field(api, extra, field):
    response = api.submit("calc_hash", {"content": "eA=="}, **extra)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 400 and list(body["errors"]) == [field]


def test_a_delayed_job_survives_a_redis_restart_from_its_aof_and_runs_once(run_dir, config_files, redis_port,
                                                                          redis_password, vault, service_env):
    """The broker is a Redis of its own with an AOF (the task store the session's, so the gateway saves in
    two steps, as with Sentinel or another broker): it is killed while a job waits, and started again."""
    broker, port = start_redis(run_dir, "delaypw", persistence="always")
    broker_url = f"redis://:delaypw@127.0.0.1:{port}/0"
    store_url = f"redis://:{redis_password}@127.0.0.1:{redis_port}/6"
    overrides = {"GATEWAY__QUEUE__URL": broker_url, "GATEWAY__QUEUE__RESULT_URL": store_url}
    store = Redis.from_url(store_url, decode_responses=True)
    worker = None
    try:
        wait_until(lambda: Redis.from_url(broker_url).ping(), 15, "the broker up")
        client = create_app(load_settings(*config_files, environ=overrides)).test_client()
        auth = basic_header(*vault.basic("admin"))

        def submit(**extra) -> str:
            response = client.post("/submit", json={"type": "hold", "upload": {"tag": "aof"}, **extra}, headers=auth)
            assert response.status_code == 202, response.get_json()
            return response.get_json()["uuid"]
        task_id, cancelled = submit(delay_seconds=4), submit(delay_seconds=3)
        assert client.delete(f"/tasks/{cancelled}", headers=auth).status_code == 202
        due = Redis.from_url(broker_url).zscore(DELAYED, task_id)
        worker = start_worker(f"delayed-{uuid.uuid4().hex[:6]}", "hold", dict(service_env, **overrides), run_dir,
                              extra=["-I", "tests.support.holdjob"])
        broker.stop(signal.SIGKILL)
        broker, _ = start_redis(run_dir, "delaypw", port=port, persistence="always")
        wait_until(lambda: Redis.from_url(broker_url).ping(), 15, "the broker back from its AOF")
        assert Redis.from_url(broker_url).zscore(DELAYED, task_id) == due
        store.rpush(f"release:{task_id}", "go")
        store.rpush(f"release:{cancelled}", "go")
        done = wait_until(lambda: [client.get(f"/taskinfo?taskid={task_id}", headers=auth).get_json()
                                   ].pop() if store.get(f"celery-task-meta-{task_id}") else None, 30, "the job done")
        assert done["status"] == "done"
        assert float(store.hget(RECORD_PREFIX + task_id, "started")) >= due
        assert store.get(f"starts:{task_id}") == "1"
        wait_until(lambda: store.get(f"celery-task-meta-{cancelled}"), 15, "the cancelled job ended")
        assert store.get(f"starts:{cancelled}") is None
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
