"""Pure pieces of the gateway: cursors, the callback host allow-list, the caches, log escaping, the
auth metric's reasons, credentials parsing, the backoff formula."""
from __future__ import annotations

import base64
import time

import pytest

from gateway.access.credentials import parse_authorization
from gateway.access.decorators import metric_reason
from gateway.access.identity import AuthFailed, Identity, TtlCache
from gateway.http.errors import ValidationFailed
from gateway.submission.callbacks import host_allowed
from gateway.submission.listing import decode_cursor, encode_cursor
from jobs.ids import canonical_uuid
from jobs.retry import backoff
from settings.logs import escaped

UUID = "6f1c0d3e-8a9b-4c2d-9e1f-0a1b2c3d4e5f"


def test_cursor_round_trips():
    assert decode_cursor(encode_cursor((1795468337.123456, UUID))) == (1795468337.123456, UUID)


@pytest.mark.parametrize("text", ["garbage", base64.urlsafe_b64encode(b"nan|" + UUID.encode()).decode(),
                                  base64.urlsafe_b64encode(b"1.0|not-a-uuid").decode(), "\u00e9\u00e9"])
def test_a_cursor_this_api_did_not_hand_out_is_a_400(text):
    with pytest.raises(ValidationFailed):
        decode_cursor(text)


@pytest.mark.parametrize(("host", "port", "allowed", "expected"), [
    ("hooks.example", None, ["hooks.example"], True),
    ("HOOKS.example.", None, ["hooks.example"], True),
    ("a.hooks.example", None, ["*.hooks.example"], True),
    ("hooks.example", None, ["*.hooks.example"], False),
    ("evilhooks.example", None, ["*.hooks.example"], False),
    ("hooks.example", 8443, ["hooks.example:443"], False),
    ("hooks.example", 443, ["hooks.example:443"], True),
    ("127.0.0.1", None, [], False),
])
def test_callback_host_allow_list(host, port, allowed, expected):
    assert host_allowed(host, port, allowed) is expected


def test_ttl_cache_expires_and_stays_bounded():
    cache: TtlCache[Identity] = TtlCache(limit=3)
    who = Identity("c", "service")
    cache.put("short", who, 0.05)
    cache.put("none", who, 0)
    assert cache.get("short") == who and cache.get("none") is None
    deadline = time.monotonic() + 5
    while cache.get("short") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get("short") is None
    for key in "abcd":
        cache.put(key, who, 60)
    assert cache.get("a") is None and all(cache.get(k) == who for k in "bcd")


@pytest.mark.parametrize(("raw", "logged"), [
    ("/submit\nGET /forged 200", "/submit\\nGET /forged 200"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("back\\slash", "back\\\\slash"),
    ("line\u2028sep", "line\\u2028sep"),
    ("lone\ud800", "lone\\ud800"),
])
def test_request_values_are_escaped_for_the_log(raw, logged):
    assert escaped(raw) == logged and "\n" not in escaped(raw)


def test_auth_metric_reasons_collapse_to_a_fixed_set():
    assert {metric_reason(r) for r in ("missing_or_malformed", "bad_username", "jwt_signature", "jwt_expired")} == {
        "local_reject"}
    assert metric_reason("vault_no_auth") == metric_reason("vault_refused") == "vault_refused"
    assert metric_reason("config_unreadable") == metric_reason("anything new") == "other"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer a.b", "Basic !!", "Basic " + base64.b64encode(b"u:").decode(),
                                    "Basic " + base64.b64encode(b"../x:pw").decode(), "Digest x"])
def test_malformed_credentials_are_auth_failures(header):
    with pytest.raises(AuthFailed):
        parse_authorization(header)


def test_usernames_are_lower_cased_and_kept_apart_from_passwords():
    credential = parse_authorization("Basic " + base64.b64encode(b"Alice:pa:ss").decode())
    assert (credential.username, credential.secret) == ("alice", "pa:ss")


@pytest.mark.parametrize("text", ["nope", "", "6f1c0d3e8a9b4c2d9e1f0a1b2c3d4e5g"])
def test_only_uuids_name_tasks(text):
    assert canonical_uuid(text) is None
    assert canonical_uuid(UUID.upper()) == UUID


def test_backoff_is_exponential_capped_and_jittered():
    assert [backoff(n, 1.0, 10.0, jitter=False) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert all(2.0 <= backoff(2, 1.0, 10.0) <= 4.0 for _ in range(50))
