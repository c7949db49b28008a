"""SPEC §4 through the real HTTP stack: gunicorn -> gateway -> hvac -> OpenBao (`bao server -dev`)."""
from __future__ import annotations

import base64
import time
import uuid

import pytest
import requests

from jobs.keys import RECORD_PREFIX
from tests.support.api import Api, b64
from tests.support.images import png
from tests.support.vault import public_pem

UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}
CONTENT = {"content": b64(b"auth test content")}


def raw(header: str | None) -> dict[str, str]:
    return {"Authorization": header} if header is not None else {}


def basic_raw(text: bytes) -> str:
    return "Basic " + base64.b64encode(text).decode()


def submit_with(gateway_url: str, header: str | None, job_type: str = "calc_hash") -> requests.Response:
    return requests.post(gateway_url + "/submit", json={"type": job_type, "upload": CONTENT},
                         headers=raw(header), timeout=10)


def assert_unauthorized(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def bearer(token: str) -> str:
    return "Bearer " + token


# --- 401: missing, malformed, refused -------------------------------------------------------------

@pytest.mark.parametrize("header", [
    pytest.param(None, id="none"),
    pytest.param("", id="empty"),
    pytest.param("Basic", id="basic-no-value"),
    pytest.param("Basic !!!not-base64!!!", id="basic-bad-base64"),
    pytest.param(basic_raw(b"no-colon-here"), id="basic-no-colon"),
    pytest.param(basic_raw(b"service:"), id="basic-empty-password"),
    pytest.param(basic_raw(b"\xff\xfe:password"), id="basic-not-utf8"),
    pytest.param("Basic Og==", id="basic-only-colon"),
    pytest.param("Bearer", id="bearer-no-value"),
    pytest.param("Bearer not-a-jwt", id="bearer-not-a-jwt"),
    pytest.param("Token abc.def.ghi", id="unknown-scheme"),
    pytest.param("Digest username=\"x\"", id="digest"),
])
def test_missing_or_malformed_credentials_are_one_generic_401(gateway_url, worker, header):
    assert_unauthorized(submit_with(gateway_url, header))


@pytest.mark.parametrize("username", ["../sys/seal", "a b", "user?x=1", "x%2Fy", "-leading", "trailing.", "ünï"])
def test_usernames_outside_vaults_pattern_never_reach_vault(gateway_url, worker, vault, username):
    before = vault.logins()
    assert_unauthorized(submit_with(gateway_url, basic_raw(f"{username}:some-password".encode())))
    assert vault.logins() == before


def test_wrong_password_is_401_without_vault_text_and_is_remembered(gateway_url, worker, vault):
    header = basic_raw(f"service:not-the-password-{uuid.uuid4().hex[:6]}".encode())
    before = vault.logins()
    for _ in range(10):
        response = submit_with(gateway_url, header)
        assert_unauthorized(response)
        assert "invalid username or password" not in response.text
    # Vault refused it once per gunicorn worker process; every repetition was answered from memory.
    assert 1 <= vault.logins() - before <= 2


def test_logins_carry_no_token_from_the_gateways_environment(api_as, vault):
    api_as("service2").submit("calc_hash", CONTENT)
    logins = [entry for entry in vault.server.audit_requests(include_harness=True)
              if entry["request"]["path"].startswith("auth/userpass/login/")]
    assert logins
    assert all("client_token" not in (entry.get("auth") or {}) for entry in logins)


def test_unknown_user_is_401(gateway_url, worker):
    assert_unauthorized(submit_with(gateway_url, basic_raw(b"nobody:whatever")))


@pytest.mark.parametrize("case", ["expired-past-leeway", "wrong-issuer", "wrong-audience", "unknown-key",
                                  "alg-none", "hs256-with-public-key", "tampered-claims", "not-yet-valid"])
def test_refused_jwts_are_401(gateway_url, worker, vault, case):
    now = int(time.time())
    token = {
        "expired-past-leeway": lambda: vault.jwt(iat=now - 900, nbf=now - 900, exp=now - 120),
        "wrong-issuer": lambda: vault.jwt(iss="https://evil.example"),
        "wrong-audience": lambda: vault.jwt(aud="someone-else"),
        "unknown-key": lambda: vault.jwt(key=vault.other_private_key),
        "alg-none": lambda: vault.jwt(alg="none"),
        "hs256-with-public-key": lambda: vault.jwt(key=public_pem(vault.private_key), alg="HS256"),
        "tampered-claims": lambda: _tampered(vault),
        "not-yet-valid": lambda: vault.jwt(iat=now, nbf=now + 300, exp=now + 900),
    }[case]()
    before = vault.logins()
    response = submit_with(gateway_url, bearer(token))
    assert_unauthorized(response)
    assert "validation failed" not in response.text and "signature" not in response.text
    assert vault.logins() == before  # refused by the local check: Vault never saw it


def _tampered(vault) -> str:
    header, _, signature = vault.jwt(client_role="copytrust_site").split(".")
    promoted = vault.jwt(client_role="admin").split(".")[1]
    return f"{header}.{promoted}.{signature}"


# --- identity, authorization, ownership ----------------------------------------------------------

def test_jwt_expired_within_vaults_leeway_is_accepted(gateway_url, worker, vault):
    now = int(time.time())
    token = vault.jwt(iat=now - 900, nbf=now - 900, exp=now - 20)
    assert submit_with(gateway_url, bearer(token)).status_code == 202


def test_identity_comes_from_vault_claim_mappings_for_jwt(gateway_url, worker, vault, redis_client):
    client_id = f"jwt-client-{uuid.uuid4().hex[:8]}"
    response = submit_with(gateway_url, bearer(vault.jwt(client_id=client_id, client_role="service")))
    assert response.status_code == 202
    assert redis_client.hget(RECORD_PREFIX + response.json()["uuid"], "owner") == client_id


def test_identity_comes_from_the_entity_for_userpass(api_as, redis_client):
    task_id = api_as("service").submitted("calc_hash", CONTENT)
    assert redis_client.hget(RECORD_PREFIX + task_id, "owner") == "client-service"


@pytest.mark.parametrize("missing", ["client_role", "client_id"])
def test_valid_jwt_without_a_mapped_claim_is_403(gateway_url, worker, vault, missing):
    token = vault.jwt(**{missing: None})
    response = submit_with(gateway_url, bearer(token))
    assert response.status_code == 403
    assert response.json()["code"] == 403


def test_userpass_user_whose_entity_has_no_metadata_is_403(api_as):
    assert api_as("norole").submit("calc_hash", CONTENT).status_code == 403


@pytest.mark.parametrize(("user", "job_type"), [("copytrust", "water_marks"), ("copytrust", "calc_hash_parked"),
                                                ("service", "resize_image"), ("service", "calc_hash_parked")])
def test_job_type_not_allowed_for_role_is_403_and_nothing_is_queued(api_as, redis_client, settings, user, job_type):
    queue = settings.config["jobs"][job_type]["queue"]
    queued, records = redis_client.llen(queue), len(redis_client.keys(RECORD_PREFIX + "*"))
    response = api_as(user).submit(job_type, CONTENT)
    assert response.status_code == 403
    assert response.json() == {"code": 403, "message": f"Role may not submit {job_type}"}
    assert redis_client.llen(queue) == queued
    assert len(redis_client.keys(RECORD_PREFIX + "*")) == records


def test_unknown_role_may_submit_nothing(gateway_url, worker, vault):
    response = submit_with(gateway_url, bearer(vault.jwt(client_role="no-such-role")))
    assert response.status_code == 403


@pytest.mark.parametrize(("user", "job_type"), [("copytrust", "calc_hash"), ("service", "water_marks"),
                                                ("admin", "resize_image")])
def test_default_roles_may_submit_their_types(api_as, user, job_type):
    image = b64(png(32, 32))
    upload = {"calc_hash": CONTENT, "water_marks": {"content": image, "text": "x"},
              "resize_image": {"content": image, "width": 8}}[job_type]
    response = api_as(user).submit(job_type, upload)
    assert response.status_code == 202, response.text


def test_system_identity_may_not_use_client_routes(api_as):
    response = api_as("system").submit("calc_hash", CONTENT)
    assert response.status_code == 403


def test_foreign_task_is_404_byte_identical_to_unknown_and_malformed(api_as):
    owner, stranger = api_as("service"), api_as("service2")
    task_id = owner.submitted("calc_hash", CONTENT)
    foreign = stranger.taskinfo(task_id)
    unknown = stranger.taskinfo(str(uuid.uuid4()))
    malformed = stranger.taskinfo("not-a-uuid")
    assert foreign.status_code == unknown.status_code == malformed.status_code == 404
    assert foreign.content == unknown.content == malformed.content
    assert owner.taskinfo(task_id).status_code == 200


def test_admin_reads_every_task(api_as):
    task_id = api_as("copytrust").submitted("calc_hash", CONTENT)
    body = api_as("admin").taskinfo(task_id)
    assert body.status_code == 200 and body.json()["uuid"] == task_id


# --- Vault down ----------------------------------------------------------------------------------

def test_sealed_vault_is_a_fast_503_not_401(gateway_url, worker, vault):
    vault.server.seal()
    try:
        started = time.monotonic()
        response = submit_with(gateway_url, bearer(vault.jwt()))  # a fresh credential: no cache to lean on
        elapsed = time.monotonic() - started
        health = requests.get(gateway_url + "/health", timeout=5)
    finally:
        vault.server.unseal()
    assert response.status_code == 503
    assert response.json() == {"code": 503, "message": "Authentication service unavailable"}
    assert elapsed < 2.0
    assert health.status_code == 503 and health.json() == {"message": "Unavailable: vault", "code": 0}


# --- concurrency and the login cache (one gunicorn worker process) -------------------------------

def test_two_users_at_once_on_one_worker_each_get_their_own_identity(one_worker_gateway_url, worker, vault,
                                                                   redis_client):
    from concurrent.futures import ThreadPoolExecutor

    def submit(i: int) -> tuple[str, str]:
        client_id = ("alpha-", "beta-")[i % 2] + str(i % 2)
        token = vault.jwt(client_id=client_id, client_role="service")  # fresh: every request logs in
        response = submit_with(one_worker_gateway_url, bearer(token))
        assert response.status_code == 202, response.text
        return client_id, response.json()["uuid"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(submit, range(64)))
    owners = {task_id: redis_client.hget(RECORD_PREFIX + task_id, "owner") for _, task_id in results}
    assert all(owners[task_id] == client_id for client_id, task_id in results)
    assert {client_id for client_id, _ in results} == {"alpha-0", "beta-1"}


def test_login_cache_never_outlives_the_jwt_exp(one_worker_gateway_url, worker, vault):
    token = vault.jwt(ttl=3)
    exp = _claims(token)["exp"]
    api = Api(one_worker_gateway_url)
    before = vault.logins()
    assert api.request("POST", "/submit", json={"type": "calc_hash", "upload": CONTENT},
                       headers={"Authorization": bearer(token)}).status_code == 202
    assert vault.logins() == before + 1
    while time.time() < exp - 0.5:  # until just before exp: served from the cache
        assert api.request("GET", "/taskinfo", params={"taskid": str(uuid.uuid4())},
                           headers={"Authorization": bearer(token)}).status_code == 404
        assert vault.logins() == before + 1
    deadline = time.monotonic() + 10
    while vault.logins() == before + 1 and time.monotonic() < deadline:
        api.request("GET", "/taskinfo", params={"taskid": str(uuid.uuid4())}, headers={"Authorization": bearer(token)})
    assert vault.logins() == before + 2  # past exp the gateway asked Vault again (still within its leeway)
    assert time.time() >= exp


def _claims(token: str) -> dict:
    import json
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_thousand_requests_with_one_credential_log_in_at_most_once_per_gunicorn_worker(gateway_url, worker,
                                                                                      vault, settings):
    api = Api(gateway_url)
    header = {"Authorization": bearer(vault.jwt(ttl=600))}
    before = vault.logins()
    for _ in range(1000):
        response = api.request("GET", "/taskinfo", params={"taskid": str(uuid.uuid4())}, headers=header)
        assert response.status_code == 404
    logins = vault.logins() - before
    print(f"\nVault logins for 1,000 requests with one credential across 2 gunicorn workers: {logins}")
    assert 1 <= logins <= 2


# --- audit ---------------------------------------------------------------------------------------

def test_every_decision_is_audited_without_secrets(api_as, vault, gateway_log):
    from devsupport.processes import wait_until

    api_as("copytrust").submit("water_marks", CONTENT)
    bad = basic_raw(b"service:wrong-password-xyz")
    response = submit_with(api_as(None).base_url, bad)
    assert response.status_code == 401
    lines = wait_until(lambda: [l for l in gateway_log.read_text().splitlines() if "gateway.http.requestlog" in l
                                and ("job_type_not_allowed" in l or "vault_refused" in l)], 10, "audit lines")
    assert any("POST /submit 403" in l and "auth=denied reason=job_type_not_allowed role=copytrust_site" in l
               and "client_id=client-copytrust" in l for l in lines)
    assert any("POST /submit 401" in l and "auth=denied reason=vault_refused role=-" in l for l in lines)
    text = gateway_log.read_text()
    for secret in ("wrong-password-xyz", vault.passwords["copytrust"], vault.gateway_token, bad.split()[1]):
        assert secret not in text


def test_concurrent_first_requests_with_one_credential_log_in_once(one_worker_gateway_url, worker, vault):
    """Single flight: 24 requests at once with a credential nobody has seen yet -> one Vault login."""
    from concurrent.futures import ThreadPoolExecutor

    header = {"Authorization": bearer(vault.jwt(ttl=600))}
    before = vault.logins()

    def ask(_: int) -> int:
        return requests.get(one_worker_gateway_url + "/taskinfo", params={"taskid": str(uuid.uuid4())},
                            headers=header, timeout=10).status_code

    with ThreadPoolExecutor(24) as pool:
        assert set(pool.map(ask, range(24))) == {404}
    assert vault.logins() - before == 1
