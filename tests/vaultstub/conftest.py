"""Fixtures for the Vault-compatible server: a seeded stub over real HTTP and hvac clients for it."""

import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import hvac
import pytest

from vaultstub import jwt as vjwt
from vaultstub.seed import hash_password
from vaultstub.server import ServerHandle, serve_in_thread

GATEWAY_TOKEN = "gateway-test-token"
ROOT_TOKEN = "root-test-token"
SERVICE_ENTITY = "11111111-2222-3333-4444-555555555555"
ADMIN_ENTITY = "66666666-7777-8888-9999-000000000000"
PASSWORDS = {"service": "service-secret-pw", "loner": "loner-secret-pw"}


@pytest.fixture(scope="session")
def known() -> SimpleNamespace:
    """What the seed holds, for assertions (conftest is not importable reliably, so a fixture)."""
    return SimpleNamespace(gateway_token=GATEWAY_TOKEN, root_token=ROOT_TOKEN, service_entity=SERVICE_ENTITY,
                           admin_entity=ADMIN_ENTITY, passwords=PASSWORDS)


@pytest.fixture(scope="session")
def signing_key() -> tuple[str, str]:
    """(private, public) PEM of the key the seeded JWT role trusts."""
    return vjwt.new_key_pair()


@pytest.fixture(scope="session")
def other_key() -> tuple[str, str]:
    """A key pair the stub has never heard of, for forged signatures."""
    return vjwt.new_key_pair()


@pytest.fixture(scope="session")
def seed(signing_key: tuple[str, str]) -> dict[str, Any]:
    """Hashes computed once per session: PBKDF2 is slow on purpose."""
    hashed = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
    return {
        "tokens": [{"id": GATEWAY_TOKEN, "policies": ["gateway-identity-read"]},
                   {"id": ROOT_TOKEN, "policies": ["root"]}],
        "userpass": {"users": {
            "service": {"password_hash": hashed["service"], "policies": ["noop-policy"], "ttl": 3600},
            "loner": {"password_hash": hashed["loner"], "policies": ["noop-policy"], "ttl": 600}}},
        "jwt": {"keys": [signing_key[1]], "roles": {"dynamic": {
            "bound_issuer": "vault", "bound_audiences": ["job-gateway"], "user_claim": "sub",
            "claim_mappings": {"client_id": "client_id", "role": "client_role"},
            "policies": ["noop-policy"], "ttl": 1800}}},
        "entities": [
            {"id": SERVICE_ENTITY, "name": "service", "metadata": {"client_id": "client-service", "role": "service"},
             "aliases": [{"mount": "userpass", "name": "service"}]},
            {"id": ADMIN_ENTITY, "name": "admin", "metadata": {"client_id": "client-admin", "role": "admin"},
             "aliases": [{"mount": "jwt", "name": "admin"}]},
        ],
    }


@pytest.fixture
def stub(seed: dict[str, Any]) -> Iterator[ServerHandle]:
    """A fresh stub per test on a free port; listening as soon as the fixture yields."""
    handle = serve_in_thread(seed)
    yield handle
    handle.shutdown()


@pytest.fixture
def client(stub: ServerHandle) -> hvac.Client:
    """An hvac client with no token. token="" because None makes hvac read VAULT_TOKEN / ~/.vault-token."""
    return hvac.Client(url=stub.url, token="", timeout=2)


@pytest.fixture
def client_with(stub: ServerHandle) -> Callable[[str], hvac.Client]:
    return lambda token: hvac.Client(url=stub.url, token=token, timeout=2)


@pytest.fixture
def mint(signing_key: tuple[str, str]) -> Callable[..., str]:
    """A valid token for role `dynamic`; keyword arguments override or (with None) drop claims."""

    def _mint(key: str | None = None, alg: str = "RS256", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": "vault", "aud": "job-gateway", "sub": "client-7", "client_id": "c-7",
                  "role": "service", "iat": now, "nbf": now, "exp": now + 600} | overrides
        claims = {k: v for k, v in claims.items() if v is not None}
        return vjwt.mint(key or signing_key[0], claims, alg=alg)

    return _mint
