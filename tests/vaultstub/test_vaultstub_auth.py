"""Logins through hvac over real HTTP: userpass and JWT, success and Vault's failure modes."""

import time
from collections.abc import Callable
from types import SimpleNamespace

import hvac
import pytest
import requests

from vaultstub import jwt as vjwt


def _errors(excinfo: pytest.ExceptionInfo[hvac.exceptions.VaultError]) -> list[str]:
    return excinfo.value.errors


def test_userpass_login_returns_vault_auth_shape(known: SimpleNamespace, client: hvac.Client) -> None:
    response = client.auth.userpass.login("service", known.passwords["service"], use_token=False)
    auth = response["auth"]
    assert auth["client_token"].startswith("hvs.")
    assert auth["metadata"] == {"username": "service"}
    assert auth["policies"] == auth["token_policies"] == ["default", "noop-policy"]
    assert (auth["lease_duration"], auth["renewable"], auth["token_type"]) == (3600, True, "service")
    assert auth["entity_id"] == known.service_entity
    assert response["lease_id"] == "" and response["data"] is None
    assert not client.token  # use_token=False left the shared client untouched


def test_userpass_login_wrong_password_is_invalid_request(client: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.userpass.login("service", "not-the-password", use_token=False)
    assert _errors(excinfo) == ["invalid username or password"]


def test_userpass_login_unknown_user_same_error_as_wrong_password(known: SimpleNamespace, client: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.userpass.login("nobody", known.passwords["service"], use_token=False)
    assert _errors(excinfo) == ["invalid username or password"]


def test_userpass_login_username_is_case_insensitive(known: SimpleNamespace, client: hvac.Client) -> None:
    auth = client.auth.userpass.login("SeRvIcE", known.passwords["service"], use_token=False)["auth"]
    assert auth["metadata"] == {"username": "service"}
    assert auth["entity_id"] == known.service_entity


def test_userpass_login_name_outside_vault_pattern_is_unsupported_path(known: SimpleNamespace, client: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.auth.userpass.login("bad name!", known.passwords["service"], use_token=False)


def test_userpass_login_without_entity_creates_one_without_metadata(known: SimpleNamespace,
        client: hvac.Client, client_with: Callable[[str], hvac.Client]) -> None:
    first = client.auth.userpass.login("loner", known.passwords["loner"], use_token=False)["auth"]["entity_id"]
    second = client.auth.userpass.login("loner", known.passwords["loner"], use_token=False)["auth"]["entity_id"]
    entity = client_with(known.gateway_token).secrets.identity.read_entity(first)["data"]
    assert first == second and first not in (known.service_entity, known.admin_entity)
    assert entity["metadata"] is None  # what Vault returns for an entity it created on login
    assert [(a["mount_type"], a["name"]) for a in entity["aliases"]] == [("userpass", "loner")]


def test_jwt_login_maps_claims_and_sets_vault_role(known: SimpleNamespace, client: hvac.Client, mint: Callable[..., str]) -> None:
    auth = client.auth.jwt.jwt_login("dynamic", mint(client_id="c-42", role="admin"), use_token=False)["auth"]
    assert auth["metadata"] == {"role": "dynamic", "client_id": "c-42", "client_role": "admin"}
    assert auth["lease_duration"] == 1800
    assert auth["entity_id"] and auth["entity_id"] not in (known.service_entity, known.admin_entity)


def test_jwt_login_alias_of_seeded_entity_returns_its_id(known: SimpleNamespace, client: hvac.Client, mint: Callable[..., str]) -> None:
    auth = client.auth.jwt.jwt_login("dynamic", mint(sub="admin"), use_token=False)["auth"]
    assert auth["entity_id"] == known.admin_entity


def test_jwt_login_missing_mapped_claim_is_absent_from_metadata(
        client: hvac.Client, mint: Callable[..., str]) -> None:
    auth = client.auth.jwt.jwt_login("dynamic", mint(role=None), use_token=False)["auth"]
    assert auth["metadata"] == {"role": "dynamic", "client_id": "c-7"}


def test_jwt_login_expired_within_leeway_accepted(client: hvac.Client, mint: Callable[..., str]) -> None:
    now = int(time.time())
    token = mint(iat=now - 600, nbf=now - 600, exp=now - 30)
    assert client.auth.jwt.jwt_login("dynamic", token, use_token=False)["auth"]["client_token"]


@pytest.mark.parametrize(("overrides", "text"), [
    pytest.param({"exp": -120}, "token is expired (exp)", id="expired-past-leeway"),
    pytest.param({"nbf": 120}, "token not valid yet (nbf)", id="nbf-past-leeway"),
    pytest.param({"iat": 120, "nbf": 0}, "token issued in the future (iat)", id="iat-future"),
])
def test_jwt_login_time_claims_outside_leeway_rejected(
        client: hvac.Client, mint: Callable[..., str], overrides: dict[str, int], text: str) -> None:
    now = int(time.time())
    claims = {k: (None if v is None else now + v) for k, v in overrides.items()}
    if "exp" in overrides:
        claims |= {"iat": now - 600, "nbf": now - 600}
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(**claims), use_token=False)
    assert _errors(excinfo) == [f"error validating claims: go-jose/go-jose/jwt: validation failed, {text}"]


def test_jwt_login_without_any_time_claim_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(iat=None, nbf=None, exp=None), use_token=False)
    assert _errors(excinfo) == ["no issue time, notbefore, or expiration time encoded in token"]


def test_jwt_login_wrong_issuer_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(iss="someone-else"), use_token=False)
    assert "invalid issuer claim (iss)" in _errors(excinfo)[0]


@pytest.mark.parametrize("aud", ["other-service", ["a", "b"]])
def test_jwt_login_wrong_audience_rejected(client: hvac.Client, mint: Callable[..., str], aud: object) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(aud=aud), use_token=False)
    assert _errors(excinfo) == ["error validating claims: aud claim does not match any bound audience"]


def test_jwt_login_audience_in_list_accepted(client: hvac.Client, mint: Callable[..., str]) -> None:
    token = mint(aud=["other", "job-gateway"])
    assert client.auth.jwt.jwt_login("dynamic", token, use_token=False)["auth"]["metadata"]["role"] == "dynamic"


def test_jwt_login_signed_by_unknown_key_rejected(
        client: hvac.Client, mint: Callable[..., str], other_key: tuple[str, str]) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(key=other_key[0]), use_token=False)
    assert _errors(excinfo) == ["no known key successfully validated the token signature"]


def test_jwt_login_tampered_claims_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    header, _, signature = mint(role="service").split(".")
    promoted = mint(role="admin").split(".")[1]  # well-formed claims, but not the ones that were signed
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", f"{header}.{promoted}.{signature}", use_token=False)
    assert _errors(excinfo) == ["no known key successfully validated the token signature"]


def test_jwt_login_alg_none_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    token = mint(alg="none")
    assert token.endswith(".")  # really unsigned
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", token, use_token=False)
    assert _errors(excinfo) == ["no known key successfully validated the token signature"]


def test_jwt_login_hs256_keyed_with_public_key_rejected(
        client: hvac.Client, mint: Callable[..., str], signing_key: tuple[str, str]) -> None:
    token = mint(key=signing_key[1], alg="HS256")  # the classic RS256/HS256 key-confusion forgery
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", token, use_token=False)
    assert _errors(excinfo) == ["no known key successfully validated the token signature"]


def test_jwt_login_garbage_token_is_parse_error(client: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", "not-a-jwt", use_token=False)
    assert _errors(excinfo)[0].startswith("error parsing token: ")


def test_jwt_login_unknown_role_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("nope", mint(), use_token=False)
    assert _errors(excinfo) == ['role "nope" could not be found']


def test_jwt_login_missing_user_claim_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(sub=None), use_token=False)
    assert _errors(excinfo) == ['claim "sub" not found in token']


def test_jwt_login_non_string_mapped_claim_rejected(client: hvac.Client, mint: Callable[..., str]) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest) as excinfo:
        client.auth.jwt.jwt_login("dynamic", mint(client_id=7), use_token=False)
    assert _errors(excinfo) == ["error converting claim 'client_id' to string"]


def test_login_errors_are_vault_json(stub, mint: Callable[..., str]) -> None:
    response = requests.post(f"{stub.url}/v1/auth/jwt/login", json={"role": "dynamic", "jwt": mint(iss="x")},
                             timeout=2)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"  # hvac only parses exactly this
    assert list(response.json()) == ["errors"]


def test_mint_can_be_verified_with_pyjwt(signing_key: tuple[str, str]) -> None:
    import jwt as pyjwt

    token = vjwt.mint(signing_key[0], {"sub": "x", "aud": "job-gateway"})
    assert pyjwt.decode(token, signing_key[1], algorithms=["RS256"], audience="job-gateway")["sub"] == "x"
