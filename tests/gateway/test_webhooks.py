"""Completion webhooks: a local receiver gets the signed TaskInfo; failures are retried; bad hosts refused."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devsupport.processes import wait_until
from jobs.webhooks import verify
from tests.support.api import b64


class Receiver:
    """A real HTTP server on a free port recording every delivery; can refuse the first N."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((dict(self.headers), body))
                self.send_response(500 if len(receiver.deliveries) <= receiver.fail_first else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(fail_first: int = 0) -> Receiver:
        made.append(Receiver(fail_first))
        return made[-1]
    yield make
    for r in made:
        r.close()


def test_done_job_posts_signed_taskinfo(api, receiver, webhook_secret):
    hook = receiver()
    task_id = api.submitted("calc_hash", {"content": b64(b"webhook me")}, callback_url=hook.url)
    info = api.wait_status(task_id, "done")
    headers, body = wait_until(lambda: hook.deliveries and hook.deliveries[0], 30, "webhook delivered")
    assert json.loads(body) == info  # exactly what /taskinfo says
    assert verify(webhook_secret, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])
    assert not verify("some-other-secret-value", headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])
    assert not verify(webhook_secret, headers["X-Gateway-Timestamp"], body + b" ", headers["X-Gateway-Signature"])


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
