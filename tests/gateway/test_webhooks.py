"""Completion webhooks: a local receiver gets the signed TaskInfo; failures are retried; bad hosts
refused; the worker that delivers them runs as compose starts it; hostile receivers (huge or dripping
answers) cannot hold it for long or grow it."""
from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable

import pytest

from devsupport.deployment import compose_argv
from devsupport.processes import wait_until
from devsupport.procfs import children, cmdline, environ, status_kib
from jobs import webhooks
from jobs.webhooks import verify
from tests.support.api import b64


def test_done_job_posts_signed_taskinfo(api, receiver, webhook_secret):
    hook = receiver()
    task_id = api.submitted("calc_hash", {"content": b64(b"webhook me")}, callback_url=hook.url)
    info = api.wait_status(task_id, "done")
    headers, body = wait_until(lambda: hook.deliveries and hook.deliveries[0], 30, "webhook delivered")
    assert json.loads(body) == info  # exactly what /taskinfo says
    assert verify(webhook_secret, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])
    assert not verify("some-other-secret-value", headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])
    assert not verify(webhook_secret, headers["X-Gateway-Timestamp"], body + b" ", headers["X-Gateway-Signature"])
    # One secret: the list header holds that one signature, the same as the header receivers knew before.
    assert headers["X-Gateway-Signatures"] == headers["X-Gateway-Signature"]


def test_a_client_rotating_its_secret_gets_a_signature_for_each(api_as, receiver, rotating_webhook_secrets):
    old, new = rotating_webhook_secrets
    hook = receiver()
    task_id = api_as("service2").submitted("calc_hash", {"content": b64(b"rotate me")}, callback_url=hook.url)
    headers, body = wait_until(lambda: hook.deliveries and hook.deliveries[0], 30, "webhook delivered")
    stamp = int(headers["X-Gateway-Timestamp"])
    assert json.loads(body)["uuid"] == task_id
    # The single header is the first (old) secret's, exactly as before: a receiver checking it still works.
    assert headers["X-Gateway-Signature"] == webhooks.sign(old, stamp, body)
    assert headers["X-Gateway-Signatures"] == f"{webhooks.sign(old, stamp, body)},{webhooks.sign(new, stamp, body)}"
    for secret in (old, new, [new, old]):
        assert verify(secret, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signatures"])
    assert not verify(new, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])
    assert not verify("some-other-secret-value", headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signatures"])


def test_error_job_posts_too_and_failed_deliveries_are_retried(api, receiver, webhook_secret):
    hook = receiver(fail_first=2)
    task_id = api.submitted("resize_image", {"content": b64(b"not an image"), "width": 3}, callback_url=hook.url)
    api.wait_status(task_id, "error")
    wait_until(lambda: len(hook.deliveries) >= 3, 30, "delivered after two refusals")
    bodies = [json.loads(body) for _, body in hook.deliveries]
    assert all(b["uuid"] == task_id and b["status"] == "error" and b["code"] == 2 for b in bodies)
    headers, body = hook.deliveries[-1]
    assert verify(webhook_secret, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])


@pytest.mark.parametrize(("url", "reason"), [
    ("http://10.0.0.1/hook", "Host is not allowed for callbacks."),
    ("http://169.254.169.254/latest/meta-data", "Host is not allowed for callbacks."),
    ("http://localhost/hook", "Host is not allowed for callbacks."),
    ("file:///etc/passwd", "Must be an http or https URL."),
    ("http://user:pw@127.0.0.1/hook", "Must not carry credentials."),
    ("http://hooks.example/x", "Host is not allowed for callbacks."),
    ("not a url", "Must be an http or https URL."),
])
def test_callbacks_outside_the_allowed_hosts_are_refused_at_submit(api, redis_client, url, reason):
    queued = redis_client.llen("hash")
    response = api.submit("calc_hash", {"content": b64(b"x")}, callback_url=url)
    assert response.status_code == 400
    assert response.json()["errors"] == {"callback_url": [reason]}
    assert redis_client.llen("hash") == queued


def test_wildcard_hosts_match_subdomains(api):
    assert api.submit("calc_hash_parked", {"content": b64(b"x")}, callback_url="https://a.hooks.example/cb").status_code == 202


def test_a_client_without_a_webhook_secret_is_refused(api_as):
    response = api_as("service").submit("calc_hash", {"content": b64(b"x")}, callback_url="http://127.0.0.1:9/h")
    assert response.status_code == 400
    assert response.json()["errors"] == {"callback_url": ["No webhook secret is configured for this client."]}


def test_a_worker_started_exactly_as_compose_starts_it_delivers_webhooks(api, receiver, webhook_worker, worker):
    pid = webhook_worker.proc.pid
    argv = compose_argv("worker-webhooks")
    assert cmdline(pid)[-len(argv):] == argv
    assert "PYTHONPATH" not in environ(pid) and "PYTHONPATH" not in environ(worker.proc.pid)
    hook = receiver()
    task_id = api.submitted("calc_hash", {"content": b64(b"parity")}, callback_url=hook.url)
    api.wait_status(task_id, "done")
    wait_until(lambda: hook.deliveries, 30, "webhook delivered")
    # Only this worker consumes the webhooks queue: the delivery was its.
    wait_until(lambda: f"webhook for task {task_id} delivered" in webhook_worker.output(), 10, "its log line")


Answer = Callable[[socket.socket, threading.Event], None]


class HostileReceiver:
    """A raw HTTP receiver on 127.0.0.1: its first connection reads the request and then gets
    `answer(connection)`; every later one (a retry) a 204 at once. Records when the first one arrived
    and when the worker hung up on it."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.stop = answer, threading.Event()
        self.arrived: float | None = None
        self.gone: float | None = None
        self.retries = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        first = True
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn, first), daemon=True).start()
            first = False

    def _handle(self, conn: socket.socket, first: bool) -> None:
        with conn:
            _read_request(conn)
            if not first:
                self.retries += 1
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                return
            self.arrived = time.monotonic()
            try:
                self.answer(conn, self.stop)
            except OSError:
                pass
            self.gone = time.monotonic()

    def close(self) -> None:
        self.stop.set()
        self.server.close()


def _read_request(conn: socket.socket) -> None:
    """Read the worker's request (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b"\r\n\r\n"  # a hang-up ends the request too
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def huge(sent: list[int], total: int = 200 * 1024 * 1024) -> Answer:
    """A 200 answer with a 200 MB body, written as fast as the worker takes it; counts what it wrote."""
    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        chunk = bytes(1024 * 1024)
        while sent[0] < total and not stop.is_set():
            conn.sendall(chunk)
            sent[0] += len(chunk)
    return answer


def dripping(conn: socket.socket, stop: threading.Event) -> None:
    """A 200 answer sent one byte every 2 s; a hang-up is seen the moment it happens."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
        conn.sendall(bytes([byte]))
        readable, _, _ = select.select([conn], [], [], 2.0)
        if stop.is_set() or (readable and not conn.recv(1)):
            return


@pytest.fixture
def hostile():
    made = []

    def make(answer: Answer) -> HostileReceiver:
        made.append(HostileReceiver(answer))
        return made[-1]
    yield make
    for r in made:
        r.close()


def pool_peaks(worker_pid: int) -> dict[int, int]:
    """Peak resident memory (KiB) of each pool process of a worker."""
    return {pid: status_kib(pid, "VmHWM") for pid in children(worker_pid)}


def test_a_huge_answer_is_read_up_to_a_small_cap_and_the_worker_does_not_grow(api, hostile, webhook_worker):
    sent = [0]
    hook = hostile(huge(sent))
    before = pool_peaks(webhook_worker.proc.pid)
    task_id = api.submitted("calc_hash", {"content": b64(b"huge answer")}, callback_url=hook.url)
    wait_until(lambda: hook.gone, webhooks.DEADLINE + 20, "the worker hangs up on the 200 MB answer")
    assert sent[0] < 50 * 1024 * 1024
    wait_until(lambda: f"webhook for task {task_id} delivered" in webhook_worker.output(), 10, "delivered (a 200)")
    after = pool_peaks(webhook_worker.proc.pid)
    grown_mib = max(after[pid] - before.get(pid, after[pid]) for pid in after) / 1024
    print(f"200 MB answer: {sent[0] / 2**20:.0f} MiB written before the hang-up, {hook.gone - hook.arrived:.2f} s, "
          f"pool peak RSS grew {grown_mib:.1f} MiB")
    assert grown_mib < 32


def test_a_dripping_answer_is_cut_off_at_the_delivery_deadline(api, hostile, webhook_worker):
    hook = hostile(dripping)
    task_id = api.submitted("calc_hash", {"content": b64(b"slow receiver")}, callback_url=hook.url)
    wait_until(lambda: hook.gone, webhooks.DEADLINE + 20, "the worker hangs up on the dripping answer")
    held = hook.gone - hook.arrived
    print(f"dripping answer: connection held {held:.2f} s (deadline {webhooks.DEADLINE} s)")
    assert held <= webhooks.DEADLINE + 1
    wait_until(lambda: hook.retries, 30, "the delivery is retried")
    wait_until(lambda: f"webhook for task {task_id} delivered" in webhook_worker.output(), 10, "then delivered")
