"""The reference Node worker (examples/node-worker/, issue 22) run with `node` against the live stack: it
leases calc_hash jobs over the HTTP worker API and they read `done` with hashlib's digests; SIGTERM lets
it finish its job and exit 0; a job whose worker is SIGKILLed mid-job ends done through another worker.

Queues `http_only` and `http_short` are consumed by no Celery worker (tests/conftest.py). `node` is
required, never skipped: scripts/bootstrap.sh installs it."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from devsupport.processes import ROOT, Process, free_port, start_gunicorn, wait_until
from tests.support.api import Api, b64
from tests.support.vault import SeededVault

WORKER = ROOT / "examples" / "node-worker" / "worker.mjs"
VISIBILITY = 10  # workers.http_lease of the short-lease gateway: an HTTP lease's length
SWEEP = 5  # gateway/workers/leasing.py SWEEP_EVERY: a gateway process sweeps lapsed deliveries this often


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not installed: scripts/bootstrap.sh installs it (apt-get install nodejs)")
    return found


StartWorker = Callable[..., Process]


@pytest.fixture
def node_worker(vault: SeededVault, run_dir: Path) -> Iterator[StartWorker]:
    """start(url, name, **env) -> the reference worker as the system identity; all stopped at the end."""
    started: list[Process] = []
    user, password = vault.basic("system")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY", "WORKER_", "VAULT_", "BAO_"))}

    def start(url: str, name: str, **env: str) -> Process:
        settings = {"GATEWAY_URL": url, "WORKER_NAME": name, "WORKER_USER": user, "WORKER_PASSWORD": password,
                    "QUEUE": "http_only", "JOB_TYPES": "calc_hash_http", "WAIT": "2", **env}
        proc = Process(f"node-{name}", [node(), str(WORKER)], base | settings, run_dir)
        started.append(proc)
        wait_until(lambda: "started" in proc.output() or not proc.alive(), 15, f"node worker {name} started")
        assert proc.alive(), proc.output()
        return proc

    yield start
    # SIGTERM: a worker lets its long poll end before it exits. A SIGKILL would leave the poll to the
    # gateway, which may lease the next test's job to it (a lease nobody holds, until it lapses).
    for proc in started:
        proc.stop()


def expected(content: bytes, algorithms: list[str] | None) -> dict:
    return {"size": len(content),
            "digests": {name: hashlib.new(name, content).hexdigest() for name in algorithms or ["sha256"]}}


def exits(proc: Process, timeout: float) -> int:
    wait_until(lambda: not proc.alive(), timeout, f"{proc.name} exits")
    return proc.proc.returncode


def test_node_worker_results_match_hashlib(api: Api, gateway_url: str, node_worker: StartWorker,
                                           vault: SeededVault) -> None:
    cases = [(b"hello node", None), (b"\x00\xff" * 3000, ["md5"]), (os.urandom(70_000), ["sha1", "sha512"]),
             (b"blake", ["blake2b", "sha256", "md5"]),
             (os.urandom(999), ["sha256", "md5", "sha1", "sha512", "blake2b"])]
    worker = node_worker(gateway_url, "node-hash", CONCURRENCY="2")
    tasks = {}
    for content, algorithms in cases:
        upload = {"content": b64(content), **({"algorithms": algorithms} if algorithms else {})}
        tasks[api.submitted("calc_hash_http", upload)] = (content, algorithms)
    for task, (content, algorithms) in tasks.items():
        assert api.wait_status(task, "done", "error")["result"] == expected(content, algorithms)

    os.kill(worker.proc.pid, signal.SIGTERM)
    assert exits(worker, 20) == 0
    output = worker.output()
    for task in tasks:
        assert sum(task in line and "done" in line for line in output.splitlines()) == 1, output
    # Never a payload or a credential in its log.
    assert vault.basic("system")[1] not in output
    assert not any(b64(content)[:16] in output for content, _ in tasks.values())


def test_node_worker_finishes_its_job_on_sigterm(api: Api, gateway_url: str, node_worker: StartWorker) -> None:
    worker = node_worker(gateway_url, "node-term", WORK_DELAY_MS="1500")
    task = api.submitted("calc_hash_http", {"content": b64(b"finish me first")})
    api.wait_status(task, "pending")  # leased: the worker is in its delay
    os.kill(worker.proc.pid, signal.SIGTERM)
    assert exits(worker, 20) == 0
    assert api.taskinfo(task).json()["result"] == expected(b"finish me first", None)


@pytest.fixture(scope="module")
def short_lease_gateway(service_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    """A gateway of its own whose leases last VISIBILITY seconds, so a dead worker's job comes back soon."""
    port = free_port()
    env = dict(service_env, GATEWAY__WORKERS__HTTP_LEASE=str(VISIBILITY),
               PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"metrics-short-{port}"))
    proc = start_gunicorn(port, env, run_dir, workers=1)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200,
               30, "short-lease gateway ready")
    yield url
    proc.stop(signal.SIGINT)


def test_a_job_of_a_sigkilled_node_worker_ends_done_through_another(
        api: Api, short_lease_gateway: str, node_worker: StartWorker, gateway_log: Path) -> None:
    short = {"QUEUE": "http_short", "JOB_TYPES": "calc_hash_http_short"}
    first = node_worker(short_lease_gateway, "node-doomed", WORK_DELAY_MS="60000", **short)
    content = b"outlive your worker"
    task = api.submitted("calc_hash_http_short", {"content": b64(content), "algorithms": ["sha256", "blake2b"]})
    api.wait_status(task, "pending")
    first.stop(signal.SIGKILL)  # mid-job: leased, in its delay, not finished
    assert api.taskinfo(task).json()["status"] in ("pending", "created")

    second = node_worker(short_lease_gateway, "node-heir", **short)
    info = api.wait_status(task, "done", "error", timeout=VISIBILITY + SWEEP + 30)
    assert info["status"] == "done" and info["result"] == expected(content, ["sha256", "blake2b"])
    log = gateway_log.read_text(errors="replace")
    assert f"lease: task {task} to HTTP worker node-doomed (attempt 1)" in log
    assert f"lease: task {task} to HTTP worker node-heir (attempt 2)" in log
    assert f"job {task} (calc_hash_http_short, attempt 2): done" in second.output()


def test_node_worker_authenticates_with_a_jwt(api: Api, gateway_url: str, node_worker: StartWorker,
                                              vault: SeededVault) -> None:
    token = vault.jwt("gateway-system-jwt", "system")
    worker = node_worker(gateway_url, "node-jwt", WORKER_TOKEN=token, WORKER_USER="", WORKER_PASSWORD="")
    task = api.submitted("calc_hash_http", {"content": b64(b"bearer")})
    assert api.wait_status(task, "done", "error")["result"] == expected(b"bearer", None)
    assert token not in worker.output()


def test_node_worker_heartbeats_keep_a_job_longer_than_its_lease(
        api: Api, short_lease_gateway: str, node_worker: StartWorker, gateway_log: Path) -> None:
    worker = node_worker(short_lease_gateway, "node-slow", WORK_DELAY_MS=str((VISIBILITY + 4) * 1000))
    task = api.submitted("calc_hash_http", {"content": b64(b"slow and steady")})
    info = api.wait_status(task, "done", "error", timeout=VISIBILITY + 30)
    assert info["result"] == expected(b"slow and steady", None)
    assert gateway_log.read_text(errors="replace").count(f"lease: task {task} to HTTP worker") == 1
    assert f"job {task} (calc_hash_http, attempt 1): done" in worker.output()


def test_node_worker_drops_a_job_cancelled_while_it_works(
        api: Api, short_lease_gateway: str, node_worker: StartWorker) -> None:
    worker = node_worker(short_lease_gateway, "node-cancelled", WORK_DELAY_MS="30000")
    task = api.submitted("calc_hash_http", {"content": b64(b"never mind")})
    api.wait_status(task, "pending")
    assert api.request("DELETE", f"/tasks/{task}").status_code == 202
    wait_until(lambda: f"job {task} (calc_hash_http, attempt 1): abandoned: cancelled" in worker.output(),
               VISIBILITY, "the worker drops the job at its next heartbeat")
    assert api.wait_status(task, "error")["code"] == 4


def test_node_worker_drops_a_job_past_its_time_limit_and_goes_on(
        api: Api, short_lease_gateway: str, node_worker: StartWorker) -> None:
    short = {"QUEUE": "http_short", "JOB_TYPES": "calc_hash_http_short"}
    worker = node_worker(short_lease_gateway, "node-late", WORK_DELAY_MS="9000", **short)
    late = api.submitted("calc_hash_http_short", {"content": b64(b"too slow")})  # time_limit 4
    info = api.wait_status(late, "error", "done", timeout=VISIBILITY + 10)
    assert (info["status"], info["code"]) == ("error", 5)
    wait_until(lambda: f"job {late} (calc_hash_http_short, attempt 1): abandoned: timed_out" in worker.output(),
               5, "the worker's log says it dropped the job")
    assert worker.alive()


def test_node_worker_waits_out_a_gateway_not_up_yet(
        api: Api, service_env: dict[str, str], run_dir: Path, node_worker: StartWorker) -> None:
    port = free_port()
    worker = node_worker(f"http://127.0.0.1:{port}", "node-early")
    wait_until(lambda: "lease: no answer" in worker.output(), 10, "a lease without an answer")
    gateway = start_gunicorn(port, dict(service_env, PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"metrics-late-{port}")),
                             run_dir, workers=1)
    try:
        task = api.submitted("calc_hash_http", {"content": b64(b"better late")})
        info = api.wait_status(task, "done", "error", timeout=60)
        assert info["result"] == expected(b"better late", None)
        assert f"job {task} (calc_hash_http, attempt 1): done" in worker.output()
    finally:
        gateway.stop(signal.SIGINT)
