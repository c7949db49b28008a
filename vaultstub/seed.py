"""Load and check a seed file: users, JWT roles and keys, tokens, policies, entities.

Every problem is reported at once (like Vault refusing a bad role at config time), so a broken
seed fails when the server starts instead of as a puzzling 400 in the middle of a test.
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

# Vault's framework.GenericNameRegex: what a userpass username or a role name may look like.
NAME_PATTERN = re.compile(r"\w(?:[\w.-]*\w)?", re.ASCII)
# Vault's jwt plugin puts the role name under this metadata key, so no claim may be mapped onto it.
RESERVED_METADATA = ("role",)
DEFAULT_POLICIES = {"gateway-identity-read": ("identity/entity/id/*",)}
DEFAULT_TTL = 768 * 3600  # Vault's system default token TTL
HASH_SCHEME = "pbkdf2_sha256"
HASH_ITERATIONS = 100_000


class SeedError(ValueError):
    """The seed is unusable; the message lists every problem, one per line."""


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    policies: tuple[str, ...]
    ttl: int


@dataclass(frozen=True)
class Role:
    name: str
    keys: tuple[Any, ...]
    algs: tuple[str, ...]
    bound_issuer: str
    bound_audiences: tuple[str, ...]
    bound_subject: str
    user_claim: str
    claim_mappings: dict[str, str]
    policies: tuple[str, ...]
    ttl: int
    clock_skew_leeway: int
    expiration_leeway: int
    not_before_leeway: int


@dataclass(frozen=True)
class Seed:
    userpass_mount: str = "userpass"
    jwt_mount: str = "jwt"
    users: dict[str, User] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    tokens: tuple[dict[str, Any], ...] = ()
    policies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    entities: tuple[dict[str, Any], ...] = ()


def hash_password(password: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None) -> str:
    """Salted PBKDF2 in one self-describing string: `pbkdf2_sha256$iterations$salt_b64$hash_b64`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, encoded: str) -> bool:
    """Constant-time comparison against a `hash_password` string."""
    _, iterations, salt, expected = encoded.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(digest, base64.b64decode(expected))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _valid_hash(encoded: Any) -> bool:
    parts = encoded.split("$") if isinstance(encoded, str) else []
    return len(parts) == 4 and parts[0] == HASH_SCHEME and parts[1].isdigit()


class _Checker:
    """Collects problems with their seed path instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def expect(self, ok: bool, where: str, message: str) -> bool:
        if not ok:
            self.problems.append(f"{where}: {message}")
        return ok

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return tuple(value) if self.expect(ok, where, "must be a list of strings") else ()

    def integer(self, value: Any, where: str) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if self.expect(ok, where, "must be an integer (seconds)") else 0

    def keys(self, pems: Any, where: str) -> tuple[Any, ...]:
        loaded = []
        for i, pem in enumerate(self.strings(pems, where)):
            try:
                loaded.append(load_pem_public_key(pem.encode()))
            except ValueError:
                self.problems.append(f"{where}[{i}]: not a PEM public key")
        return tuple(loaded)


def load_seed(raw: dict[str, Any]) -> Seed:
    """Turn a parsed seed document into a `Seed`, or raise `SeedError` naming every problem."""
    check = _Checker()
    if not check.expect(isinstance(raw, dict), "seed", "must be a JSON object"):
        raise SeedError("\n".join(check.problems))
    unknown = set(raw) - {"tokens", "policies", "userpass", "jwt", "entities"}
    check.expect(not unknown, "seed", f"unknown keys {sorted(unknown)}")
    userpass, jwt = raw.get("userpass", {}), raw.get("jwt", {})
    seed = Seed(
        userpass_mount=userpass.get("mount", "userpass"),
        jwt_mount=jwt.get("mount", "jwt"),
        users=_users(userpass.get("users", {}), check),
        roles=_roles(jwt, check),
        tokens=_tokens(raw.get("tokens", []), check),
        policies=DEFAULT_POLICIES | {
            name: check.strings(paths, f"policies.{name}") for name, paths in raw.get("policies", {}).items()
        },
        entities=tuple(raw.get("entities", [])),
    )
    _check_entities(seed, check)
    if check.problems:
        raise SeedError("\n".join(check.problems))
    return seed


def _users(users: dict[str, Any], check: _Checker) -> dict[str, User]:
    out = {}
    for raw_name, spec in users.items():
        where, name = f"userpass.users.{raw_name}", raw_name.lower()  # Vault stores usernames lowercased
        if not check.expect(isinstance(spec, dict), where, "must be an object"):
            continue
        check.expect(bool(NAME_PATTERN.fullmatch(raw_name)), where, "not a valid Vault username")
        if "password_hash" in spec:
            encoded = spec["password_hash"]
            check.expect(_valid_hash(encoded), where, f"password_hash must look like {HASH_SCHEME}$iterations$salt$hash")
        elif check.expect(isinstance(spec.get("password"), str) and spec.get("password"), where, "needs password or password_hash"):
            encoded = hash_password(spec["password"])
        else:
            continue
        out[name] = User(name, encoded, check.strings(spec.get("policies", []), f"{where}.policies"),
                         check.integer(spec.get("ttl", 0), f"{where}.ttl") or DEFAULT_TTL)
    return out


def _roles(jwt: dict[str, Any], check: _Checker) -> dict[str, Role]:
    mount_keys = check.keys(jwt.get("keys", []), "jwt.keys")
    algs = check.strings(jwt.get("supported_algs", ["RS256"]), "jwt.supported_algs")
    out = {}
    for raw_name, spec in jwt.get("roles", {}).items():
        where = f"jwt.roles.{raw_name}"
        if not check.expect(isinstance(spec, dict), where, "must be an object"):
            continue
        keys = check.keys(spec["keys"], f"{where}.keys") if "keys" in spec else mount_keys
        check.expect(bool(keys), where, "no public keys (set jwt.keys or the role's keys)")
        mappings = spec.get("claim_mappings", {})
        for target in mappings.values():
            check.expect(target not in RESERVED_METADATA, f"{where}.claim_mappings",
                         f'metadata key "{target}" is reserved and may not be a mapping destination')
        check.expect(len(set(mappings.values())) == len(mappings), f"{where}.claim_mappings",
                     "multiple keys are mapped to one metadata key")
        audiences = check.strings(spec.get("bound_audiences", []), f"{where}.bound_audiences")
        check.expect(bool(audiences or spec.get("bound_subject")), where,
                     "must have at least one bound constraint when creating/updating a role")
        out[raw_name.lower()] = Role(
            name=raw_name.lower(), keys=keys, algs=algs,
            bound_issuer=spec.get("bound_issuer", jwt.get("bound_issuer", "")),
            bound_audiences=audiences, bound_subject=spec.get("bound_subject", ""),
            user_claim=spec.get("user_claim", "sub"), claim_mappings=dict(mappings),
            policies=check.strings(spec.get("policies", []), f"{where}.policies"),
            ttl=check.integer(spec.get("ttl", 0), f"{where}.ttl") or DEFAULT_TTL,
            clock_skew_leeway=check.integer(spec.get("clock_skew_leeway", 60), f"{where}.clock_skew_leeway"),
            expiration_leeway=check.integer(spec.get("expiration_leeway", 150), f"{where}.expiration_leeway"),
            not_before_leeway=check.integer(spec.get("not_before_leeway", 150), f"{where}.not_before_leeway"),
        )
    return out


def _tokens(tokens: list[dict[str, Any]], check: _Checker) -> tuple[dict[str, Any], ...]:
    for i, token in enumerate(tokens):
        check.expect(isinstance(token.get("id"), str) and bool(token.get("id")), f"tokens[{i}].id", "must be a non-empty string")
        check.strings(token.get("policies", []), f"tokens[{i}].policies")
    return tuple(tokens)


def _check_entities(seed: Seed, check: _Checker) -> None:
    seen: set[tuple[str, str]] = set()
    for i, entity in enumerate(seed.entities):
        metadata = entity.get("metadata") or {}
        check.expect(all(isinstance(v, str) for v in metadata.values()), f"entities[{i}].metadata", "values must be strings")
        for alias in entity.get("aliases", []):
            key = (alias.get("mount"), alias.get("name"))
            check.expect(key[0] in (seed.userpass_mount, seed.jwt_mount), f"entities[{i}].aliases",
                         f"mount must be {seed.userpass_mount!r} or {seed.jwt_mount!r}")
            check.expect(key not in seen, f"entities[{i}].aliases", f"alias {key} already belongs to another entity")
            seen.add(key)
