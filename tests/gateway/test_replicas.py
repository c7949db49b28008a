"""Several gateways are one service (issue 20, item 4): three gateway replicas, each started as the session's
own is (`gunicorn wsgi:app`, the same environment), over the session's Redis, OpenBao and workers. A
client's rate limit and unfinished cap hold across them, duplicates sent to different replicas at once
make one task, `/ops` answers the same from each, and `/metrics` tells apart the families read from
Redis (the same on every replica: take one replica's view) from the per-process ones (sum them).

Every burst goes out at once from threads, a new connection per request, spread round-robin over
the replicas."""
from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.metrics import MetricWrapperBase

from devsupport.processes import Process, free_port, start_gunicorn, wait_until
from gateway.health import metrics
from jobs.keys import DEADLETTERS, OPEN_PREFIX, OWNER_PREFIX
from tests.support.api import Api, b64
from tests.support.metricsdoc import documented_aggregation, family
from tests.support.ratewindows import clear_of_window_edge

REPLICAS = 3
# tests/conftest.py's configuration gives these two clients their limits.
RATE_CLIENT, RATE = "replica-rl-client", 7  # 7/day
CAP_CLIENT, CAP = "replica-capped-client", 4
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


@pytest.fixture(scope="module")
def replicas(service_env: dict[str, str], run_dir: Path, worker) -> Iterator[list[str]]:
    """Three gateways started together, each with one gunicorn worker process (fast to start; the
    session's own gateway shows two processes sharing a limit) and its own metrics folder."""
    started = []
    for i in range(REPLICAS):
        port = free_port()
        env = dict(service_env, PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"metrics-replica-{i}"))
        started.append((start_gunicorn(port, env, run_dir, workers=1), f"http://127.0.0.1:{port}"))
    try:
        for proc, url in started:
            wait_until(partial(answering, proc, url), 30, f"replica {url} ready")
        yield [url for _, url in started]
    finally:
        for proc, _ in started:
            proc.stop()


def answering(proc: Process, url: str) -> bool:
    return proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200


def at_once(calls: Sequence[Callable[[], requests.Response]]) -> list[requests.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def bearer(vault, client_id: str) -> dict[str, str]:
    # A new connection per request: nothing is carried from one request to the next but what is in Redis.
    return {"Authorization": "Bearer " + vault.jwt(client_id=client_id, client_role="admin"), "Connection": "close"}


def parked(tag: str) -> dict[str, Any]:
    """A job nobody consumes: it stays unfinished."""
    return {"type": "calc_hash_parked", "upload": {"content": b64(tag.encode())}}


def submits(replicas: list[str], count: int, headers: dict[str, str],
            body: Callable[[int], dict[str, Any]]) -> list[Callable[[], requests.Response]]:
    return [lambda i=i: requests.post(replicas[i % len(replicas)] + "/submit", json=body(i), headers=headers, timeout=15)
            for i in range(count)]


def warmed(replicas: list[str], headers: dict[str, str]) -> None:
    """Each replica logs the client in once, so a burst races on the limit rather than on Vault."""
    for url in replicas:
        assert requests.get(url + "/tasks", headers=headers, timeout=10).status_code == 200


def test_a_rate_limit_holds_across_replicas(replicas, vault):
    """7/day for this client: a burst of 24 over three replicas at once is accepted 7 times, whichever
    replica each request reached, and afterwards every replica refuses it."""
    headers = bearer(vault, RATE_CLIENT)
    warmed(replicas, headers)
    clear_of_window_edge(86400, 30)  # the burst and the checks after it in one day's window
    responses = at_once(submits(replicas, 24, headers, lambda i: parked(f"rate-{i}")))
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == RATE and statuses.count(429) == 24 - RATE, statuses
    assert len({r.json()["uuid"] for r in responses if r.status_code == 202}) == RATE
    assert {r.json()["message"] for r in responses if r.status_code == 429} == {"Rate limit exceeded: 7/day"}
    for url in replicas:
        again = requests.post(url + "/submit", json=parked("rate-after"), headers=headers, timeout=10)
        assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1


def test_the_unfinished_cap_holds_across_replicas(replicas, vault, redis_client):
    """A cap of 4: 18 submits at once over three replicas, 4 accepted; one cancelled through a replica
    frees exactly one place, which two replicas then race for."""
    headers = bearer(vault, CAP_CLIENT)
    warmed(replicas, headers)
    responses = at_once(submits(replicas, 18, headers, lambda i: parked(f"cap-{i}")))
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == CAP and statuses.count(429) == 18 - CAP, statuses
    assert all(r.json()["message"].startswith(f"Too many unfinished tasks: at most {CAP}")
               for r in responses if r.status_code == 429)
    accepted = [r.json()["uuid"] for r in responses if r.status_code == 202]
    assert redis_client.zcard(OPEN_PREFIX + CAP_CLIENT) == CAP
    cancel = requests.delete(f"{replicas[0]}/tasks/{accepted[0]}", headers=headers, timeout=10)
    assert cancel.status_code == 202
    wait_until(lambda: redis_client.zcard(OPEN_PREFIX + CAP_CLIENT) == CAP - 1, 10, "the cancelled task left the cap")
    race = at_once([lambda url=url: requests.post(url + "/submit", json=parked("cap-race"), headers=headers, timeout=10)
                    for url in replicas[1:]])
    assert sorted(r.status_code for r in race) == [202, 429]


def messages_of(redis_client, queue: str, task_id: str) -> int:
    return sum(json.loads(raw)["headers"]["id"] == task_id for raw in redis_client.lrange(queue, 0, -1))


@pytest.mark.parametrize("key", ["Idempotency-Key", "ExternalId"])
def test_duplicates_at_different_replicas_make_one_task(replicas, vault, redis_client, key):
    """The same key and body sent 24 times at once, 8 to each replica: one 202, 23 repeats (200) naming
    the same task, one record in the client's index, one message in the queue."""
    client_id = f"replica-idem-{uuid.uuid4().hex[:8]}"
    headers, value = bearer(vault, client_id), f"dup-{uuid.uuid4()}"
    warmed(replicas, headers)
    body = parked("duplicate")
    if key == "ExternalId":
        body["ExternalId"] = value
    else:
        headers = {**headers, key: value}
    responses = at_once(submits(replicas, 24, headers, lambda i: body))
    assert sorted(r.status_code for r in responses) == [200] * 23 + [202]
    task_ids = {r.json()["uuid"] for r in responses}
    assert len(task_ids) == 1
    task_id = task_ids.pop()
    assert redis_client.zrange(OWNER_PREFIX + client_id, 0, -1) == [task_id]
    assert redis_client.zrange(OPEN_PREFIX + client_id, 0, -1) == [task_id]
    assert messages_of(redis_client, "parked", task_id) == 1
    for url in replicas:  # and each replica shows that task to its owner
        listed = requests.get(url + "/tasks", headers=headers, timeout=10).json()
        assert [task["uuid"] for task in listed["tasks"]] == [task_id]


def same_everywhere(answers: list[Any], tolerance: float = 1.0) -> bool:
    """Whether the replicas' answers are equal, ages (seconds that grow as time passes) within `tolerance`."""
    def close(a: Any, b: Any, key: str = "") -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(close(a[k], b[k], k) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(close(x, y, key) for x, y in zip(a, b, strict=True))
        if "age" in key and isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, abs_tol=tolerance)
        return a == b
    return all(close(answers[0], other) for other in answers[1:])


OPS_VIEWS = ["/ops/queues", "/ops/workers", "/ops/tasks/counts", "/ops/tasks/counts?hours=1", "/ops/deadletters"]


def test_ops_views_are_the_same_from_every_replica(replicas, vault, redis_client):
    """After a job is queued through one replica, another dead-lettered through a second and a third
    finished through the third, every ops view answers the same from all three (polled: jobs of earlier
    tests may still end meanwhile, and each ends everywhere at once)."""
    apis = [Api(url, auth=vault.basic("admin")) for url in replicas]
    apis[0].submitted("calc_hash_parked", {"content": b64(b"ops-view")})
    doomed = apis[1].submitted("doomed", {"tag": "replicas"})
    done = apis[2].submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)})
    assert apis[0].wait_status(doomed, "error")["code"] == 7
    apis[1].wait_status(done, "done")
    try:
        for path in OPS_VIEWS:
            def agree(path: str = path) -> list[Any] | None:
                answers = at_once([lambda api=api: api.request("GET", path) for api in apis])
                assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
                bodies = [a.json() for a in answers]
                for body in bodies:
                    body.pop("waited_seconds", None)  # how long this replica waited for the workers' replies
                return bodies if same_everywhere(bodies) else None
            bodies = wait_until(agree, 15, f"{path} the same from every replica")
            if path == "/ops/deadletters":
                assert doomed in {entry["uuid"] for entry in bodies[0]["deadletters"]}
            if path == "/ops/workers":
                assert any("hold" in w["queues"] for w in bodies[0]["workers"])
    finally:
        redis_client.hdel(DEADLETTERS, doomed)


def scrape(url: str) -> dict[str, dict[frozenset, float]]:
    return parsed(requests.get(url + "/metrics", timeout=5))


def parsed(response: requests.Response) -> dict[str, dict[frozenset, float]]:
    """Sample name -> labels -> value."""
    assert response.status_code == 200
    samples: dict[str, dict[frozenset, float]] = {}
    for line in response.text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            samples.setdefault(match["name"], {})[labels] = float(match["value"])
    return samples


def test_the_docs_say_how_to_aggregate_every_metric_and_that_matches_where_it_lives():
    """`sum`: a prometheus_client metric of the gateway process (its own count, per replica);
    `max`: read from Redis at scrape time (gateway/health/metrics.py BrokerCollector), the same on every
    replica."""
    documented = documented_aggregation()
    per_process = {m._name + ("_total" if m._type == "counter" else "")
                   for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    assert per_process and {name for name, how in documented.items() if how == "sum"} == per_process
    assert {name for name, how in documented.items() if how == "max"} >= {"gateway_queue_depth", "gateway_task_outcomes_total"}


def test_metrics_read_from_redis_are_the_same_on_every_replica_and_the_rest_are_its_own(replicas, vault):
    """Pings 3, 5 and 8 times through the three replicas, and a submit through the first: each replica's
    request counter moved by its own pings, the submission counter on the first only, while the tasks
    submitted (from Redis) moved by one on every replica; every `max` family (docs/operations.md) is
    shown, the same on all three."""
    documented = documented_aggregation()
    api = Api(replicas[0], auth=vault.basic("admin"))
    ping = frozenset({("route", "/ping"), ("method", "GET"), ("status", "200")})
    accepted = frozenset({("type", "calc_hash_parked"), ("outcome", "accepted")})
    submitted = frozenset({("type", "calc_hash_parked")})
    api.submitted("calc_hash_parked", {"content": b64(b"metrics warm-up")})  # every series exists before
    finished = Api(replicas[1], auth=vault.basic("admin"))  # and a job's outcome and timings, from another
    finished.wait_status(finished.submitted("calc_hash", {"content": b64(uuid.uuid4().bytes)}), "done")
    before = [scrape(url) for url in replicas]
    pings = (3, 5, 8)
    for url, count in zip(replicas, pings, strict=True):
        for _ in range(count):
            assert requests.get(url + "/ping", timeout=5).status_code == 200
    api.submitted("calc_hash_parked", {"content": b64(b"metrics")})

    ages = "gateway_queue_oldest_message_age_seconds"

    def agree() -> list[dict[str, dict[frozenset, float]]] | None:
        scrapes = [parsed(r) for r in at_once([lambda url=url: requests.get(url + "/metrics", timeout=5)
                                               for url in replicas])]
        views = [{name: series for name, series in s.items() if documented.get(family(name, documented)) == "max"}
                 for s in scrapes]
        oldest = [view.pop(ages) for view in views]  # grows with the clock: within a second of each other
        close = all(o.keys() == oldest[0].keys() and all(abs(o[k] - oldest[0][k]) <= 1 for k in o) for o in oldest)
        shown = {family(name, documented) for name in scrapes[0]}
        return scrapes if close and all(view == views[0] for view in views) and shown >= cluster else None
    cluster = {name for name, how in documented.items() if how == "max"}
    after = wait_until(agree, 15, "every Redis-read family shown, the same on every replica")
    delta = lambda i, name, labels: after[i].get(name, {}).get(labels, 0) - before[i].get(name, {}).get(labels, 0)
    assert [delta(i, "gateway_http_requests_total", ping) for i in range(REPLICAS)] == list(pings)
    assert [delta(i, "gateway_submissions_total", accepted) for i in range(REPLICAS)] == [1, 0, 0]
    assert [delta(i, "gateway_tasks_submitted_total", submitted) for i in range(REPLICAS)] == [1, 1, 1]
