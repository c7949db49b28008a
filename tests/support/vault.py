"""The test session's Vault: a real OpenBao (devsupport/vault.py) configured by deploy/vault_bootstrap.py
with one user per role and a JWT signing key, and helpers to make good and bad credentials for it."""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devsupport import jwt as devjwt
from devsupport.vault import DevVault

# username -> (client_id, role); `norole` has no entity metadata, so Vault knows it but not its role.
USERS = {
    "admin": ("client-admin", "admin"),
    "service": ("client-service", "service"),
    "service2": ("client-service-2", "service"),
    "copytrust": ("client-copytrust", "copytrust_site"),
    "system": ("gateway-system", "system"),
    "norole": (None, None),
}
public_pem = devjwt.public_pem


@dataclass
class SeededVault:
    """What the tests need to know about the configured Vault and how to drive it."""

    server: DevVault
    gateway_token: str
    passwords: dict[str, str]
    private_key: str
    other_private_key: str = field(default_factory=lambda: devjwt.new_key_pair()[0])

    @property
    def url(self) -> str:
        return self.server.url

    def basic(self, user: str) -> tuple[str, str]:
        return user, self.passwords[user]

    def jwt(self, client_id: str | None = "client-jwt", client_role: str | None = "service", *,
            key: str | None = None, alg: str = "RS256", ttl: float = 600, **overrides: Any) -> str:
        """A token for role `dynamic`; a fresh `sub`/`jti` each time so no two share a cache entry.
        Keyword overrides replace claims; None drops a claim."""
        claims = devjwt.demo_claims(f"sub-{uuid.uuid4().hex[:12]}", client_id, client_role, ttl) | overrides
        claims = {k: v for k, v in claims.items() if v is not None}
        return devjwt.mint(key or self.private_key, claims, alg=alg)

    def logins(self) -> int:
        """Logins that reached Vault, from its audit device."""
        return self.server.logins()

    def calls(self) -> int:
        return self.server.calls()


def start_seeded_vault(run_dir: Path, name: str = "vault") -> SeededVault:
    """A fresh OpenBao with this session's users, passwords and JWT key, configured as compose does."""
    server = DevVault(run_dir, name).start()
    private_key, public_key = devjwt.new_key_pair()
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    users = {user: {"password": passwords[user], "client_id": client_id, "role": role}
             for user, (client_id, role) in USERS.items()}
    token = server.configure(users, [public_key], token_id=secrets.token_urlsafe(24))
    return SeededVault(server, token, passwords, private_key)
