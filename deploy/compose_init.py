"""Files `docker compose up` needs, generated once on the host (scripts/compose-init.sh):

- deploy/demo/users.json: one userpass user per default role (random passwords, client ids, roles),
  read by the vault-bootstrap service;
- deploy/demo/jwt-signing-key.pem (private, stays on the host: mint demo JWTs with
  `python -m devsupport.jwt --key deploy/demo/jwt-signing-key.pem --sub bot --client-id client-ci --role service`)
  and jwt-public-key.pem (Vault's `jwt_validation_pubkeys`);
- deploy/demo/gateway-token: the id the bootstrap gives the gateway's Vault token;
- config.json (from config.example.json) and .secrets.json (with that token), mounted into the
  gateway and the workers.
Files that exist are left alone. Everything secret is written owner-only.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "deploy" / "demo"
USERS = {"admin": ("client-admin", "admin"), "service": ("client-service", "service"),
         "copytrust": ("client-copytrust", "copytrust_site"), "ops": ("client-ops", "ops"),
         # The system identity (`vault.system_role`): HTTP workers log in as it (docs/workers.md).
         "worker": ("http-worker", "system")}


def _write(path: Path, text: str, secret: bool = True) -> None:
    if path.exists():
        print(f"compose-init: keeping {path.relative_to(ROOT)}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    print(f"compose-init: wrote {path.relative_to(ROOT)}")


def main() -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not (DEMO / "jwt-signing-key.pem").exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(DEMO / "jwt-signing-key.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
        (DEMO / "jwt-public-key.pem").unlink(missing_ok=True)
        _write(DEMO / "jwt-public-key.pem", key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), secret=False)
    _write(DEMO / "users.json", json.dumps({name: {"password": secrets.token_urlsafe(15), "client_id": client_id,
                                                   "role": role} for name, (client_id, role) in USERS.items()},
                                           indent=2) + "\n")
    _write(DEMO / "gateway-token", secrets.token_urlsafe(24) + "\n")  # Vault: custom token ids have no "."
    _write(ROOT / "config.json", (ROOT / "config.example.json").read_text(), secret=False)
    token = (DEMO / "gateway-token").read_text().strip()
    _write(ROOT / ".secrets.json", json.dumps({"redis": {"username": None, "password": None},
                                               "vault": {"token": token}}, indent=2) + "\n")
    print("compose-init: done; now `docker compose up -d --build`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
