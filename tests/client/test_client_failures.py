"""The client library under failure, by real means: a JWT that Vault stops accepting between two
calls, a tight real rate limit, a gateway whose Redis is stopped (SIGSTOP), nothing listening, and a
proxy that loses the answer to a submit the gateway served. Each ends bounded: the call succeeds on a
repeat that is safe, or raises a typed error by its deadline."""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from devsupport.processes import free_port, wait_until
from jobgateway_client import (
    AuthenticationError,
    Client,
    GatewayUnavailable,
    RateLimited,
    RetryPolicy,
    TokenProvider,
    content_from_bytes,
)
from tests.client.conftest import EXPIRES_IN, LIMITED_CLIENT, LIMITED_RATE, expiring_claims
from tests.support.ratewindows import clear_of_window_edge

UPLOAD = {"content": content_from_bytes(b"failure")}


def test_token_provider_logs_in_again_when_a_short_lived_jwt_expires(gateway_url, worker, vault, retries):
    client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
    issued: list[str] = []

    def fetch() -> str:
        claims = expiring_claims() if not issued else {}
        issued.append(vault.jwt(client_id=client_id, client_role="service", **claims))
        return issued[-1]
    with Client(gateway_url, TokenProvider(fetch), on_retry=retries) as client:
        task = client.submit("calc_hash", UPLOAD)  # with the first, short-lived token
        wait_until(lambda: requests.get(f"{gateway_url}/taskinfo", params={"taskid": task.uuid}, timeout=5,
                                        headers={"Authorization": "Bearer " + issued[0]}).status_code == 401,
                   EXPIRES_IN + 15, "the first token refused")
        info = client.wait(task.uuid, timeout=30)  # 401 with the first token, then the second
    assert info.done and len(issued) == 2
    assert retries.reasons == ["re-login"] and retries[0].error.status == 401


def test_token_provider_whose_tokens_are_refused_raises_after_one_re_login(gateway_url, worker, vault, retries):
    calls: list[int] = []

    def fetch() -> str:
        calls.append(1)
        return vault.jwt(client_id="client-lib-refused", key=vault.other_private_key)  # signed by a key Vault does not trust
    with Client(gateway_url, TokenProvider(fetch), on_retry=retries) as client, pytest.raises(AuthenticationError) as refused:
        client.submit("calc_hash", UPLOAD)
    assert len(calls) == 2 and refused.value.status == 401 and retries.reasons == ["re-login"]


def test_rate_limited_submit_waits_retry_after_and_is_accepted(own_gateway, vault, retries):
    token = vault.jwt(client_id=LIMITED_CLIENT, client_role="service")
    with Client(own_gateway.url, token, on_retry=retries, retry=RetryPolicy(deadline=10)) as client:
        clear_of_window_edge(1, 0.9)  # both submits in one clock-aligned window (gateway/access/ratelimit.py)
        first = client.submit("calc_hash", UPLOAD)
        retries.clear()  # only the second submit's repeats count below
        started = time.monotonic()
        second = client.submit("calc_hash", UPLOAD)  # within the same second: 429, Retry-After
        waited = time.monotonic() - started
    assert first.new and second.new and second.uuid != first.uuid
    assert retries.reasons[0] == "rate limited" and retries[0].error.status == 429
    assert retries[0].delay == retries[0].error.retry_after >= 1
    assert waited >= retries[0].delay


def test_rate_limit_past_the_deadline_raises_rate_limited_with_retry_after(own_gateway, vault, retries):
    token = vault.jwt(client_id=LIMITED_CLIENT, client_role="service")
    with Client(own_gateway.url, token, on_retry=retries, retry=RetryPolicy(deadline=0.5)) as client:
        clear_of_window_edge(1, 0.9)  # both submits in one clock-aligned window (gateway/access/ratelimit.py)
        try:
            client.submit("calc_hash", UPLOAD)
        except RateLimited:
            pass  # the previous test's submits may still count: either way the next one is refused
        with pytest.raises(RateLimited) as limited:
            client.submit("calc_hash", UPLOAD)
    assert limited.value.status == 429 and limited.value.retry_after >= 1
    assert limited.value.message == f"Rate limit exceeded: {LIMITED_RATE}"
    assert "rate limited" not in retries.reasons  # Retry-After does not fit in the deadline: not waited


def test_unavailable_gateway_is_retried_then_raises_a_clear_error_by_the_deadline(own_gateway, vault, retries):
    deadline = 3.0
    with Client(own_gateway.url, vault.basic("admin"), on_retry=retries, retry=RetryPolicy(deadline=deadline)) as client:
        client.submit("calc_hash", UPLOAD)  # the save script is loaded and connections are open
        own_gateway.stop_redis()
        started = time.monotonic()
        with pytest.raises(GatewayUnavailable) as unavailable:
            client.submit("calc_hash", UPLOAD)
        elapsed = time.monotonic() - started
    final = unavailable.value
    assert (final.status, final.code) == (503, 503)
    assert final.message == "Broker unavailable" or "may have been queued" in final.message
    assert len(retries) >= 2 and set(retries.reasons) == {"unavailable"}
    assert elapsed < deadline + 10  # no repeat starts after the deadline; the last has its request timeout
    # The first attempt reached the stopped Redis: its outcome is unknown. Whatever the last attempt met
    # (the breaker's fast 503, or a probe's own unknown outcome), the error says a task may exist.
    assert retries[0].error.outcome_unknown and final.outcome_unknown


def test_submit_with_unknown_outcome_is_retried_with_the_same_key_into_the_same_task(own_gateway, vault, retries):
    """Redis stopped while the save script is in flight: 503 "may have been queued" with the uuid.
    Redis resumes (from the retry hook, so the next attempt meets it running) and runs the script; the
    repeat carries the same key and is answered 200 with that uuid: one task, not two."""
    client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
    token = vault.jwt(client_id=client_id, client_role="service")

    def resume(event) -> None:
        retries(event)
        own_gateway.resume_redis()
    with Client(own_gateway.url, token, on_retry=resume, retry=RetryPolicy(deadline=30)) as client:
        client.submit("calc_hash", {"content": content_from_bytes(b"warm up")})
        own_gateway.stop_redis()
        task = client.submit("calc_hash", UPLOAD)
        listed = [row.uuid for row in client.tasks()]
    first = retries[0].error
    assert first.status == 503 and "may have been queued" in first.message and first.uuid == task.uuid
    assert task.new is False  # the repeat found the task the unanswered attempt made
    assert len(listed) == 2 and task.uuid in listed  # the warm-up and this one: no second job


def test_submit_whose_answer_is_lost_is_retried_into_the_same_task(lossy_proxy, gateway_url, vault, retries):
    proxy = lossy_proxy(drop=1)
    client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
    with Client(proxy.url, vault.jwt(client_id=client_id, client_role="service"), on_retry=retries) as client:
        task = client.submit("calc_hash", UPLOAD)
        info = task.wait(timeout=30)
        listed = [row.uuid for row in client.tasks()]
    assert (proxy.forwarded, proxy.lost) == (2, 1)  # the gateway served the submit twice, one answer lost
    assert retries.reasons == ["connection"]
    assert task.new is False and listed == [task.uuid] and info.done  # one job


def test_nothing_listening_is_retried_until_the_deadline_then_unavailable(retries):
    with Client(f"http://127.0.0.1:{free_port()}", ("admin", "pw"), on_retry=retries,
                retry=RetryPolicy(deadline=1.0)) as client:
        started = time.monotonic()
        with pytest.raises(GatewayUnavailable) as unavailable:
            client.get(str(uuid.uuid4()))
        elapsed = time.monotonic() - started
    assert unavailable.value.status is None and "ConnectError" in unavailable.value.message
    assert len(retries) >= 2 and set(retries.reasons) == {"connection"} and elapsed < 2.0
