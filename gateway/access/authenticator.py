"""From an Authorization header to an Identity at the least cost to Vault (SPEC §4, §8).

In order, each step cheaper than the next and each able to end the request:
1. the header's shape (gateway/access/credentials.py) — malformed: 401;
2. the login cache: a credential Vault accepted recently is answered from memory;
3. the throttle, shared by every gateway process through Redis: failed authentications per source
   address, and Vault login attempts per userpass username (counted before the login, atomically, so
   concurrent guesses cannot slip past it; successes are cached, so a legitimate user needs about one
   per gateway process per `vault.cache_ttl`), and at most one login per username in flight per
   process — over either limit: 429 with Retry-After, nothing else is tried;
4. the refused-credential memory: a credential refused in the last `vault.refused_ttl` seconds is
   refused again from memory (keyed by its SHA-256, bounded);
5. for a bearer token, the local check against the JWT mount's own rules (gateway/access/jwtcheck.py);
6. only then Vault's login, which stays the authority on who the caller is.
Every failure at 1, 4, 5 or 6 counts against its source; a failure at 5 or 6 is remembered at 4.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gateway.access.credentials import parse_authorization
from gateway.access.identity import AuthFailed, Identity, NoIdentity, TtlCache, VaultIdentity
from gateway.access.jwtcheck import LocalJwtCheck
from gateway.access.ratelimit import Rate, Refused, SlidingWindow

SOURCE, USERNAME = "failed_auth_source", "failed_auth_username"


class Throttled(Exception):
    """Too many failed authentications from this source or for this username."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class FailedAuthThrottle:
    """Counts failed authentications per source and login attempts per username in Redis (the same
    sliding-window counter as the client rate limits, gateway/access/ratelimit.py). Redis unreachable: it
    lets requests through (fail open) and says so in the log; the local checks and the refused memory
    still stand in front of Vault."""

    def __init__(self, window: SlidingWindow, config: Mapping[str, Any]) -> None:
        self._window = window
        self._limits = {SOURCE: _parsed(config.get("per_source")), USERNAME: _parsed(config.get("per_username"))}

    def guard(self, source: str) -> None:
        """Raise Throttled if the source has used up its failures."""
        self._check(SOURCE, source, self._window.exceeded)

    def attempt(self, username: str) -> None:
        """Count a Vault login for this username, or raise Throttled if it has had its share. Counting
        and checking are one step, so concurrent attempts cannot all pass."""
        if username:
            self._check(USERNAME, username, self._window.hit)

    def failed(self, source: str) -> None:
        try:
            self._check(SOURCE, source, self._window.hit)
        except Throttled:
            pass  # counted as far as it counts: a refused hit is not counted, as a refused request is not

    def _check(self, kind: str, key: str, step: Callable[[Rate, str, str], None]) -> None:
        rate = self._limits[kind]
        if rate is None:
            return
        try:
            step(rate, kind, key)
        except Refused as refused:
            raise Throttled(refused.retry_after) from None


class Authenticator:
    def __init__(self, identity: VaultIdentity, jwt_check: LocalJwtCheck, throttle: FailedAuthThrottle,
                 refused_ttl: float) -> None:
        self.identity = identity
        self.jwt_check = jwt_check
        self.throttle = throttle
        self.refused: TtlCache[bool] = TtlCache()
        self.refused_ttl = refused_ttl
        self._in_flight: set[str] = set()
        self._slots_lock = threading.Lock()

    def authenticate(self, header: str | None, source: str) -> tuple[Identity, str]:
        """(identity, how: "cached" or "vault_login"); raises AuthFailed (401), NoIdentity (403),
        Throttled (429) or VaultUnavailable (503)."""
        try:
            credential = parse_authorization(header)
        except AuthFailed:
            self.throttle.guard(source)
            self.throttle.failed(source)
            raise
        key = credential.cache_key()
        identity = self.identity.cached(key)
        if identity is not None:
            return identity, "cached"
        self.throttle.guard(source)
        try:
            if self.refused.get(key):
                raise AuthFailed("cached_reject")
            if credential.kind == "jwt":
                self.jwt_check.verify(credential.secret)
            identity, shared = self.identity.login(credential, guard=lambda: self._login_slot(credential.username))
        except NoIdentity:
            raise  # Vault accepted it: not a failed authentication, and not to be remembered as one
        except AuthFailed as failure:
            self.refused.put(key, True, self.refused_ttl)
            self.throttle.failed(source)
            raise failure from None
        return identity, "cached" if shared else "vault_login"


    @contextmanager
    def _login_slot(self, username: str) -> Iterator[None]:
        """Around a Vault login: one login per userpass username in flight in this process (a second,
        with another password, is a guess: 429 at once, rather than piling up on Vault, which answers a
        burst of failed logins slowly), counted against the username's limit."""
        if username:
            with self._slots_lock:
                if username in self._in_flight:
                    raise Throttled(1)
                self._in_flight.add(username)
        try:
            self.throttle.attempt(username)
            yield
        finally:
            if username:
                with self._slots_lock:
                    self._in_flight.discard(username)


def _parsed(text: str | None) -> Rate | None:
    return Rate.parse(text) if text else None
