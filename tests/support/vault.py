"""The test session's Vault: the Vault-compatible server seeded with one user per role, and JWT minting."""
from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from vaultstub import jwt as vjwt
from vaultstub.seed import hash_password

ISSUER, AUDIENCE, JWT_ROLE = "vault", "job-gateway", "dynamic"
# username -> (client_id, role); `norole` has no entity metadata, so Vault knows it but not its role.
USERS = {
    "admin": ("client-admin", "admin"),
    "service": ("client-service", "service"),
    "service2": ("client-service-2", "service"),
    "copytrust": ("client-copytrust", "copytrust_site"),
    "system": ("gateway-system", "system"),
    "norole": (None, None),
}


@dataclass
class SeededVault:
    """What the tests need to know about the seeded Vault and how to drive it."""

    url: str
    gateway_token: str
    passwords: dict[str, str]
    private_key: str
    other_private_key: str = field(default_factory=lambda: vjwt.new_key_pair()[0])

    def basic(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]

    def jwt(self, client_id: str | None = "client-jwt", client_role: str | None = "service", *,
            key: str | None = None, alg: str = "RS256", ttl: float = 600, **overrides: Any) -> str:
        """A token for role `dynamic`; a fresh `sub`/`jti` each time so no two share a cache entry.
        Keyword overrides replace claims; None drops a claim."""
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"sub-{uuid.uuid4().hex[:12]}", "jti": uuid.uuid4().hex,
                  "client_id": client_id, "role": client_role, "iat": now, "nbf": now, "exp": int(now + ttl)}
        claims |= overrides
        claims = {k: v for k, v in claims.items() if v is not None}
        return vjwt.mint(key or self.private_key, claims, alg=alg)

    def counters(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/v1/sys/stub/counters", timeout=2).json()

    def logins(self) -> int:
        return sum(self.counters()["logins"].values())

    def seal(self, sealed: bool = True) -> None:
        requests.post(f"{self.url}/v1/sys/stub/{'seal' if sealed else 'unseal'}", timeout=2).raise_for_status()


def public_pem(private_pem: str) -> str:
    """The SubjectPublicKeyInfo PEM of a private key, as Vault's jwt_validation_pubkeys wants it."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def build_seed(public_key: str, passwords: dict[str, str], gateway_token: str) -> dict[str, Any]:
    """SPEC §4's Vault: userpass users with entities carrying client_id/role, JWT role `dynamic`
    mapping claims client_id -> client_id and role -> client_role, a token for the gateway."""
    return {
        "tokens": [{"id": gateway_token, "policies": ["gateway-identity-read"]}],
        "policies": {"noop-policy": []},
        "userpass": {"users": {name: {"password_hash": hash_password(pw, iterations=1000),
                                      "policies": ["noop-policy"], "ttl": 3600}
                               for name, pw in passwords.items()}},
        "jwt": {"keys": [public_key], "roles": {JWT_ROLE: {
            "bound_issuer": ISSUER, "bound_audiences": [AUDIENCE], "user_claim": "sub",
            "claim_mappings": {"client_id": "client_id", "role": "client_role"},
            "policies": ["noop-policy"], "ttl": 3600}}},
        "entities": [{"name": name, "metadata": {"client_id": client_id, "role": role},
                      "aliases": [{"mount": "userpass", "name": name}]}
                     for name, (client_id, role) in USERS.items() if client_id],
    }


def new_test_vault_material() -> tuple[dict[str, Any], str, dict[str, str], str]:
    """(seed, private key, passwords, gateway token) for a fresh session."""
    private_key, public_key = vjwt.new_key_pair()
    passwords = {name: secrets.token_urlsafe(12) for name in USERS}
    gateway_token = "hvs." + secrets.token_urlsafe(18)
    return build_seed(public_key, passwords, gateway_token), private_key, passwords, gateway_token
