"""A bearer token checked here before Vault sees it (SPEC §4, §8: nothing unauthenticated is expensive).

The rules are Vault's own, read with the gateway's token from the JWT mount (`auth/jwt/config`: static
`jwt_validation_pubkeys`, or a `jwks_url`, or an `oidc_discovery_url`; the supported algorithms and
`bound_issuer`) and from the login role (`bound_audiences` and the leeways). Structure, algorithm,
signature, issuer, audience, `exp` and `nbf` are checked; what fails is refused without a Vault call.
Vault stays the authority: a token that passes is still logged in there, and Vault says who it is.

The local check is never stricter than Vault: its time leeways are Vault's plus CLOCK_MARGIN, and a
claim Vault does not look at is not looked at here. Keys are re-read every `vault.jwt_keys_ttl`
seconds, and early (a key rotated in Vault, an unknown `kid`) at most once per `vault.jwt_keys_refresh`
seconds, so a flood of tokens signed by strangers costs Vault at most one read per interval.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jwt as pyjwt
import requests
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.types import Options
from loguru import logger

from gateway.access.identity import AuthFailed, VaultUnavailable

DEFAULT_CLOCK_SKEW = 60  # Vault's jwt auth: a role's clock_skew_leeway of 0 means 60 s
CLOCK_MARGIN = 10  # seconds added to Vault's leeways: gateway and Vault clocks may differ a little
MAX_TOKEN_BYTES = 16 * 1024
ASYMMETRIC = ("RS", "PS", "ES", "Ed")


@dataclass(frozen=True)
class JwtRules:
    """What Vault's JWT mount and role accept, as read from Vault."""

    algorithms: tuple[str, ...]
    issuer: str
    audiences: tuple[str, ...]
    exp_leeway: float
    nbf_leeway: float
    static_keys: tuple[Any, ...] = ()
    keys_by_kid: Mapping[str, Any] = field(default_factory=dict)

    def candidates(self, kid: Any) -> Sequence[Any]:
        """The keys that may have signed a token with this `kid` (static keys carry no kid)."""
        if isinstance(kid, str) and kid in self.keys_by_kid:
            return [self.keys_by_kid[kid]]
        return [*self.static_keys, *([] if kid else self.keys_by_kid.values())]


class LocalJwtCheck:
    """Verifies tokens against the rules of one JWT mount and role; thread-safe."""

    def __init__(self, read_vault: Callable[[str], Mapping[str, Any]], mount: str, role: str,
                 ttl: float, min_refresh: float, http_timeout: float) -> None:
        self._read_vault = read_vault
        self._mount, self._role = mount, role
        self._ttl, self._min_refresh, self._http_timeout = ttl, min_refresh, http_timeout
        self._rules: JwtRules | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def verify(self, token: str) -> None:
        """Return if the token may be worth Vault's time; raise AuthFailed (reason jwt_*) if not, or
        VaultUnavailable if the rules cannot be read."""
        header = _header(token)
        rules = self._current()
        if header.get("alg") not in rules.algorithms:
            raise AuthFailed("jwt_algorithm")
        claims = _verified_claims(token, header, rules)
        if claims is None and self._may_refresh():
            rules = self._load(keys_only=True)
            claims = _verified_claims(token, header, rules)
        if claims is None:
            raise AuthFailed("jwt_signature")
        _check_claims(claims, rules, time.time())

    def _current(self) -> JwtRules:
        if self._rules is not None and time.monotonic() - self._read_at < self._ttl:
            return self._rules
        return self._load()

    def _may_refresh(self) -> bool:
        return time.monotonic() - self._read_at >= self._min_refresh

    def _load(self, keys_only: bool = False) -> JwtRules:
        """Read the rules once for everyone: a thread finding a read under way keeps the rules it has
        (at start, with none, it waits for that read at most twice the Vault timeout). A failed re-read
        keeps the old rules and still counts as a read, so an outage costs one attempt per interval."""
        first = self._rules is None
        if not self._lock.acquire(first, self._http_timeout * 2 if first else -1):
            if self._rules is None:
                raise VaultUnavailable()
            return self._rules
        try:
            if self._rules is not None and time.monotonic() - self._read_at < self._min_refresh:
                return self._rules  # another thread has just read them
            try:
                self._rules = self._read_rules(self._rules if keys_only else None)
            except VaultUnavailable:
                if self._rules is None:
                    raise
                logger.warning("jwt keys: re-reading them from Vault failed; keeping the ones read before")
            self._read_at = time.monotonic()
            return self._rules
        finally:
            self._lock.release()

    def _read_rules(self, previous: JwtRules | None = None) -> JwtRules:
        """The mount's rules; with `previous`, only its config (keys, algorithms, issuer) is read again
        and the role's bounds are kept: an unknown key costs one Vault read, not two."""
        try:
            config = self._read_vault(f"auth/{self._mount}/config")
            if previous is not None:
                static, by_kid = _keys(config, self._http_timeout)
                return replace(previous, algorithms=_algorithms(config), issuer=config.get("bound_issuer") or "",
                               static_keys=static, keys_by_kid=by_kid)
            role = self._read_vault(f"auth/{self._mount}/role/{self._role}")
        except AuthFailed:
            logger.error("vault: the gateway's token may not read the JWT mount's config and role "
                         "(policy job-gateway, deploy/vault_bootstrap.py)")
            raise VaultUnavailable() from None
        static, by_kid = _keys(config, self._http_timeout)
        skew = _seconds(role.get("clock_skew_leeway"))
        skew = DEFAULT_CLOCK_SKEW if skew == 0 else max(skew, 0)
        return JwtRules(
            algorithms=_algorithms(config),
            issuer=config.get("bound_issuer") or "",
            audiences=tuple(role.get("bound_audiences") or ()),
            exp_leeway=skew + max(_seconds(role.get("expiration_leeway")), 0) + CLOCK_MARGIN,
            nbf_leeway=skew + max(_seconds(role.get("not_before_leeway")), 0) + CLOCK_MARGIN,
            static_keys=static, keys_by_kid=by_kid)


def _algorithms(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The mount's supported algorithms (Vault's default RS256), asymmetric ones only."""
    return tuple(alg for alg in config.get("jwt_supported_algs") or ("RS256",) if alg.startswith(ASYMMETRIC))


def _header(token: str) -> Mapping[str, Any]:
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthFailed("jwt_malformed")
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.PyJWTError:
        raise AuthFailed("jwt_malformed") from None
    return header


def _verified_claims(token: str, header: Mapping[str, Any], rules: JwtRules) -> dict[str, Any] | None:
    """The claims if one of the candidate keys verifies the signature, else None."""
    options: Options = {"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
               "verify_aud": False, "verify_iss": False}
    for key in rules.candidates(header.get("kid")):
        try:
            return pyjwt.decode(token, key, algorithms=[header["alg"]], options=options)
        except (pyjwt.InvalidSignatureError, pyjwt.InvalidKeyError, pyjwt.InvalidAlgorithmError, TypeError, ValueError):
            continue
        except pyjwt.PyJWTError:
            raise AuthFailed("jwt_malformed") from None
    return None


def _check_claims(claims: Mapping[str, Any], rules: JwtRules, now: float) -> None:
    if rules.issuer and claims.get("iss") != rules.issuer:
        raise AuthFailed("jwt_issuer")
    audience = claims.get("aud")
    audience = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if rules.audiences and not set(rules.audiences) & {a for a in audience if isinstance(a, str)}:
        raise AuthFailed("jwt_audience")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and (not _number(exp) or now > exp + rules.exp_leeway):
        raise AuthFailed("jwt_expired")
    if nbf is not None and (not _number(nbf) or now < nbf - rules.nbf_leeway):
        raise AuthFailed("jwt_not_yet_valid")


def _keys(config: Mapping[str, Any], timeout: float) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(static public keys, JWKS keys by kid) from the mount's config."""
    static = tuple(load_pem_public_key(pem.encode()) for pem in config.get("jwt_validation_pubkeys") or ())
    jwks_url = config.get("jwks_url")
    if not jwks_url and config.get("oidc_discovery_url"):
        discovery = config["oidc_discovery_url"].rstrip("/") + "/.well-known/openid-configuration"
        jwks_url = _fetch_json(discovery, timeout).get("jwks_uri")
    if not jwks_url:
        return static, {}
    keys = pyjwt.PyJWKSet.from_dict(_fetch_json(jwks_url, timeout)).keys
    return static, {key.key_id or f"#{index}": key.key for index, key in enumerate(keys)}


def _fetch_json(url: str, timeout: float) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError):
        logger.warning("jwt keys: could not read {}", url)
        raise VaultUnavailable() from None


def _seconds(value: Any) -> float:
    return float(value) if _number(value) else 0.0


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
