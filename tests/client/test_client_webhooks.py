"""Webhook verification with the client library against real deliveries from the gateway's webhook
worker: the signature checks out exactly as the gateway signs, and any change to body, secret, time or
task is refused. The receiver example in docs/api.md is run as it is written."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from devsupport.processes import ROOT, free_port, wait_until
from jobgateway_client import WebhookVerificationError, content_from_bytes, verify_delivery, verify_signature
from jobgateway_client.webhooks import sign
from tests.gateway.test_webhooks import Receiver


@pytest.fixture
def delivered(admin, webhook_secret):
    """A real delivery (headers, raw body) of a done calc_hash task, and that task's TaskInfo."""
    receiver = Receiver()
    try:
        task = admin.submit("calc_hash", {"content": content_from_bytes(b"hook")}, callback_url=receiver.url)
        info = task.wait(timeout=30)
        headers, body = wait_until(lambda: receiver.deliveries and receiver.deliveries[0], 30, "webhook delivered")
    finally:
        receiver.close()
    return headers, body, info


def test_verify_delivery_accepts_a_real_delivery(delivered, webhook_secret):
    headers, body, info = delivered
    task = verify_delivery(webhook_secret, headers, body)
    assert task == info and task.done
    lower = {name.lower(): value for name, value in headers.items()}
    assert verify_delivery(webhook_secret.encode(), lower, body) == info  # headers in any case, secret as bytes
    assert verify_signature(webhook_secret, headers["X-Gateway-Timestamp"], body, headers["X-Gateway-Signature"])


@pytest.mark.parametrize("change", ["body", "secret", "signature", "old", "future", "task", "unsigned", "timestamp"])
def test_verify_delivery_refuses_a_changed_delivery(delivered, webhook_secret, change):
    headers, body, _ = delivered
    headers, secret, now = dict(headers), webhook_secret, None
    stamp = int(headers["X-Gateway-Timestamp"])
    if change == "body":
        body = body.replace(b'"done"', b'"error"')
    elif change == "secret":
        secret = "another-secret-entirely"
    elif change == "signature":
        headers["X-Gateway-Signature"] = headers["X-Gateway-Signature"][:-1] + "0"
    elif change in ("old", "future"):
        now = stamp + 301 if change == "old" else stamp - 301  # outside the 300 s window either way
    elif change == "task":
        headers["X-Gateway-Task"] = "6f1c0000-0000-4000-8000-000000000000"
    elif change == "unsigned":
        del headers["X-Gateway-Signature"]
    elif change == "timestamp":  # a timestamp that int() would take, signed as such: still not the gateway's form
        headers["X-Gateway-Timestamp"] = f" {stamp}"
        headers["X-Gateway-Signature"] = sign(secret, stamp, body)
    with pytest.raises(WebhookVerificationError):
        verify_delivery(secret, headers, body, now=now)


def test_verify_delivery_accepts_the_window_edges(delivered, webhook_secret):
    headers, body, info = delivered
    stamp = int(headers["X-Gateway-Timestamp"])
    assert verify_delivery(webhook_secret, headers, body, now=stamp + 300) == info
    assert verify_delivery(webhook_secret, headers, body, now=stamp - 300) == info


def documented_receiver() -> str:
    """The receiver example of docs/api.md, as written there."""
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    found = [block for block in blocks if "class Receiver(BaseHTTPRequestHandler)" in block]
    assert len(found) == 1, "docs/api.md has one receiver example"
    return found[0]


def test_documented_receiver_verifies_a_real_delivery_and_refuses_a_forgery(admin, webhook_secret, tmp_path):
    code = documented_receiver()
    assert len([line for line in code.splitlines() if line.strip()]) <= 14  # a short example, whole
    script = tmp_path / "receiver.py"
    script.write_text(code)
    port = free_port()
    env = dict(os.environ, PORT=str(port), GATEWAY_WEBHOOK_SECRET=webhook_secret)
    receiver = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(receiver.stdout), daemon=True).start()
    url = f"http://127.0.0.1:{port}/hook"
    try:
        forged = json.dumps({"uuid": "6f1c0000-0000-4000-8000-000000000000", "status": "done"}).encode()
        stamp = str(int(time.time()))
        refused = wait_until(lambda: requests.post(url, data=forged, timeout=5, headers={
            "X-Gateway-Timestamp": stamp, "X-Gateway-Signature": sign("a guess", int(stamp), forged)}).status_code,
            15, "receiver up")
        assert refused == 401
        task = admin.submit("calc_hash", {"content": content_from_bytes(b"documented")}, callback_url=url)
        info = task.wait(timeout=30)
        wait_until(lambda: any(task.uuid in line for line in lines), 30, "the receiver printed the delivery")
    finally:
        receiver.terminate()
        receiver.wait(10)
    assert [line.split() for line in lines] == [[info.uuid, "done", "0"]]
