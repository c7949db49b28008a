"""Traces from request to worker (issue 23 item 5), read back from a real OTLP/HTTP receiver: a gateway
(gunicorn) and a Celery worker of their own, started as the session's are, with tracing turned on by
the shipped settings through the environment (GATEWAY__TRACING__*), exporting to the receiver. One job
with a client's `traceparent` makes one trace, gateway and worker; without one, the gateway starts it;
a malformed or oversized one is ignored, and the request still succeeds. With tracing off (every other
gateway of the session), nothing of OpenTelemetry is imported."""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devsupport.processes import ROOT, Process, free_port, start_gunicorn, start_scheduler, start_worker, wait_until
from tests.gateway.test_http_workers import QUEUE as HTTP_QUEUE
from tests.gateway.test_http_workers import TYPE as HTTP_JOB
from tests.gateway.test_http_workers import Worker, digests, drain_queue
from tests.support.api import Api, b64
from tests.support.otlp import OtlpReceiver, Span
from tests.support.vault import SeededVault

JOB = "calc_hash_traced"  # on the `traced` queue, which only this module's worker consumes
CONTENT = b"traced content " + secrets.token_hex(8).encode()
GATEWAY, WORKER = "job-gateway", "job-gateway-worker"


@dataclass
class Traced:
    api: Api
    receiver: OtlpReceiver
    password: str


@pytest.fixture(scope="module")
def traced(service_env: dict[str, str], run_dir: Path, vault: SeededVault) -> Iterator[Traced]:
    receiver = OtlpReceiver()
    # The instrumentation's switch to record request headers: the gateway must not obey it.
    url, gateway, worker = _start_traced(
        dict(service_env, GATEWAY__TRACING__SCHEDULE_DELAY_MS="100",
             OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="Authorization,traceparent,tracestate"),
        run_dir, receiver, "traced")
    try:
        user, password = vault.basic("admin")
        yield Traced(Api(url, auth=(user, password)), receiver, password)
    finally:
        _stop(gateway, worker)
        receiver.close()


def _start_traced(env: dict[str, str], run_dir: Path, receiver: OtlpReceiver,
                  queue: str) -> tuple[str, Process, Process]:
    """A gunicorn gateway and a worker on `queue`, exporting their spans to `receiver`, once both answer."""
    env = dict(env, GATEWAY__TRACING__ENABLED="true", GATEWAY__TRACING__OTLP_ENDPOINT=receiver.endpoint)
    port = free_port()
    gateway = start_gunicorn(port, dict(env, PROMETHEUS_MULTIPROC_DIR=str(run_dir / f"metrics-{queue}")), run_dir,
                             workers=1)
    worker = start_worker(queue, queue, env, run_dir, concurrency=1)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: gateway.alive() and requests.get(url + "/health", timeout=1).status_code == 200,
                   30, f"{queue} gateway ready")
        wait_until(lambda: worker.alive() and "ready" in worker.output(), 60, f"{queue} worker ready")
    except BaseException:
        _stop(gateway, worker)
        raise
    return url, gateway, worker


def _stop(*processes: Process) -> None:
    for proc in processes:
        proc.stop()


def submitted(traced: Traced, headers: dict[str, str] | None = None) -> str:
    response = traced.api.request("POST", "/submit", json={"type": JOB, "upload": {"content": b64(CONTENT)}},
                                  headers=headers or {})
    assert response.status_code == 202, response.text
    return response.json()["uuid"]


def publish_span(traced: Traced, uuid: str) -> Span:
    """The gateway's `publish` span of task `uuid`, once exported."""
    def found() -> Span | None:
        return next((span for span in traced.receiver.spans if span.name == "publish"
                     and span.attributes.get("messaging.message.id") == uuid), None)
    return wait_until(found, 15, f"the publish span of {uuid}")


def job_trace(traced: Traced, trace_id: str) -> dict[str, Span]:
    """The spans of one job's trace by name, once the worker's have come too."""
    def complete() -> dict[str, Span] | None:
        spans = {span.name: span for span in traced.receiver.trace(trace_id)}
        return spans if {"POST /submit", "auth", "validation", "publish", "queue wait", "run/jobs.calc_hash",
                         "start check"} <= spans.keys() else None
    return wait_until(complete, 20, f"gateway and worker spans of trace {trace_id}")


def test_job_trace_continues_the_clients_traceparent(traced: Traced):
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    uuid = submitted(traced, {"traceparent": f"00-{trace_id}-{client_span}-01",
                              "tracestate": "vendor=secret-" + traced.password})
    assert traced.api.wait_status(uuid, "done")["status"] == "done"
    spans = job_trace(traced, trace_id)
    server, publish, run = spans["POST /submit"], spans["publish"], spans["run/jobs.calc_hash"]
    # The gateway's spans: the request's under the client's, auth, validation and publish under the request's.
    assert (server.service, server.kind, server.parent_id) == (GATEWAY, "SERVER", client_span)
    for name in ("auth", "validation", "publish"):
        assert (spans[name].service, spans[name].parent_id) == (GATEWAY, server.span_id), name
    assert publish.kind == "PRODUCER" and publish.attributes["messaging.message.id"] == uuid
    assert publish.attributes["messaging.destination.name"] == "traced"
    # The worker's: the job and its queue wait under the publish, the start check inside the job.
    assert (run.service, run.kind, run.parent_id) == (WORKER, "CONSUMER", publish.span_id)
    wait = spans["queue wait"]
    assert (wait.service, wait.parent_id) == (WORKER, publish.span_id)
    assert spans["start check"].parent_id == run.span_id
    assert spans["start check"].attributes["job.start_verdict"] == "run"
    assert publish.start <= wait.start < wait.end <= run.end
    # The client's tracestate went nowhere: not to the spans, not to the worker.
    assert all(span.trace_state == "" for span in spans.values())


def test_spans_record_no_credential_payload_or_query(traced: Traced):
    uuid = submitted(traced, {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
                              "User-Agent": "agent-" + "x" * 2000})
    trace_id = publish_span(traced, uuid).trace_id
    assert traced.api.taskinfo(uuid).status_code == 200
    spans = job_trace(traced, trace_id)
    recorded = json.dumps([[span.name, span.attributes] for span in spans.values()])
    assert not [key for span in spans.values() for key in span.attributes if key.startswith("http.request.header")]
    for secret in (traced.password, b64(CONTENT), CONTENT.decode(), "Basic ", "authorization"):
        assert secret not in recorded
    assert spans["POST /submit"].attributes["http.user_agent"] == ("agent-" + "x" * 2000)[:512]  # bounded
    reads = wait_until(lambda: [span for span in traced.receiver.spans if span.name == "GET /taskinfo"], 10,
                       "the taskinfo request's span")
    assert reads[0].attributes["http.target"] == "/taskinfo"  # no ?taskid=…


def test_trace_starts_at_the_gateway_without_traceparent(traced: Traced):
    uuid = submitted(traced)
    spans = job_trace(traced, publish_span(traced, uuid).trace_id)
    assert spans["POST /submit"].parent_id == ""
    assert spans["run/jobs.calc_hash"].parent_id == spans["publish"].span_id


def test_the_clients_sampled_flag_does_not_decide(traced: Traced):
    """Flags 00 (not sampled) from a client: recorded anyway at sample_ratio 1.0, in the client's trace."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    uuid = submitted(traced, {"traceparent": f"00-{trace_id}-{client_span}-00"})
    publish = publish_span(traced, uuid)
    assert publish.trace_id == trace_id
    assert job_trace(traced, trace_id)["POST /submit"].parent_id == client_span


@pytest.mark.parametrize("traceparent", [
    "garbage",
    "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # an all-zero trace id is invalid
    "00-" + "A" * 32 + "-" + "1" * 16 + "-01",  # upper case hex
    "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",  # version ff is forbidden
    "01-" + "2" * 32 + "-" + "2" * 16 + "-01-" + "x" * 400,  # a later version, over the bound
])
def test_malformed_traceparent_is_ignored(traced: Traced, traceparent: str):
    uuid = submitted(traced, {"traceparent": traceparent})
    publish = publish_span(traced, uuid)
    assert publish.trace_id not in traceparent
    server = next(span for span in traced.receiver.trace(publish.trace_id) if span.span_id == publish.parent_id)
    assert server.name == "POST /submit" and server.parent_id == ""


def test_http_worker_lease_carries_the_jobs_traceparent(traced: Traced, vault: SeededVault):
    """A worker in another language continues the trace from the lease: its parent is the publish."""
    worker = Worker(Api(traced.api.base_url, auth=vault.basic("system")), name="traced-http-worker")
    drain_queue(worker, HTTP_QUEUE)
    trace_id = secrets.token_hex(16)
    response = traced.api.request("POST", "/submit", json={"type": HTTP_JOB, "upload": {"content": b64(CONTENT)}},
                                  headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
    assert response.status_code == 202, response.text
    uuid = response.json()["uuid"]
    job = worker.leased(HTTP_QUEUE)
    assert job["uuid"] == uuid
    assert job["traceparent"] == f"00-{trace_id}-{publish_span(traced, uuid).span_id}-01"
    assert worker.finish(uuid, job["lease"]["token"], result=digests(CONTENT)).status_code == 200


def test_a_periodic_jobs_tick_is_the_root_of_its_trace(traced: Traced, service_env: dict[str, str], run_dir: Path):
    """The scheduler traces too: each tick a trace of its own, down to the job on the (tracing) worker."""
    schedule = {"traced-tick": {"type": JOB, "upload": {"content": b64(CONTENT)}, "owner": "client-traced",
                                "every": 1}}
    env = dict(service_env, GATEWAY__TRACING__ENABLED="true", GATEWAY__TRACING__OTLP_ENDPOINT=traced.receiver.endpoint,
               GATEWAY__TRACING__SCHEDULE_DELAY_MS="100", GATEWAY__SCHEDULES=json.dumps(schedule))
    scheduler = start_scheduler("traced", env, run_dir)
    try:
        def tick_with_its_job() -> dict[str, Span] | None:
            for tick in [span for span in traced.receiver.spans if span.name == "schedule tick"]:
                spans = {span.name: span for span in traced.receiver.trace(tick.trace_id)}
                if "run/jobs.calc_hash" in spans:
                    return spans
            return None
        spans = wait_until(tick_with_its_job, 30, "a tick's trace with its job")
    finally:
        scheduler.stop()
    tick, publish = spans["schedule tick"], spans["publish"]
    assert (tick.service, tick.parent_id, tick.attributes["schedule.name"]) == (f"{GATEWAY}-scheduler", "", "traced-tick")
    assert (publish.service, publish.parent_id) == (f"{GATEWAY}-scheduler", tick.span_id)
    assert spans["run/jobs.calc_hash"].parent_id == publish.span_id


def test_spans_still_held_are_exported_when_gateway_and_worker_stop(service_env: dict[str, str], run_dir: Path,
                                                                    vault: SeededVault):
    """With a batch delay longer than the test, only the flush at exit (gunicorn's worker_exit, a pool
    process's shutdown) can deliver the spans."""
    receiver = OtlpReceiver()
    # A queue of their own: the module's tracing worker consumes `traced` meanwhile.
    url, gateway, worker = _start_traced(
        dict(service_env, GATEWAY__TRACING__SCHEDULE_DELAY_MS="60000", GATEWAY__JOBS__CALC_HASH_TRACED__QUEUE="traced_flush"),
        run_dir, receiver, "traced_flush")
    try:
        api = Api(url, auth=vault.basic("admin"))
        uuid = submitted(Traced(api, receiver, ""))
        assert api.wait_status(uuid, "done")["status"] == "done"
        assert receiver.spans == []
    finally:
        _stop(gateway, worker)
    names = {(span.service, span.name) for span in receiver.spans}
    receiver.close()
    assert {(GATEWAY, "publish"), (WORKER, "run/jobs.calc_hash"), (WORKER, "queue wait")} <= names


OFF_SCRIPT = """
import json, sys
from gateway import create_app
import tasks.app, tasks.base
app = create_app()
client = app.test_client()
called = []
def profile(frame, event, arg):
    if event == "call" and "/opentelemetry/" in frame.f_code.co_filename:
        called.append(frame.f_code.co_filename)
sys.setprofile(profile)
answer = client.post("/submit", json={"type": "calc_hash_parked", "upload": {"content": "b2Zm"}},
                     headers={"Authorization": sys.argv[1], "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
sys.setprofile(None)
ours = ("opentelemetry.instrumentation", "opentelemetry.exporter", "opentelemetry.sdk.trace", "opentelemetry.propagate")
print(json.dumps([answer.status_code, called, sorted(m for m in sys.modules if m.startswith(ours))]))
"""


def test_no_opentelemetry_code_runs_when_tracing_is_off(service_env: dict[str, str], vault: SeededVault,
                                                         tmp_path: Path):
    """A gateway with tracing off (the default) serves a submit without calling any OpenTelemetry code, and
    neither it nor the worker's modules load any of the tracing parts. (redis-py 8 imports the OpenTelemetry
    SDK's metrics once, to learn whether it is installed, and records nothing unless asked.)"""
    user, password = vault.basic("admin")
    credential = "Basic " + b64(f"{user}:{password}".encode())
    env = dict(service_env, PYTHONPATH=str(ROOT), GATEWAY__LOGGING__LOG_FILE=str(tmp_path / "off.log"))
    done = subprocess.run([sys.executable, "-c", OFF_SCRIPT, credential], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    status, called, loaded = json.loads(done.stdout.splitlines()[-1])
    assert (status, called, loaded) == (202, [], [])
