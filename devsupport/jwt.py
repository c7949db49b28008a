"""Demo and test JWTs: an RSA key pair and tokens signed with it, for Vault's JWT auth role `dynamic`.

    python -m devsupport.jwt --key .run/vault/jwt-signing-key.pem --sub svc-1 --client-id client-jwt --role service

prints a token valid for --ttl seconds (default 3600) with iss/aud as deploy/vault_bootstrap.py binds
them. Tests also make deliberately bad tokens here (alg none, HS256 keyed with the public key), which
PyJWT itself refuses to produce.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER, AUDIENCE = "vault", "job-gateway"


def new_key_pair() -> tuple[str, str]:
    """(private PKCS#8 PEM, public SubjectPublicKeyInfo PEM) of a fresh 2048-bit RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return private, public_pem(private)


def public_pem(private_pem: str) -> str:
    """The public half of a private key, as Vault's `jwt_validation_pubkeys` wants it."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def mint(key: str, claims: dict[str, Any], alg: str = "RS256", headers: dict[str, Any] | None = None) -> str:
    """A signed token. `alg="none"` and HMAC algorithms are built by hand: PyJWT refuses to sign with
    an asymmetric key as an HMAC secret, which is exactly the attack a test needs to send."""
    if alg == "none" or alg.startswith("HS"):
        header = _b64(json.dumps({"alg": alg, "typ": "JWT", **(headers or {})}).encode())
        body = _b64(json.dumps(claims).encode())
        signing_input = f"{header}.{body}".encode()
        if alg == "none":
            return f"{header}.{body}."
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return f"{header}.{body}.{_b64(hmac.new(key.encode(), signing_input, digest).digest())}"
    return pyjwt.encode(claims, key, algorithm=alg, headers=headers)


def demo_claims(sub: str, client_id: str | None, role: str | None, ttl: float = 3600) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "jti": uuid.uuid4().hex, "client_id": client_id,
              "role": role, "iat": now, "nbf": now, "exp": int(now + ttl)}
    return {name: value for name, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devsupport.jwt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--key", type=Path, required=True, help="private key PEM (run-local: .run/vault/jwt-signing-key.pem)")
    parser.add_argument("--sub", required=True)
    parser.add_argument("--client-id")
    parser.add_argument("--role", help="the client's role (mapped by Vault to client_role)")
    parser.add_argument("--ttl", type=float, default=3600)
    args = parser.parse_args(argv)
    print(mint(args.key.read_text(), demo_claims(args.sub, args.client_id, args.role, args.ttl)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
