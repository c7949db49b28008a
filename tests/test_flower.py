"""Flower, started against the test broker, sees the workers and a task submitted through the gateway: once
with the gateway's settings (what compose runs), once with the command docs/operations.md shows, which
gives it nothing but the broker URL."""
from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import pytest
import requests

from devsupport.processes import BIN, ROOT, Process, free_port, wait_until
from tests.support.api import b64

OPERATIONS = ROOT / "docs" / "operations.md"


def documented_command() -> list[str]:
    """The Flower command of docs/operations.md's Flower section, as its words."""
    section = OPERATIONS.read_text().split("\n## Flower\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in re.findall(r"```sh\n(.*?)```", section, re.S)[0].splitlines() if " flower" in line]
    assert len(lines) == 1, lines
    return shlex.split(lines[0], comments=True)


def as_documented(broker_url: str, port: int) -> list[str]:
    """The documented command with this venv's celery, the test broker and a free port (and this host only)."""
    argv = documented_command()
    assert Path(argv[0]).name == "celery" and argv[1:3] == ["-A", "tasks"], argv
    broker = [arg for arg in argv if arg.startswith("--broker=")]
    assert len(broker) == 1 and argv.index(broker[0]) < argv.index("flower"), "--broker goes before `flower`"
    replaced = {"--broker=": f"--broker={broker_url}", "--port=": f"--port={port}"}
    return [str(BIN / "celery"), *[next((new for old, new in replaced.items() if arg.startswith(old)), arg) for arg in argv[1:]],
            "--address=127.0.0.1"]


@pytest.fixture(scope="module", params=["gateway-settings", "docs-broker-only"])
def flower_url(request, service_env, settings, run_dir, worker):
    port = free_port()
    env = dict(service_env, FLOWER_UNAUTHENTICATED_API="true")
    if request.param == "gateway-settings":
        argv = [str(BIN / "celery"), "-A", "tasks", "flower", f"--port={port}", "--address=127.0.0.1"]
    else:  # settings it must not need: any attempt to read them would stop it (exit 2)
        argv = as_documented(settings.broker_url, port)
        env.update(GATEWAY_CONFIG=str(run_dir / "no-such-config.json"), GATEWAY_SECRETS=str(run_dir / "no-such-secrets.json"))
    proc = Process(f"flower-{request.param}", argv, env, run_dir)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/healthcheck", timeout=1).status_code == 200,
               60, f"flower ({request.param}) ready")
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
