"""Webhook verification with the client library against real deliveries from the gateway's webhook
worker: the signature checks out exactly as the gateway signs, and any change to body, secret, time or
task is refused; a delivery to a client rotating its secret verifies with either secret alone. The
receiver example in docs/api.md is run as it is written."""
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
from jobgateway_client import BasicAuth, Client, WebhookVerificationError, content_from_bytes
from jobgateway_client.webhooks import parse_signatures, sign, verify_delivery, verify_signature
from tests.support.receiver import Receiver


@pytest.fixture
def delivered(admin, webhook_secret):
    """A real delivery (headers, raw body) of a done calc_hash task, and that task's TaskInfo."""
    return deliver(admin, b"hook")


def deliver(client: Client, content: bytes):
    """Submit a calc_hash job with a callback to a fresh receiver; its delivery (headers, raw body) and TaskInfo."""
    receiver = Receiver()
    try:
        task = client.submit("calc_hash", {"content": content_from_bytes(content)}, callback_url=receiver.url)
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
    elif change == "signature":  # both headers carry the one signature: alter it in both
        changed = headers["X-Gateway-Signature"][:-1] + ("1" if headers["X-Gateway-Signature"][-1] == "0" else "0")
        headers["X-Gateway-Signature"] = headers["X-Gateway-Signatures"] = changed
    elif change in ("old", "future"):
        now = stamp + 301 if change == "old" else stamp - 301  # outside the 300 s window either way
    elif change == "task":
        headers["X-Gateway-Task"] = "6f1c0000-0000-4000-8000-000000000000"
    elif change == "unsigned":
        del headers["X-Gateway-Signature"], headers["X-Gateway-Signatures"]
    elif change == "timestamp":  # a timestamp that int() would take, signed as such: still not the gateway's form
        headers["X-Gateway-Timestamp"] = f" {stamp}"
        headers["X-Gateway-Signature"] = headers["X-Gateway-Signatures"] = sign(secret, stamp, body)
    with pytest.raises(WebhookVerificationError):
        verify_delivery(secret, headers, body, now=now)


def test_verify_delivery_accepts_the_window_edges(delivered, webhook_secret):
    headers, body, info = delivered
    stamp = int(headers["X-Gateway-Timestamp"])
    assert verify_delivery(webhook_secret, headers, body, now=stamp + 300) == info
    assert verify_delivery(webhook_secret, headers, body, now=stamp - 300) == info


@pytest.fixture
def rotating_delivery(gateway_url, worker, vault):
    """A real delivery (headers, raw body) to client-service-2, which has an old and a new secret."""
    with Client(gateway_url, BasicAuth(*vault.basic("service2"))) as client:
        return deliver(client, b"rotate")


def test_a_delivery_during_rotation_verifies_with_either_secret_alone(rotating_delivery, rotating_webhook_secrets):
    headers, body, info = rotating_delivery
    old, new = rotating_webhook_secrets
    assert len(parse_signatures(headers["X-Gateway-Signatures"])) == 2
    assert verify_delivery(old, headers, body) == info
    assert verify_delivery(new.encode(), headers, body) == info
    assert verify_delivery([new, old], headers, body) == info
    with pytest.raises(WebhookVerificationError):
        verify_delivery(["another-secret-entirely", "and-another-one-too"], headers, body)


def test_a_delivery_during_rotation_still_verifies_from_the_single_header_with_the_old_secret(
        rotating_delivery, rotating_webhook_secrets):
    """A receiver (or a proxy) that knows only X-Gateway-Signature: it carries the first secret's signature."""
    headers, body, info = rotating_delivery
    old, new = rotating_webhook_secrets
    single = {name: value for name, value in headers.items() if name.lower() != "x-gateway-signatures"}
    assert verify_delivery(old, single, body) == info
    with pytest.raises(WebhookVerificationError):
        verify_delivery(new, single, body)


@pytest.mark.parametrize("change", ["body", "held_signature", "both_missing", "garbage", "empty", "too_many",
                                    "upper_hex", "list_header_wins"])
def test_a_changed_delivery_during_rotation_is_refused(rotating_delivery, rotating_webhook_secrets, change):
    headers, body, _ = rotating_delivery
    headers, new = dict(headers), rotating_webhook_secrets[1]
    stamp = int(headers["X-Gateway-Timestamp"])
    first, second = parse_signatures(headers["X-Gateway-Signatures"])
    if change == "body":
        body = body.replace(b'"done"', b'"error"')
    elif change == "held_signature":  # the new secret's signature altered; the old one's still genuine
        headers["X-Gateway-Signatures"] = f"{first},{second[:-1]}{'1' if second[-1] == '0' else '0'}"
    elif change == "both_missing":
        del headers["X-Gateway-Signatures"], headers["X-Gateway-Signature"]
    elif change == "garbage":
        headers["X-Gateway-Signatures"] = f"{first},{second},nonsense"
    elif change == "empty":
        headers["X-Gateway-Signatures"] = ""
    elif change == "too_many":
        headers["X-Gateway-Signatures"] = ",".join([second] * 9)
    elif change == "upper_hex":
        headers["X-Gateway-Signatures"] = f"{first},{second.upper().replace('SHA256', 'sha256')}"
    elif change == "list_header_wins":  # the single header is not consulted when the list is there
        headers["X-Gateway-Signatures"] = first
        headers["X-Gateway-Signature"] = sign(new, stamp, body)
    with pytest.raises(WebhookVerificationError):
        verify_delivery(new, headers, body)


@pytest.mark.parametrize("value", [
    "sha256=" + "a" * 64,
    "sha256=" + "a" * 64 + ",sha256=" + "b" * 64,
    "sha256=" + "a" * 64 + " , sha256=" + "b" * 64,
], ids=["one", "two", "spaced"])
def test_parse_signatures_takes_one_or_several(value):
    assert parse_signatures(value) == [part.strip() for part in value.split(",")]


@pytest.mark.parametrize("value", [
    "", ",", "sha256=", "sha256=" + "a" * 63, "sha256=" + "A" * 64, "sha1=" + "a" * 40, "v1=" + "a" * 64,
    "sha256=" + "a" * 64 + ",", "sha256=" + "a" * 64 + ";sha256=" + "b" * 64, ",".join(["sha256=" + "a" * 64] * 9),
], ids=["empty", "comma", "no-hex", "short", "upper", "sha1", "v1", "trailing", "semicolon", "nine"])
def test_parse_signatures_refuses_anything_else(value):
    with pytest.raises(ValueError):
        parse_signatures(value)


def test_verify_signature_takes_a_list_of_secrets_and_a_list_header():
    body, stamp = b'{"uuid":"x"}', 1_700_000_000
    old, new = "old-secret-0123456789", "new-secret-0123456789"
    both = f"{sign(old, stamp, body)},{sign(new, stamp, body)}"
    for secrets in (old, new, [old], [new, old], (b"unknown-secret-000000", new.encode())):
        assert verify_signature(secrets, str(stamp), body, both, now=stamp)
    assert verify_signature(new, str(stamp), body, sign(new, stamp, body), now=stamp)  # the single header's form
    assert not verify_signature([], str(stamp), body, both, now=stamp)
    assert not verify_signature("unknown-secret-000000", str(stamp), body, both, now=stamp)
    assert not verify_signature(new, str(stamp), body, sign(old, stamp, body), now=stamp)


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
