"""The credential cases once more, through an app built in-process (create_app) rather than gunicorn,
against the session's OpenBao, configured by deploy/vault_bootstrap.py (the code compose runs)."""
from __future__ import annotations

import time
import uuid

import pytest

from gateway import create_app
from jobs.keys import RECORD_PREFIX
from settings import load_settings
from tests.support.api import b64, basic_header
from tests.support.vault import SeededVault, public_pem

CONTENT = {"content": b64(b"real vault")}


@pytest.fixture(scope="module")
def real_vault(vault: SeededVault) -> SeededVault:
    return vault


@pytest.fixture(scope="module")
def client(real_vault: SeededVault, config_files):
    settings = load_settings(*config_files, environ={"GATEWAY__VAULT__URL": real_vault.url,
                                                      "GATEWAY__VAULT__TOKEN": real_vault.gateway_token})
    return create_app(settings).test_client()


def submit(client, headers: dict[str, str], job_type: str = "calc_hash"):
    return client.post("/submit", json={"type": job_type, "upload": CONTENT}, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def test_userpass_identity_comes_from_the_entity(client, real_vault, redis_client):
    response = submit(client, basic_header(*real_vault.basic("service")))
    assert response.status_code == 202
    assert redis_client.hget(RECORD_PREFIX + response.get_json()["uuid"], "owner") == "client-service"


def test_jwt_identity_comes_from_claim_mappings(client, real_vault, redis_client):
    client_id = f"real-{uuid.uuid4().hex[:8]}"
    response = submit(client, bearer(real_vault.jwt(client_id=client_id)))
    assert response.status_code == 202
    assert redis_client.hget(RECORD_PREFIX + response.get_json()["uuid"], "owner") == client_id


@pytest.mark.parametrize("case", ["wrong-password", "unknown-user", "expired-past-leeway", "wrong-issuer",
                                  "wrong-audience", "unknown-key", "alg-none", "hs256-with-public-key"])
def test_refused_credentials_are_401(client, real_vault, case):
    now = int(time.time())
    headers = {
        "wrong-password": lambda: basic_header("service", "not-the-password"),
        "unknown-user": lambda: basic_header("nobody", "whatever"),
        "expired-past-leeway": lambda: bearer(real_vault.jwt(iat=now - 900, nbf=now - 900, exp=now - 200)),
        "wrong-issuer": lambda: bearer(real_vault.jwt(iss="https://evil.example")),
        "wrong-audience": lambda: bearer(real_vault.jwt(aud="someone-else")),
        "unknown-key": lambda: bearer(real_vault.jwt(key=real_vault.other_private_key)),
        "alg-none": lambda: bearer(real_vault.jwt(alg="none")),
        "hs256-with-public-key": lambda: bearer(real_vault.jwt(key=public_pem(real_vault.private_key), alg="HS256")),
    }[case]()
    response = submit(client, headers)
    assert response.status_code == 401 and response.get_json() == {"code": 401, "message": "Unauthorized"}


def test_jwt_without_the_mapped_role_is_403(client, real_vault):
    assert submit(client, bearer(real_vault.jwt(client_role=None))).status_code == 403


def test_role_not_allowed_is_403(client, real_vault):
    assert submit(client, basic_header(*real_vault.basic("copytrust")), "water_marks").status_code == 403


def test_foreign_task_is_404_like_an_unknown_one(client, real_vault):
    task_id = submit(client, basic_header(*real_vault.basic("service"))).get_json()["uuid"]
    stranger = basic_header(*real_vault.basic("service2"))
    foreign = client.get(f"/taskinfo?taskid={task_id}", headers=stranger)
    unknown = client.get(f"/taskinfo?taskid={uuid.uuid4()}", headers=stranger)
    assert foreign.status_code == unknown.status_code == 404 and foreign.data == unknown.data
