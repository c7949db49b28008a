"""Redis down or stalled, by real means, against a gateway and a redis-server of their own: every route
answers 503 (never 500) within 2 s at the client under 16 concurrent clients, a submit whose outcome is
unknown says so and carries its uuid, and a retry with the same Idempotency-Key never makes a second job."""
from __future__ import annotations

import json
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from redis import Redis

from devsupport.processes import free_port, start_gunicorn, start_redis, wait_until
from gateway import create_app
from settings import load_settings
from tests.gateway.test_metrics import scrape, value
from tests.support.api import b64, basic_header
from tests.support.vault import SeededVault

CLIENT_DEADLINE = 2.0
SUBMISSION = {"type": "calc_hash", "upload": {"content": b64(b"stall")}}


@pytest.fixture(scope="module")
def own_redis(run_dir: Path):
    password = "stallpw"
    proc, port = start_redis(run_dir, password)
    wait_until(lambda: Redis(port=port, password=password).ping(), 15, "stall redis up")
    yield port, password, proc.proc.pid
    os.kill(proc.proc.pid, signal.SIGCONT)
    proc.stop()


@pytest.fixture(scope="module")
def own_gateway(own_redis, config_files, service_env, run_dir: Path) -> str:
    """Without a submit rate limit, so the save script is a submit's first Redis call and a stall can
    catch it after sending (with one, the limiter's call fails first and nothing is sent)."""
    port, password, _ = own_redis
    config = json.loads(config_files[0].read_text())
    config["limits"]["rate"]["submit"] = {"default": None}
    (run_dir / "stalls").mkdir()
    (run_dir / "stalls" / "config.json").write_text(json.dumps(config))
    env = dict(service_env, GATEWAY__QUEUE__URL=f"redis://:{password}@127.0.0.1:{port}/0",
               GATEWAY_CONFIG=str(run_dir / "stalls" / "config.json"),
               PROMETHEUS_MULTIPROC_DIR=str(run_dir / "metrics-stalls"))
    http_port = free_port()
    proc = start_gunicorn(http_port, env, run_dir)
    url = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200, 30,
               "stall gateway ready")
    yield url
    proc.stop()


def pause(own_redis, seconds: float) -> None:
    """CLIENT PAUSE ALL: every client's commands wait, connections stay open (Redis ends it by itself)."""
    port, password, _ = own_redis
    Redis(port=port, password=password).execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")


class Stopped:
    """SIGSTOP of redis-server: its port accepts and buffers, nothing answers, until SIGCONT."""

    def __init__(self, own_redis) -> None:
        self.pid = own_redis[2]

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *_: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def test_read_routes_answer_503_not_500_when_redis_is_down(config_files, vault: SeededVault):
    settings = load_settings(*config_files, environ={"GATEWAY__QUEUE__URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = create_app(settings).test_client()
    auth = basic_header(*vault.basic("admin"))
    some_task = str(uuid.uuid4())
    for method, path in (("GET", f"/taskinfo?taskid={some_task}"), ("GET", "/tasks"),
                         ("DELETE", f"/tasks/{some_task}"), ("GET", "/ops/tasks/counts"), ("GET", "/ops/deadletters")):
        response = client.open(path, method=method, headers=auth)
        assert response.status_code == 503, (method, path, response.get_json())
        assert response.get_json() == {"code": 503, "message": "Task store unavailable"}


def test_every_route_answers_within_2s_under_16_clients_while_redis_is_paused(own_gateway, own_redis, vault):
    auth = vault.basic("admin")
    known = requests.post(own_gateway + "/submit", json=SUBMISSION, auth=auth, timeout=5).json()["uuid"]
    routes = [("POST", "/submit", SUBMISSION), ("GET", f"/taskinfo?taskid={known}", None), ("GET", "/tasks", None),
              ("DELETE", f"/tasks/{uuid.uuid4()}", None), ("GET", "/health", None), ("GET", "/ping", None),
              ("GET", "/ops/tasks/counts", None), ("GET", "/metrics", None)]
    outcomes: list[tuple[str, int, float]] = []
    end = time.monotonic() + 5  # the load runs through the whole 4 s pause and past its end

    def client(i: int) -> None:
        session = requests.Session()
        while time.monotonic() < end:
            method, path, body = routes[i % len(routes)]
            started = time.monotonic()
            response = session.request(method, own_gateway + path, json=body, auth=auth, timeout=10)
            outcomes.append((path, response.status_code, time.monotonic() - started))
            i += 1

    pause(own_redis, 4)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    slow = [(path, status, round(elapsed, 2)) for path, status, elapsed in outcomes if elapsed >= CLIENT_DEADLINE]
    assert not slow, f"{len(slow)} of {len(outcomes)} answers took 2 s or more: {slow[:10]}"
    assert not [o for o in outcomes if o[1] >= 500 and o[1] != 503], "a stall must never be a 500"
    assert any(status == 503 for _, status, _ in outcomes), "the pause was not seen"


def test_submit_with_unknown_outcome_carries_its_uuid_and_a_retry_never_doubles_the_job(own_gateway, own_redis, vault):
    """The script is sent to a stopped Redis, which runs it when it resumes: the 503 said the outcome
    was unknown and named the uuid, and the retry with the same key finds that task (200)."""
    auth, key = vault.basic("admin"), f"stall-{uuid.uuid4()}"
    wait_until(lambda: requests.get(own_gateway + "/health", timeout=5).status_code == 200, 20, "redis answering")
    for _ in range(4):  # every gunicorn worker has loaded the script and holds open connections
        requests.post(own_gateway + "/submit", json=SUBMISSION, auth=auth, timeout=5)
    counted = {outcome: value(scrape(own_gateway), "gateway_submissions_total", type="calc_hash", outcome=outcome)
               for outcome in ("outcome_unknown", "repeat")}
    with Stopped(own_redis):
        first = requests.post(own_gateway + "/submit", json=SUBMISSION, auth=auth, timeout=10,
                              headers={"Idempotency-Key": key})
    assert first.status_code == 503
    body = first.json()
    assert "may have been queued" in body["message"] and uuid.UUID(body["uuid"])
    retried = wait_until(lambda: _accepted(requests.post(own_gateway + "/submit", json=SUBMISSION, auth=auth,
                                                         timeout=10, headers={"Idempotency-Key": key})),
                         20, "a retry accepted after the stall")
    assert (retried.status_code, retried.json()["uuid"]) == (200, body["uuid"])
    # The 503 counted as what it is (not broker_down; a retry cut off while Redis wakes may add one), the retry as a repeat.
    after = {outcome: value(scrape(own_gateway), "gateway_submissions_total", type="calc_hash", outcome=outcome) - before
             for outcome, before in counted.items()}
    assert after["outcome_unknown"] >= 1 and after["repeat"] == 1, after
    wait_until(lambda: requests.get(own_gateway + f"/taskinfo?taskid={body['uuid']}", auth=auth,
                                    timeout=5).status_code == 200, 10, "the task readable (breakers closed again)")


def _accepted(response: requests.Response) -> requests.Response | None:
    return response if response.status_code in (200, 202) else None
