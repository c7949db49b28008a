"""The HTTP worker API against the live stack (issue 22): a worker authenticated as the system identity
leases jobs over HTTP, heartbeats and finishes them, with the Celery workers' guarantees. Queue
`http_only` (job type calc_hash_http) is consumed by no Celery worker, so these tests decide who takes
what; the mixed test shares `hash` with the session's Celery worker."""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
import uuid as uuidlib
from typing import Any

import pytest
import requests

from devsupport.processes import wait_until
from gateway.extensions import LONG_POLLS
from jobs import timings
from jobs.webhooks import verify
from tests.support.api import Api, b64

QUEUE, TYPE = "http_only", "calc_hash_http"


def digests(content: bytes) -> dict[str, Any]:
    return {"size": len(content), "digests": {"sha256": hashlib.sha256(content).hexdigest()}}


class Worker:
    """An HTTP worker, as any language would write one: three POSTs."""

    def __init__(self, api: Api, name: str = "test-worker") -> None:
        self.api, self.name = api, name

    def lease(self, queue: str = QUEUE, wait: float = 0, **extra: Any) -> requests.Response:
        return self.api.request("POST", f"/internal/queues/{queue}/lease",
                                json={"worker": self.name, "wait": wait, **extra}, timeout=30)

    def leased(self, queue: str = QUEUE, wait: float = 5) -> dict[str, Any]:
        response = self.lease(queue, wait)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def heartbeat(self, task: str, token: str, **extra: Any) -> requests.Response:
        return self.api.request("POST", f"/internal/tasks/{task}/heartbeat", json={"token": token, **extra})

    def finish(self, task: str, token: str, **outcome: Any) -> requests.Response:
        return self.api.request("POST", f"/internal/tasks/{task}/finish", json={"token": token, **outcome})


@pytest.fixture
def http_worker(api_as) -> Worker:
    return Worker(api_as("system"))


def long_polls_blocked(redis_client) -> int:
    """Long polls of the gateways blocked in Redis now (their client's name; CLIENT LIST flag b)."""
    return sum(client.get("name") == LONG_POLLS and "b" in client.get("flags", "")
               for client in redis_client.client_list())


def drain_queue(worker: Worker, queue: str = QUEUE) -> None:
    """Finish whatever an earlier test left leasable, so each test leases its own job."""
    while (response := worker.lease(queue)).status_code == 200:
        job = response.json()
        worker.finish(job["uuid"], job["lease"]["token"], error={"code": 1, "message": "cleanup"})


def test_lease_heartbeat_finish_reads_like_a_celery_job(api: Api, http_worker: Worker) -> None:
    drain_queue(http_worker)
    content = b"leased over http"
    task = api.submitted(TYPE, {"content": b64(content)})
    job = http_worker.leased()
    assert job["uuid"] == task and job["type"] == TYPE and job["attempt"] == 1
    assert job["upload"] == {"content": b64(content)} and job["time_limit"] == 60
    token = job["lease"]["token"]
    assert api.taskinfo(task).json()["status"] == "pending"

    beat = http_worker.heartbeat(task, token, progress={"percent": 40, "stage": "hashing"})
    assert beat.status_code == 200, beat.text
    assert beat.json()["expires_at"] > job["lease"]["expires_at"] or beat.json()["expires_at"]
    info = api.taskinfo(task).json()
    assert info["status"] == "pending" and info["progress"] == {"percent": 40, "stage": "hashing"}

    finished = http_worker.finish(task, token, result=digests(content))
    assert finished.status_code == 200, finished.text
    assert finished.json() == {"uuid": task, "status": "done"}
    info = api.wait_status(task, "done")
    assert info["result"] == digests(content)
    # The same call again answers the same and changes nothing.
    again = http_worker.finish(task, token, result=digests(content))
    assert again.status_code == 200 and again.json() == {"uuid": task, "status": "done"}
    # Another token, or a heartbeat after the end, is a 409 that changes nothing.
    other = http_worker.finish(task, "not-the-token", error={"code": 1, "message": "x"})
    assert other.status_code == 409 and other.json()["reason"] == "expired"
    late = http_worker.heartbeat(task, token)
    assert late.status_code == 409 and late.json()["reason"] == "finished"
    assert api.taskinfo(task).json()["status"] == "done"


def test_an_empty_queue_answers_204_after_the_wait(http_worker: Worker) -> None:
    drain_queue(http_worker)
    assert http_worker.lease(wait=0).status_code == 204
    began = time.monotonic()
    waited = http_worker.lease(wait=2.5)  # longer than the gateway's Redis read timeout (1 s)
    assert waited.status_code == 204 and "Retry-After" not in waited.headers
    assert time.monotonic() - began >= 2.4  # it waited (a lower bound: never flaky)


def test_a_long_poll_returns_when_a_job_arrives(api: Api, http_worker: Worker) -> None:
    drain_queue(http_worker)
    got: dict[str, Any] = {}
    poll = threading.Thread(target=lambda: got.update(response=http_worker.lease(wait=15)))
    poll.start()
    wait_until(lambda: True, 1, "")  # the poll is sent; whether it blocks yet does not matter
    task = api.submitted(TYPE, {"content": b64(b"long poll")})
    poll.join(20)
    assert got["response"].status_code == 200 and got["response"].json()["uuid"] == task
    job = got["response"].json()
    assert http_worker.finish(task, job["lease"]["token"], result=digests(b"long poll")).status_code == 200


def test_error_reports_read_as_celery_failures(api: Api, http_worker: Worker) -> None:
    drain_queue(http_worker)
    bad = api.submitted(TYPE, {"content": b64(b"bad")})
    job = http_worker.leased()
    assert http_worker.finish(bad, job["lease"]["token"], error={"code": 2, "message": "not what I expected"}).json() == {
        "uuid": bad, "status": "error"}
    info = api.wait_status(bad, "error")
    assert (info["code"], info["message"]) == (2, "not what I expected")

    failed = api.submitted(TYPE, {"content": b64(b"failed")})
    job = http_worker.leased()
    assert http_worker.finish(failed, job["lease"]["token"], error={"code": 1, "message": "secret detail"}).status_code == 200
    info = api.wait_status(failed, "error")
    assert (info["code"], info["message"]) == (1, "The job failed")  # the worker's text is not the client's


def test_a_result_is_checked_against_the_schema_and_its_bound(api: Api, http_worker: Worker) -> None:
    drain_queue(http_worker)
    task = api.submitted(TYPE, {"content": b64(b"schema")})
    job = http_worker.leased()
    token = job["lease"]["token"]
    wrong = http_worker.finish(task, token, result={"size": "big", "digests": {"sha256": "nothex"}, "extra": 1})
    assert wrong.status_code == 400
    assert set(wrong.json()["errors"]) == {"result.size", "result.digests.sha256", "result.extra"}
    huge = http_worker.finish(task, token, result={"size": 1, "digests": {"sha256": "a" * 70_000}})
    assert huge.status_code == 413
    # The lease was kept: the worker fixes its result.
    assert http_worker.heartbeat(task, token).status_code == 200
    assert http_worker.finish(task, token, result=digests(b"schema")).status_code == 200
    assert api.wait_status(task, "done")["result"] == digests(b"schema")


def test_a_cancel_is_seen_at_the_next_heartbeat(api: Api, http_worker: Worker) -> None:
    drain_queue(http_worker)
    task = api.submitted(TYPE, {"content": b64(b"cancel me")})
    job = http_worker.leased()
    assert api.request("DELETE", f"/tasks/{task}").status_code == 202
    beat = http_worker.heartbeat(task, job["lease"]["token"])
    assert beat.status_code == 409 and beat.json()["reason"] == "cancelled"
    info = api.wait_status(task, "error")
    assert info["code"] == 4
    late = http_worker.finish(task, job["lease"]["token"], result=digests(b"cancel me"))
    assert late.status_code == 409
    assert api.taskinfo(task).json()["code"] == 4


def test_a_job_cancelled_while_queued_ends_cancelled_when_leased(api: Api, http_worker: Worker) -> None:
    drain_queue(http_worker)
    task = api.submitted(TYPE, {"content": b64(b"cancelled early")})
    assert api.request("DELETE", f"/tasks/{task}").status_code == 202
    assert http_worker.lease().status_code == 204  # it was taken, and ended, not handed out
    assert api.wait_status(task, "error")["code"] == 4


@pytest.mark.parametrize("who", ["admin", "service", "copytrust", None])
def test_client_roles_are_refused(api_as, who: str | None) -> None:
    client = Worker(api_as(who))
    task = str(uuidlib.uuid4())
    expected = 403 if who else 401
    assert client.lease().status_code == expected
    assert client.heartbeat(task, "t").status_code == expected
    assert client.finish(task, "t", result={}).status_code == expected


def test_the_system_identity_is_refused_on_client_routes(api_as) -> None:
    system = api_as("system")
    assert system.submit("calc_hash", {"content": b64(b"x")}).status_code == 403
    assert system.taskinfo(str(uuidlib.uuid4())).status_code == 403


@pytest.mark.parametrize("body", [
    {}, {"worker": ""}, {"worker": "a b"}, {"worker": "w" * 101}, {"worker": "w", "wait": 21},
    {"worker": "w", "wait": -1}, {"worker": "w", "wait": "soon"}, {"worker": "w", "extra": 1},
])
def test_malformed_lease_requests_are_400(http_worker: Worker, body: dict[str, Any]) -> None:
    response = http_worker.api.request("POST", f"/internal/queues/{QUEUE}/lease", json=body)
    assert response.status_code == 400, response.text


def test_unknown_queues_and_tasks(http_worker: Worker) -> None:
    assert http_worker.lease("no_such_queue").status_code == 404
    assert http_worker.lease("webhooks").status_code == 404  # the gateway's own queue is not for workers
    assert http_worker.heartbeat(str(uuidlib.uuid4()), "t").status_code == 404
    assert http_worker.finish("not-a-uuid", "t", result={}).status_code == 404


@pytest.mark.parametrize("body", [
    {"token": "t"}, {"token": "t", "result": {}, "error": {"code": 1}}, {"token": "t", "error": {"code": 3}},
    {"token": "t", "error": {"code": 4}}, {"token": "t", "result": []}, {"result": {}},
    {"token": "t", "error": {"code": 1, "message": "m" * 1001}},
])
def test_malformed_finishes_are_400(http_worker: Worker, body: dict[str, Any]) -> None:
    response = http_worker.api.request("POST", f"/internal/tasks/{uuidlib.uuid4()}/finish", json=body)
    assert response.status_code == 400, response.text


def test_a_job_finished_over_http_reads_the_same_everywhere(api: Api, http_worker: Worker, receiver,
                                                            redis_client, celery_client, webhook_secret) -> None:
    """/taskinfo, the listing, the result route, the completion webhook, the outcome count and the Celery
    task events (what Flower shows), as for a job a Celery worker ran."""
    drain_queue(http_worker)
    hook = receiver()
    counted = int(redis_client.hget("gw:stats:total", f"done|{TYPE}") or 0)
    timed = timings.read(redis_client.hgetall(timings.KEY))
    ran, waited = (timed[kind].get(TYPE, timings.Histogram()).count for kind in (timings.RUNTIME, timings.WAIT))
    with TaskEvents(celery_client, redis_client) as events:
        task = api.submitted(TYPE, {"content": b64(b"everywhere")}, callback_url=hook.url)
        job = http_worker.leased()
        assert http_worker.finish(task, job["lease"]["token"], result=digests(b"everywhere")).status_code == 200
        info = api.wait_status(task, "done")
        seen = wait_until(lambda: {"task-received", "task-started", "task-succeeded"} <= events.kinds(task)
                          and events.of(task), 15, "the task's events")
    assert {event["hostname"] for event in seen if event["type"] != "task-sent"} == {http_worker.name}
    headers, body = wait_until(lambda: hook.deliveries and hook.deliveries[0], 30, "webhook delivered")
    assert json.loads(body) == info
    assert verify(webhook_secret, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])
    rows = api.request("GET", "/tasks", params={"type": TYPE, "limit": 5}).json()["tasks"]
    assert {key: value for key, value in info.items() if key != "result"} in rows
    assert api.request("GET", f"/tasks/{task}/result").json() == digests(b"everywhere")
    assert int(redis_client.hget("gw:stats:total", f"done|{TYPE}")) == counted + 1
    timed = timings.read(redis_client.hgetall(timings.KEY))  # the runtime and queue-wait histograms too
    assert (timed[timings.RUNTIME][TYPE].count, timed[timings.WAIT][TYPE].count) == (ran + 1, waited + 1)


def test_celery_and_http_workers_share_a_queue_and_each_job_runs_once(api: Api, http_worker: Worker, redis_client,
                                                                      hold_queue_paused, celery_client) -> None:
    """`hash`, which the session's Celery worker consumes: the HTTP worker leases some of its jobs while
    the Celery worker is paused on it, then both work the rest; every job ends done once."""
    node = f"main@{socket.gethostname()}"
    celery_client.control.cancel_consumer("hash", destination=[node], reply=True, timeout=5)
    try:
        counted = int(redis_client.hget("gw:stats:total", "done|calc_hash") or 0)
        contents = {api.submitted("calc_hash", {"content": b64(f"shared {n}".encode())}): f"shared {n}".encode()
                    for n in range(10)}
        leased = [http_worker.leased("hash") for _ in range(4)]
    finally:
        celery_client.control.add_consumer("hash", destination=[node], reply=True, timeout=5)
    for job in leased:
        assert job["uuid"] in contents
        finished = http_worker.finish(job["uuid"], job["lease"]["token"], result=digests(contents[job["uuid"]]))
        assert finished.status_code == 200
    for task, content in contents.items():
        result = api.wait_status(task, "done")["result"]
        assert result["digests"]["sha256"] == hashlib.sha256(content).hexdigest()
    # Each job counted once: none ran on both sides (a second run would count, or be refused its end).
    assert int(redis_client.hget("gw:stats:total", "done|calc_hash")) == counted + len(contents)


class TaskEvents:
    """Celery task events as Flower receives them (a pattern subscription to the event exchange),
    captured in a thread while the block runs."""

    def __init__(self, celery_client, redis_client) -> None:
        self.app, self.redis, self.seen = celery_client, redis_client, []

    def __enter__(self) -> TaskEvents:
        subscribed = self.redis.pubsub_numpat()
        self.connection = self.app.connection_for_read()
        self.receiver = self.app.events.Receiver(self.connection, handlers={"*": self.seen.append})
        self.thread = threading.Thread(target=lambda: self.receiver.capture(limit=None, timeout=None, wakeup=False),
                                       daemon=True)
        self.thread.start()
        wait_until(lambda: self.redis.pubsub_numpat() > subscribed, 10, "the event receiver subscribed")
        return self

    def __exit__(self, *_: Any) -> None:
        self.receiver.should_stop = True
        self.thread.join(5)
        self.connection.release()

    def of(self, task: str) -> list[dict[str, Any]]:
        return [event for event in list(self.seen) if event.get("uuid") == task]

    def kinds(self, task: str) -> set[str]:
        return {event["type"] for event in self.of(task)}


def test_beyond_its_long_polls_a_gateway_process_answers_at_once(one_worker_gateway_url: str, vault, redis_client,
                                                                  http_worker: Worker) -> None:
    """`workers.http_long_polls` (2) per process: a third long poll into the one-process gateway gets
    its 204 at once, with Retry-After, so client requests keep their threads."""
    drain_queue(http_worker)
    single = Worker(Api(one_worker_gateway_url, auth=vault.basic("system")), "poller")
    polls = [threading.Thread(target=single.lease, kwargs={"wait": 8}) for _ in range(2)]
    for poll in polls:
        poll.start()
    wait_until(lambda: long_polls_blocked(redis_client) >= 2, 10, "two long polls blocked in Redis")
    began = time.monotonic()
    third = single.lease(wait=8)
    assert third.status_code == 204 and third.headers["Retry-After"] == "1"
    assert time.monotonic() - began < 6  # answered at once, not after its wait (a loose bound)
    for poll in polls:
        poll.join(15)


def test_a_worker_that_hangs_up_in_its_long_poll_is_given_nothing(gateway_url: str, vault, api: Api, redis_client,
                                                                   http_worker: Worker, gateway_log) -> None:
    """A worker killed while it waits in a long poll: the job that then arrives goes to a live worker, not
    to the dead one's request (which would hold it for a lease nobody heartbeats, and count a death)."""
    drain_queue(http_worker)

    before = long_polls_blocked(redis_client)
    user, password = vault.basic("system")
    body = json.dumps({"worker": "dead-poller", "wait": 15}).encode()
    host, port = gateway_url.removeprefix("http://").split(":")
    dead = socket.create_connection((host, int(port)), timeout=10)
    dead.sendall(b"POST /internal/queues/%s/lease HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Authorization: Basic %s\r\nContent-Length: %d\r\n\r\n%s"
                 % (QUEUE.encode(), base64.b64encode(f"{user}:{password}".encode()), len(body), body))
    wait_until(lambda: long_polls_blocked(redis_client) > before, 10, "the dead worker's long poll blocked in Redis")
    dead.close()
    task = api.submitted(TYPE, {"content": b64(b"for the living")})
    job = http_worker.leased(wait=15)
    assert job["uuid"] == task and job["attempt"] == 1
    assert http_worker.finish(task, job["lease"]["token"], result=digests(b"for the living")).status_code == 200
    assert f"lease: task {task} to HTTP worker dead-poller" not in gateway_log.read_text()


def test_http_workers_count_as_workers_of_their_queue(api: Api, http_worker: Worker) -> None:
    """/ops/workers lists an HTTP worker that asked for a job, and /metrics counts it among its queue's
    workers (the "queue with work and no workers" alert must not fire for queues HTTP workers serve)."""
    seen = Worker(http_worker.api, "listed-worker")
    assert seen.lease(wait=0).status_code in (200, 204)
    listed = api.request("GET", "/ops/workers").json()["workers"]
    assert {"name": "listed-worker", "kind": "http", "queues": [QUEUE], "active": None} in listed
    assert all(worker["kind"] == "celery" for worker in listed if worker["name"].startswith("main@"))
    scraped = api.request("GET", "/metrics").text
    counted = [line for line in scraped.splitlines() if line.startswith(f'gateway_queue_workers{{queue="{QUEUE}"}}')]
    assert counted and float(counted[0].split()[-1]) >= 1
