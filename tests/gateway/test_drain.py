"""Drain mode against a real gunicorn of its own (issue 23 item 6): SIGTERM to the master, or POST
/ops/drain by an operator, makes /readyz answer 503 at once while reads go on, submits answer 503 with
Retry-After once ops.drain_grace has passed, and after ops.drain_serve gunicorn stops gracefully, finishing
the requests it holds. Each test drains its own gateway: there is no undrain."""
from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests

from devsupport.processes import Process, free_port, start_gunicorn, wait_until
from tests.support.api import Api, b64
from tests.support.vault import SeededVault

GRACE = 6.0  # ops.drain_grace of these gateways: wide, so a loaded machine still fits the checks inside it
SERVE = 12.0  # ops.drain_serve: room for the checks below before gunicorn's own stop begins
PARKED = {"content": b64(b"drain")}  # calc_hash_parked: no worker consumes it, the task stays created


@dataclass
class Gateway:
    url: str
    proc: Process

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=5)


@pytest.fixture
def gateway(service_env: dict[str, str], run_dir: Path, vault: SeededVault) -> Iterator[Gateway]:
    port = free_port()
    env = dict(service_env, GATEWAY__OPS__DRAIN_GRACE=str(GRACE), GATEWAY__OPS__DRAIN_SERVE=str(SERVE),
               PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"metrics-drain-{port}"))
    proc = start_gunicorn(port, env, run_dir)
    found = Gateway(f"http://127.0.0.1:{port}", proc)
    wait_until(lambda: proc.alive() and found.get("/readyz").status_code == 200, 30, "drain gateway ready")
    yield found
    proc.stop(signal.SIGINT)  # at once: a SIGTERM would drain for SERVE seconds first


def refused_submit(api: Api) -> list[requests.Response]:
    """[the response] once a submit is refused (a 503 Response is falsy itself), else []."""
    response = api.submit("calc_hash_parked", PARKED)
    return [response] if response.status_code == 503 else []


def partial_request(url: str) -> socket.socket:
    """A GET whose headers are not finished: a gunicorn thread holds it, in flight, until the rest comes."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: drain\r\n")
    return sock


def finish(sock: socket.socket) -> bytes:
    sock.sendall(b"Connection: close\r\n\r\n")
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def serving(gateway: Gateway) -> bool:
    """False once a new connection goes unanswered: gunicorn's stopping workers no longer accept."""
    try:
        return requests.get(gateway.url + "/livez", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def assert_draining_refusals(gateway: Gateway, api: Api, earlier: str) -> None:
    """Submits refused after the grace with 503 + Retry-After in the envelope; reads still answered."""
    [refused] = wait_until(lambda: refused_submit(api), GRACE + 10, "submits refused")
    assert refused.headers["Retry-After"] == "2"
    assert refused.json() == {"code": 503, "message": "Draining: this gateway takes no new submits; retry"}
    assert api.taskinfo(earlier).status_code == 200
    assert api.request("GET", "/tasks").status_code == 200
    assert gateway.get("/livez").status_code == 200
    assert gateway.get("/health").status_code == 200
    assert gateway.get("/ping").status_code == 200


def test_sigterm_drains_then_stops_after_in_flight_requests_finish(gateway: Gateway, vault: SeededVault):
    api = Api(gateway.url, auth=vault.basic("admin"))
    earlier = api.submitted("calc_hash_parked", PARKED)
    held = partial_request(gateway.url)

    os.kill(gateway.proc.proc.pid, signal.SIGTERM)
    signalled = time.monotonic()
    wait_until(lambda: gateway.get("/readyz").status_code == 503, GRACE / 2, "/readyz 503 at once")
    assert gateway.get("/readyz").json() == {"message": "Draining", "code": 0}
    during_grace = api.submit("calc_hash_parked", PARKED)
    assert time.monotonic() - signalled < GRACE, "the machine is too slow for this test's grace"
    assert during_grace.status_code == 202, during_grace.text
    assert_draining_refusals(gateway, api, earlier)

    # After ops.drain_serve the master stops: no new connection is served, the held request still is.
    wait_until(lambda: not serving(gateway), SERVE + 10, "gunicorn stops accepting")
    assert gateway.proc.alive()
    assert finish(held).startswith(b"HTTP/1.1 200 ")
    wait_until(lambda: not gateway.proc.alive(), 25, "gunicorn exits")
    assert gateway.proc.proc.returncode == 0


def test_ops_drain_is_refused_to_a_non_operator(gateway: Gateway, vault: SeededVault):
    response = Api(gateway.url, auth=vault.basic("service")).request("POST", "/ops/drain")
    assert response.status_code == 403
    assert response.json()["code"] == 403
    assert gateway.get("/readyz").status_code == 200


def test_ops_drain_drains_every_worker_and_keeps_serving(gateway: Gateway, vault: SeededVault):
    api = Api(gateway.url, auth=vault.basic("admin"))
    earlier = api.submitted("calc_hash_parked", PARKED)

    response = api.request("POST", "/ops/drain")
    assert response.status_code == 202, response.text
    body = response.json()
    since, refuse = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["refuse_submits_at"])
    assert body["draining"] is True and (refuse - since).total_seconds() == pytest.approx(GRACE)
    # Both gunicorn workers share the state: every probe, whichever worker answers it, says draining.
    assert [gateway.get("/readyz").status_code for _ in range(12)] == [503] * 12
    assert_draining_refusals(gateway, api, earlier)
    assert api.request("POST", "/ops/drain").json() == body  # a second call starts nothing new
    assert gateway.proc.alive()  # draining by API does not stop the gateway: the orchestrator does
