"""Flower, started against the test broker, sees the workers and a task submitted through the gateway."""
from __future__ import annotations

import socket

import pytest
import requests

from devsupport.processes import BIN, Process, free_port, wait_until
from tests.support.api import b64


@pytest.fixture(scope="module")
def flower_url(service_env, run_dir, worker):
    port = free_port()
    env = dict(service_env, FLOWER_UNAUTHENTICATED_API="true")
    proc = Process("flower", [str(BIN / "celery"), "-A", "tasks", "flower", f"--port={port}",
                              "--address=127.0.0.1"], env, run_dir)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/healthcheck", timeout=1).status_code == 200,
               60, "flower ready")
    yield url
    proc.stop()


def test_flower_sees_the_workers(flower_url):
    node = f"main@{socket.gethostname()}"
    def listed():
        workers = requests.get(flower_url + "/api/workers", timeout=10).json()
        # Flower fills a worker's entry from several inspect replies; wait for the queues to be in.
        return node in workers and workers[node].get("active_queues") and workers
    workers = wait_until(listed, 30, "flower lists the worker and its queues")
    assert {q["name"] for q in workers[node]["active_queues"]} == {"hash", "images", "hold"}


def test_flower_sees_a_gateway_task_with_its_final_state(flower_url, api):
    task_id = api.submitted("calc_hash", {"content": b64(b"seen by flower")})
    api.wait_status(task_id, "done")

    def final_state():
        response = requests.get(f"{flower_url}/api/task/info/{task_id}", timeout=5)
        return response.status_code == 200 and response.json().get("state") == "SUCCESS" and response.json()
    info = wait_until(final_state, 30, "flower shows SUCCESS")
    assert info["name"] == "jobs.calc_hash" and info["uuid"] == task_id
    assert "seen by flower" not in str(info) and b64(b"seen by flower") not in str(info)  # kwargsrepr, not payload
