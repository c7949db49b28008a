"""SPEC §4/§8: unauthenticated traffic does not reach Vault at will. Local JWT checks, the memory of
refused credentials and the failed-authentication throttle, counted with OpenBao's own audit log."""
from __future__ import annotations

import base64
import secrets
import uuid

import pytest
import requests

from devsupport import jwt as devjwt
from devsupport.processes import wait_until
from gateway import create_app
from settings import load_settings
from tests.support.api import b64, basic_header
from tests.support.ratewindows import clear_of_window_edge

SUBMISSION = {"type": "calc_hash", "upload": {"content": b64(b"guard")}}


def guarded_client(config_files, **overrides: str):
    """An in-process gateway (create_app, as wsgi.py builds it) with these GATEWAY__* overrides."""
    environ = {"GATEWAY__" + name.upper(): value for name, value in overrides.items()}
    return create_app(load_settings(*config_files, environ=environ)).test_client()


def source_header(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def denied(client, reason: str) -> float:
    """The in-process gateway's count of denied authentications with this metric reason."""
    prefix = f'gateway_auth_decisions_total{{outcome="denied",reason="{reason}"}} '
    lines = [line for line in client.get("/metrics").get_data(as_text=True).splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


@pytest.fixture(scope="module")
def throttled(config_files):
    """Low limits, and one trusted proxy hop so each test can speak from its own source address."""
    return guarded_client(config_files, limits__failed_auth__per_source="4/minute",
                          limits__failed_auth__per_username="3/minute", proxy__trusted_hops="1")


@pytest.fixture
def source() -> dict[str, str]:
    return source_header(f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}")


def test_one_garbage_token_repeated_never_reaches_vault(gateway_url, worker, vault):
    before = vault.calls()
    for _ in range(50):
        response = requests.post(gateway_url + "/submit", json=SUBMISSION, timeout=10,
                                 headers={"Authorization": "Bearer aaaa.bbbb.cccc"})
        assert response.status_code == 401
    assert vault.calls() == before


def test_tokens_signed_by_an_unknown_key_cost_vault_at_most_a_key_reread(gateway_url, worker, vault):
    stranger, _ = devjwt.new_key_pair()
    before_logins, before_calls = vault.logins(), vault.calls()
    for _ in range(40):
        response = requests.post(gateway_url + "/submit", json=SUBMISSION, timeout=10,
                                 headers={"Authorization": "Bearer " + vault.jwt(key=stranger)})
        assert response.status_code == 401
    assert vault.logins() == before_logins
    # Per gunicorn worker (2) at most: the first read of the rules (config and role) and one early
    # re-read of the config; never one per token.
    assert vault.calls() - before_calls <= 2 * 3


def test_failed_authentications_per_source_are_throttled_with_retry_after(throttled, vault, source):
    clear_of_window_edge(60, 10)  # the limits are per minute
    for _ in range(4):
        user = f"nobody{uuid.uuid4().hex[:8]}"
        assert throttled.post("/submit", json=SUBMISSION, headers=basic_header(user, "x") | source).status_code == 401
    before = vault.logins()
    response = throttled.post("/submit", json=SUBMISSION, headers=basic_header(*vault.basic("admin")) | source)
    assert response.status_code == 429
    assert response.get_json() == {"code": 429, "message": "Too many failed authentications; retry later"}
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert vault.logins() == before  # refused before Vault was asked, even with a good password
    other = source_header(f"203.0.113.{secrets.randbelow(254) + 1}")
    assert throttled.post("/submit", json=SUBMISSION, headers=basic_header(*vault.basic("admin")) | other).status_code == 202


def test_login_attempts_per_username_are_throttled_across_sources(throttled, vault):
    clear_of_window_edge(60, 10)  # the limits are per minute
    user, password = f"victim{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    vault.server.admin().auth.userpass.create_or_update_user(username=user, password=password,
                                                             policies=["noop-policy"], mount_point="userpass")
    for attempt in range(3):
        sourced = source_header(f"192.0.2.{attempt + 1}")
        assert throttled.post("/submit", json=SUBMISSION, headers=basic_header(user, f"guess-{attempt}") | sourced).status_code == 401
    before = vault.logins()
    response = throttled.post("/submit", json=SUBMISSION, headers=basic_header(user, password) | source_header("192.0.2.99"))
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert vault.logins() == before


def test_concurrent_guesses_for_one_user_cannot_slip_past_the_limit(throttled, vault):
    clear_of_window_edge(60, 10)  # the limits are per minute
    from concurrent.futures import ThreadPoolExecutor

    user = f"target{uuid.uuid4().hex[:8]}"
    vault.server.admin().auth.userpass.create_or_update_user(username=user, password=secrets.token_urlsafe(12),
                                                             policies=["noop-policy"], mount_point="userpass")
    app, before = throttled.application, vault.logins()

    def guess(n: int) -> int:
        headers = basic_header(user, f"guess-{n}") | source_header(f"192.0.2.{n + 1}")
        return app.test_client().post("/submit", json=SUBMISSION, headers=headers).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(guess, range(32)))
    # per_username: 3/minute, counted before each login; and one login per username in flight at a time
    assert 1 <= statuses.count(401) <= 3 and statuses.count(401) + statuses.count(429) == 32
    assert vault.logins() - before == statuses.count(401)


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(config_files):
    clear_of_window_edge(60, 10)  # the limits are per minute
    client = guarded_client(config_files, limits__failed_auth__per_source="2/minute")
    peer = {"REMOTE_ADDR": f"203.0.113.{secrets.randbelow(254) + 1}"}
    statuses = [client.post("/submit", json=SUBMISSION, environ_base=peer,
                            headers={"Authorization": "Bearer a.b.c", "X-Forwarded-For": f"192.0.2.{n}"}).status_code
                for n in range(4)]
    assert statuses == [401, 401, 429, 429]


def test_a_refused_credential_is_remembered_and_counted_as_such(config_files, vault):
    client = guarded_client(config_files)
    header = basic_header("service", "definitely-wrong-" + uuid.uuid4().hex[:6])
    before, cached, refused = vault.logins(), denied(client, "cached_reject"), denied(client, "vault_refused")
    assert [client.post("/submit", json=SUBMISSION, headers=header).status_code for _ in range(5)] == [401] * 5
    assert vault.logins() == before + 1
    assert denied(client, "cached_reject") - cached == 4
    assert denied(client, "vault_refused") - refused == 1


def test_auth_decision_labels_stay_bounded(throttled, vault, source):
    for header in ("Bearer x.y.z", "Basic " + base64.b64encode(b"../etc:pw").decode(), "Bearer " + vault.jwt(iss="evil"),
                   "Token abc", "Bearer " + vault.jwt(alg="none")):
        throttled.post("/submit", json=SUBMISSION, headers={"Authorization": header} | source)
    reasons = {line.split('reason="')[1].split('"')[0] for line in throttled.get("/metrics").get_data(as_text=True).splitlines()
               if line.startswith("gateway_auth_decisions_total{")}
    assert reasons <= {"local_reject", "cached_reject", "vault_refused", "throttled", "no_identity",
                       "vault_unavailable", "cached", "vault_login", "system_route", "system_identity",
                       "job_type_not_allowed", "not_operator"}
    assert {"local_reject", "throttled"} <= reasons


def test_a_signing_key_added_in_vault_is_used_without_a_restart(config_files, vault):
    client = guarded_client(config_files, vault__jwt_keys_refresh="1")
    new_key, new_public = devjwt.new_key_pair()
    assert client.post("/submit", json=SUBMISSION, headers={"Authorization": "Bearer " + vault.jwt()}).status_code == 202
    config = vault.server.admin().auth.jwt.read_config(path="jwt")["data"]
    vault.server.admin().auth.jwt.configure(jwt_validation_pubkeys=[*config["jwt_validation_pubkeys"], new_public],
                                            bound_issuer=config["bound_issuer"],
                                            jwt_supported_algs=config["jwt_supported_algs"], path="jwt")
    wait_until(lambda: client.post("/submit", json=SUBMISSION, headers={
        "Authorization": "Bearer " + vault.jwt(key=new_key)}).status_code == 202, 15, "token signed by the new key accepted")
