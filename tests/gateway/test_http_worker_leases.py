"""HTTP workers' leases lapse, come back and run out (issue 22), against a gateway of its own whose
leases last 3 s (`workers.visibility_timeout`), on queue `http_short`, which only HTTP workers take."""
from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devsupport.processes import free_port, start_gunicorn, wait_until
from tests.gateway.test_http_workers import Worker, digests
from tests.support.api import Api, b64
from tests.support.vault import SeededVault

QUEUE, TYPE = "http_short", "calc_hash_http_short"  # time_limit 4 s
LEASE = 3


@pytest.fixture(scope="module")
def short_gateway(service_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    port = free_port()
    env = dict(service_env, GATEWAY__WORKERS__HTTP_LEASE=str(LEASE),
               PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"metrics-short-{port}"))
    proc = start_gunicorn(port, env, run_dir)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/readyz", timeout=1).status_code == 200, 30,
               "short-lease gateway ready")
    yield url
    proc.stop(signal.SIGINT)


@pytest.fixture
def client(short_gateway: str, worker, vault: SeededVault) -> Api:
    return Api(short_gateway, auth=vault.basic("admin"))


@pytest.fixture
def http_worker(short_gateway: str, vault: SeededVault) -> Worker:
    found = Worker(Api(short_gateway, auth=vault.basic("system")), "short-worker")
    while (response := found.lease(QUEUE)).status_code == 200:  # what an earlier test left
        job = response.json()
        found.finish(job["uuid"], job["lease"]["token"], error={"code": 1, "message": "cleanup"})
    return found


def leased_again(worker: Worker, task: str) -> dict | None:
    response = worker.lease(QUEUE, wait=1)
    if response.status_code == 200:
        assert response.json()["uuid"] == task
        return response.json()
    return None


def test_a_lapsed_lease_is_leased_again_and_the_first_token_is_refused(client: Api, http_worker: Worker) -> None:
    task = client.submitted(TYPE, {"content": b64(b"lapse")})
    first = http_worker.leased(QUEUE)
    assert first["attempt"] == 1
    second = wait_until(lambda: leased_again(http_worker, task), 30, "the job leased again after its lease lapsed")
    assert second["attempt"] == 2 and second["lease"]["token"] != first["lease"]["token"]
    stale = http_worker.finish(task, first["lease"]["token"], result=digests(b"lapse"))
    assert stale.status_code == 409 and stale.json()["reason"] == "expired"
    assert http_worker.heartbeat(task, first["lease"]["token"]).status_code == 409
    assert http_worker.finish(task, second["lease"]["token"], result=digests(b"lapse")).status_code == 200
    assert client.wait_status(task, "done")["result"] == digests(b"lapse")


def test_a_job_whose_workers_keep_dying_ends_error_6_dead_lettered(client: Api, http_worker: Worker) -> None:
    task = client.submitted(TYPE, {"content": b64(b"dies")})
    assert http_worker.leased(QUEUE)["attempt"] == 1
    assert wait_until(lambda: leased_again(http_worker, task), 30, "second delivery")["attempt"] == 2
    # workers.max_deliveries is 2: the third delivery is not handed out; the job ends.

    def ended() -> dict | None:
        assert leased_again(http_worker, task) is None, "a third delivery was handed out"
        info = client.taskinfo(task).json()
        return info if info["status"] == "error" else None
    info = wait_until(ended, 40, "the job ended after its second lapsed lease")
    assert info["code"] == 6
    letters = client.request("GET", "/ops/deadletters").json()["deadletters"]
    assert any(letter["uuid"] == task and letter["error"] == "WorkerLost" for letter in letters)


def test_a_job_past_its_time_limit_ends_timed_out_at_a_heartbeat(client: Api, http_worker: Worker) -> None:
    task = client.submitted(TYPE, {"content": b64(b"slow")})
    job = http_worker.leased(QUEUE)

    def refused() -> list[requests.Response]:  # [the response] (a 409 Response is falsy itself)
        beat = http_worker.heartbeat(task, job["lease"]["token"])
        return [beat] if beat.status_code == 409 else []
    [beat] = wait_until(refused, 15, "a heartbeat past the time limit refused", interval=0.5)
    assert beat.json()["reason"] == "timed_out"
    assert client.wait_status(task, "error")["code"] == 5
