"""JWTs the way Vault's jwt auth plugin checks them, plus minting for tests and the demo.

Verification follows vault-plugin-auth-jwt with static keys: signature against every configured
key, then the time claims with Vault's defaults (60 s clock-skew leeway; a token without `exp`
expires 150 s after it starts), then issuer, subject and audience. Error texts are Vault's, so a
test that sees one here sees what production would log.
"""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_JOSE = "go-jose/go-jose/jwt: validation failed, "
_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


class InvalidToken(Exception):
    """The JWT was refused; the message is the text Vault puts in its `errors` list."""


def new_key_pair(bits: int = 2048) -> tuple[str, str]:
    """A fresh RSA key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


def mint(private_key_pem: str | bytes, claims: dict[str, Any], alg: str = "RS256",
         headers: dict[str, Any] | None = None) -> str:
    """Sign `claims` as a compact JWS.

    Built by hand rather than with `jwt.encode` because tests must also forge what PyJWT refuses to
    make: `alg=none` (empty signature) and HS* keyed with a public key's PEM text (key confusion).
    For HS* the key is used as the raw HMAC secret on purpose.
    """
    header = {"alg": alg, "typ": "JWT", **(headers or {})}
    signing_input = f"{_segment(header)}.{_segment(claims)}".encode()
    key = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    if alg == "none":
        signature = b""
    elif alg in _HMAC:
        signature = hmac.new(key, signing_input, _HMAC[alg]).digest()
    else:
        algorithm = pyjwt.algorithms.get_default_algorithms()[alg]
        signature = algorithm.sign(signing_input, algorithm.prepare_key(key))
    return f"{signing_input.decode()}.{_b64url(signature)}"


def verified_claims(token: str, keys: tuple[Any, ...], algs: tuple[str, ...]) -> dict[str, Any]:
    """Claims of `token` if one of `keys` validates its signature with an allowed algorithm."""
    try:
        pyjwt.get_unverified_header(token)
    except pyjwt.DecodeError as exc:
        raise InvalidToken(f"error parsing token: {exc}") from None
    for key in keys:
        try:
            payload = pyjwt.api_jws.PyJWS().decode_complete(token, key=key, algorithms=list(algs))["payload"]
        except pyjwt.PyJWTError:
            continue  # wrong key, wrong key type or an algorithm outside the allowed list
        try:
            claims = json.loads(payload)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise InvalidToken("error parsing token: payload is not a JSON object")
        return claims
    raise InvalidToken("no known key successfully validated the token signature")


def validate_claims(claims: dict[str, Any], role: Any, now: float | None = None) -> None:
    """Vault's claim checks for a role (a `seed.Role`); raises `InvalidToken` with Vault's text."""
    now = time.time() if now is None else now
    iat, nbf, exp = (_numeric(claims, name) for name in ("iat", "nbf", "exp"))
    if not (iat or nbf or exp):
        raise InvalidToken("no issue time, notbefore, or expiration time encoded in token")
    if not exp:
        exp = max(iat, nbf) + max(role.expiration_leeway, 0)
    if not nbf:
        nbf = iat or exp - max(role.not_before_leeway, 0)
    audiences = _audiences(claims.get("aud"))
    if audiences and not role.bound_audiences:
        raise InvalidToken("audience claim found in JWT but no audiences bound to the role")
    leeway = max(role.clock_skew_leeway, 0)
    if role.bound_issuer and claims.get("iss") != role.bound_issuer:
        raise InvalidToken(f"error validating claims: {_JOSE}invalid issuer claim (iss)")
    if role.bound_subject and claims.get("sub") != role.bound_subject:
        raise InvalidToken(f"error validating claims: {_JOSE}invalid subject claim (sub)")
    if now + leeway < nbf:
        raise InvalidToken(f"error validating claims: {_JOSE}token not valid yet (nbf)")
    if now - leeway > exp:
        raise InvalidToken(f"error validating claims: {_JOSE}token is expired (exp)")
    if iat and now + leeway < iat:
        raise InvalidToken(f"error validating claims: {_JOSE}token issued in the future (iat)")
    if role.bound_audiences and not set(role.bound_audiences) & set(audiences):
        raise InvalidToken("error validating claims: aud claim does not match any bound audience")


def claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by name, or by JSON pointer when `name` starts with "/" (as Vault allows)."""
    if not name.startswith("/"):
        return claims.get(name)
    value: Any = claims
    for part in name[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _numeric(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidToken(f"error parsing token: claim {name!r} is not a number")
    return value


def _audiences(aud: Any) -> list[str]:
    if aud is None:
        return []
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise InvalidToken("error parsing token: aud must be a string or a list of strings")


def _segment(obj: dict[str, Any]) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":")).encode())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
