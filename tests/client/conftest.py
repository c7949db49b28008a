"""Fixtures for the client library's tests (issue 21): clients of the session's gateway, a gateway of
these tests' own whose Redis they may stop and whose rate limit is tight, and a TCP proxy that loses
answers. Everything is real: the session's redis-server, OpenBao, Celery workers and gunicorn."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from redis import Redis

from devsupport.processes import free_port, start_gunicorn, start_redis, wait_until
from jobgateway_client import BasicAuth, Client, RetryEvent
from tests.support.vault import SeededVault

# Vault's JWT auth accepts a token up to its role's clock skew leeway past `exp` (a leeway of 0 means 60 s);
# the gateway's local check allows that plus 10 s (gateway/access/jwtcheck.py). A token whose exp is 55 s
# ago is one Vault takes for about 5 s more: a short-lived token that expires between two calls.
VAULT_SKEW = 60
EXPIRES_IN = 5


def expiring_claims() -> dict[str, int]:
    """Claims for vault.jwt(...) of a token Vault accepts for about EXPIRES_IN seconds more."""
    now = int(time.time())
    return {"iat": now - 120, "nbf": now - 120, "exp": now - VAULT_SKEW + EXPIRES_IN}


# The one client the own gateway rate-limits: one submit a second, so Retry-After is about a second.
LIMITED_CLIENT = "client-lib-limited"
LIMITED_RATE = "1/second"


@pytest.fixture
def admin(gateway_url: str, worker, vault: SeededVault) -> Iterator[Client]:
    """The library as the admin user, who may submit every job type (test types included)."""
    with Client(gateway_url, BasicAuth(*vault.basic("admin"))) as client:
        yield client


@pytest.fixture
def client_as(gateway_url: str, worker, vault: SeededVault) -> Iterator:
    """client_as("service") -> a Client of the session gateway as that userpass user."""
    made: list[Client] = []

    def make(user: str, **options) -> Client:
        made.append(Client(gateway_url, BasicAuth(*vault.basic(user)), **options))
        return made[-1]
    yield make
    for client in made:
        client.close()


@pytest.fixture
def fresh_identity(vault: SeededVault):
    """fresh_identity(role) -> (client_id, jwt): a client no other test has used, so its listing holds
    exactly what this test submitted."""
    def make(role: str = "admin", **claims) -> tuple[str, str]:
        client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
        return client_id, vault.jwt(client_id=client_id, client_role=role, **claims)
    return make


class Retries(list):
    """An `on_retry` hook that records each RetryEvent."""

    def __call__(self, event: RetryEvent) -> None:
        self.append(event)

    @property
    def reasons(self) -> list[str]:
        return [event.reason for event in self]


@pytest.fixture
def retries() -> Retries:
    return Retries()


@dataclass
class OwnGateway:
    """A gunicorn gateway of these tests' own over its own redis-server (broker and task store), so a
    test can stop that Redis (SIGSTOP) without touching the session's. No worker consumes its queues."""

    url: str
    redis_pid: int
    redis: Redis
    admin: tuple[str, str]

    def stop_redis(self) -> None:
        os.kill(self.redis_pid, signal.SIGSTOP)

    def resume_redis(self) -> None:
        os.kill(self.redis_pid, signal.SIGCONT)

    def healthy(self) -> None:
        """Its Redis answering and its breaker closed (gateway/health/breaker.py): a test that stopped
        Redis leaves the breaker open a while after it resumes; /tasks reads the task store through it."""
        wait_until(lambda: requests.get(self.url + "/tasks", params={"limit": 1}, auth=self.admin,
                                        timeout=5).status_code == 200, 20, "own gateway's task store answering")


@pytest.fixture(scope="session")
def own_gateway_session(config_files: tuple[Path, Path], service_env: dict[str, str], run_dir: Path,
                        vault: SeededVault) -> Iterator[OwnGateway]:
    """One gunicorn worker process (one breaker, one script cache). Submits are not rate-limited except
    for LIMITED_CLIENT's, so for everyone else the save script is a submit's first Redis call (what an
    outcome-unknown 503 needs: tests/gateway/test_redis_stalls.py)."""
    password = "client-lib-pw"
    redis_proc, redis_port = start_redis(run_dir, password)
    redis = Redis(port=redis_port, password=password)
    wait_until(redis.ping, 15, "own redis up")
    config = json.loads(config_files[0].read_text())
    config["limits"]["rate"]["submit"] = {"default": None, "clients": {LIMITED_CLIENT: LIMITED_RATE}}
    folder = run_dir / "client-lib"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    env = dict(service_env, GATEWAY__QUEUE__URL=f"redis://:{password}@127.0.0.1:{redis_port}/0",
               GATEWAY_CONFIG=str(folder / "config.json"), PROMETHEUS_MULTIPROC_DIR=str(run_dir / "metrics-client-lib"))
    port = free_port()
    proc = start_gunicorn(port, env, run_dir, workers=1)
    gateway = OwnGateway(f"http://127.0.0.1:{port}", redis_proc.proc.pid, redis, vault.basic("admin"))
    wait_until(lambda: proc.alive() and requests.get(gateway.url + "/health", timeout=1).status_code == 200, 30,
               "own gateway ready")
    yield gateway
    gateway.resume_redis()
    proc.stop()
    redis_proc.stop()


@pytest.fixture
def own_gateway(own_gateway_session: OwnGateway) -> Iterator[OwnGateway]:
    """The own gateway, healthy at the start of the test (a test before may have stopped its Redis),
    and its Redis running again at the end whatever the test did."""
    own_gateway_session.healthy()
    yield own_gateway_session
    own_gateway_session.resume_redis()


class LossyProxy:
    """A TCP proxy in front of a gateway that forwards every request, and for the first `drop` requests
    starting with `prefix` reads the gateway's answer and closes the client's connection instead of
    relaying it: the request was served, the client never learns how."""

    def __init__(self, upstream_port: int, drop: int = 1, prefix: bytes = b"POST /submit") -> None:
        self.upstream_port, self.drop, self.prefix = upstream_port, drop, prefix
        self.forwarded = 0  # requests starting with `prefix` sent on to the gateway
        self.lost = 0  # answers read from the gateway and not relayed
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()
        for sock in self._sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            losing = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, losing), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, losing), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, losing: threading.Event) -> None:
        while data := _recv(client):
            if data.startswith(self.prefix):
                with self._lock:
                    self.forwarded += 1
                    if self.drop > 0:
                        self.drop -= 1
                        losing.set()
            upstream.sendall(data)
        _close(upstream)

    def _answers(self, upstream: socket.socket, client: socket.socket, losing: threading.Event) -> None:
        while data := _recv(upstream):
            if losing.is_set():
                with self._lock:
                    self.lost += 1
                break
            client.sendall(data)
        _close(client)
        _close(upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def lossy_proxy(gateway_url: str, worker) -> Iterator:
    """lossy_proxy(drop=1) -> a LossyProxy in front of the session gateway."""
    made: list[LossyProxy] = []

    def make(drop: int = 1) -> LossyProxy:
        made.append(LossyProxy(int(gateway_url.rsplit(":", 1)[1]), drop))
        return made[-1]
    yield make
    for proxy in made:
        proxy.close()
