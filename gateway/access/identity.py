"""Who a credential belongs to, as Vault says (SPEC §4), with a bounded login cache in front.

- One hvac client per Vault call: hvac's `login()` would otherwise store one caller's token on a
  shared client, where another caller's request could use it.
- Identity comes from the login's `auth.metadata` (JWT claim mappings) or else from the identity
  entity's metadata, read with the gateway's own token. Never from the unverified JWT.
- A successful login is cached under a SHA-256 of the credential, never the credential, for at most
  `vault.cache_ttl` and never past the token's lease or the JWT's `exp`. What happens before a login
  (local token checks, refused credentials, throttling) is gateway/access/authenticator.py's.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import hvac
import requests
from hvac import exceptions as hvac_errors

from gateway.health import metrics
from gateway.health.breaker import breaker

CACHE_LIMIT = 10_000
VAULT_DOWN = (hvac_errors.VaultDown, hvac_errors.InternalServerError, hvac_errors.BadGateway,
              hvac_errors.UnexpectedError, requests.RequestException)
VAULT_REFUSED = (hvac_errors.InvalidRequest, hvac_errors.Forbidden, hvac_errors.Unauthorized,
                 hvac_errors.InvalidPath, hvac_errors.RateLimitExceeded)


class AuthFailed(Exception):
    """Vault refused the credential, or it names nobody we know. `reason` is a class, not a text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoIdentity(AuthFailed):
    """Vault accepted the credential, but neither the login nor the entity names a client_id and role."""

    def __init__(self) -> None:
        super().__init__("no_identity")


class VaultUnavailable(Exception):
    """Vault could not be asked (unreachable, timed out, sealed): the caller gets 503, not 401."""


@dataclass(frozen=True)
class Identity:
    client_id: str
    role: str
    system: bool = False


@dataclass(frozen=True)
class Credential:
    kind: str  # "jwt" or "userpass"
    secret: str
    username: str = ""

    def cache_key(self) -> str:
        material = f"{self.kind}\0{self.username}\0{self.secret}".encode()
        return hashlib.sha256(material).hexdigest()


Value = TypeVar("Value")


class _Flight:
    """One login in progress, shared by every thread that asked for the same credential meanwhile."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.identity: Identity | None = None
        self.error: BaseException | None = None


class TtlCache(Generic[Value]):
    """Thread-safe, size-bounded map from credential hash to (value, monotonic expiry); the oldest
    entry goes first when full, so a flood of distinct keys costs memory up to `limit` and no more."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._entries: OrderedDict[str, tuple[Value, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, key: str) -> Value | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= time.monotonic():
                del self._entries[key]
                return None
            return entry[0]

    def put(self, key: str, value: Value, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (value, time.monotonic() + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)


class VaultIdentity:
    """Logs credentials in to Vault and resolves them to an Identity."""

    def __init__(self, config: Mapping[str, Any], gateway_token: str) -> None:
        self.url = config["url"]
        self.timeout = config["timeout"]
        self.jwt_mount = config["auth_path"].removeprefix("auth/")
        self.userpass_mount = config["userpass_path"].removeprefix("auth/")
        self.jwt_role = config["jwt_role"]
        self.cache_ttl = config["cache_ttl"]
        self.keys = config["identity"]
        self.system_role = config["system_role"]
        self._gateway_token = gateway_token
        self.cache: TtlCache[Identity] = TtlCache()
        self._flights: dict[str, _Flight] = {}
        self._breaker = breaker(f"vault {self.url}")
        self._flights_lock = threading.Lock()

    def cached(self, key: str) -> Identity | None:
        identity = self.cache.get(key)
        metrics.LOGIN_CACHE.labels("hit" if identity is not None else "miss").inc()
        return identity

    def login(self, credential: Credential, guard: Callable[[], AbstractContextManager] = nullcontext
              ) -> tuple[Identity, bool]:
        """Log in to Vault and say who the credential names; (identity, whether another thread's
        login answered it). `guard()` is entered around the one login this makes (the throttle).

        Single flight: when several threads miss on the same credential at once (a client opening many
        connections), one logs in and the others wait for its outcome instead of each calling Vault.
        They share a failure too, and wait at most `vault.timeout`: behind a stalled Vault, eight
        requests with one new credential all answer 503 within the timeout, not one after another."""
        key = credential.cache_key()
        flight, leader = self._join(key)
        if not leader:
            return self._follow(flight), True
        try:
            cached = self.cache.get(key)
            if cached is not None:
                flight.identity = cached
                return cached, True
            with guard():
                auth = self._login(credential)
            identity = self._identity(auth)
            self.cache.put(key, identity, self._cache_ttl(credential, auth))
            flight.identity = identity
            return identity, False
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            self._land(key, flight)

    def read(self, path: str) -> Mapping[str, Any]:
        """`data` of a Vault path read with the gateway's own token (the JWT mount's rules)."""
        response = self._call("config_read", self._gateway_token, "config_unreadable", lambda client: client.read(path))
        return (response or {}).get("data") or {}

    def _join(self, key: str) -> tuple[_Flight, bool]:
        """The login in flight for this key, and whether the caller is to make it (the leader)."""
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight()
            return flight, True

    def _follow(self, flight: _Flight) -> Identity:
        """The leader's outcome: its identity, or the same kind of failure; 503 if it takes longer
        than one Vault call may."""
        if not flight.done.wait(self.timeout):
            raise VaultUnavailable()
        if flight.error is not None:
            raise copy.copy(flight.error) from None
        assert flight.identity is not None  # a leader that did not fail set it before `done`
        return flight.identity

    def _land(self, key: str, flight: _Flight) -> None:
        with self._flights_lock:
            self._flights.pop(key, None)
        flight.done.set()

    def _client(self, token: str | None = None) -> hvac.Client:
        # token="" rather than None: with None, hvac picks up VAULT_TOKEN or ~/.vault-token from the
        # gateway's environment and sends it along with every user's login.
        return hvac.Client(url=self.url, token=token or "", timeout=self.timeout)

    def _login(self, credential: Credential) -> Mapping[str, Any]:
        if credential.kind == "jwt":
            response = self._call("login_jwt", None, "vault_refused", lambda client: client.auth.jwt.jwt_login(
                self.jwt_role, credential.secret, use_token=False, path=self.jwt_mount))
        else:
            response = self._call("login_userpass", None, "vault_refused", lambda client: client.auth.userpass.login(
                credential.username, credential.secret, use_token=False, mount_point=self.userpass_mount))
        auth = response.get("auth") if isinstance(response, Mapping) else None
        if not auth or not auth.get("client_token"):
            raise AuthFailed("vault_no_auth")
        return auth

    def _identity(self, auth: Mapping[str, Any]) -> Identity:
        metadata = auth.get("metadata") or {}
        client_id, role = metadata.get(self.keys["login_client_id"]), metadata.get(self.keys["login_role"])
        if not (client_id and role) and auth.get("entity_id"):
            entity = self._entity_metadata(auth["entity_id"])
            client_id = client_id or entity.get(self.keys["entity_client_id"])
            role = role or entity.get(self.keys["entity_role"])
        if not (isinstance(client_id, str) and client_id and isinstance(role, str) and role):
            raise NoIdentity()
        return Identity(client_id=client_id, role=role, system=role == self.system_role)

    def _entity_metadata(self, entity_id: str) -> Mapping[str, Any]:
        response = self._call("entity_read", self._gateway_token, "entity_unreadable",
                              lambda client: client.secrets.identity.read_entity(entity_id=entity_id))
        return ((response or {}).get("data") or {}).get("metadata") or {}

    def _call(self, operation: str, token: str | None, refused: str, call: Callable[[hvac.Client], Any]) -> Any:
        """One Vault call on a fresh client, timed; Vault's refusals and outages become our two errors.
        Behind the Vault breaker (gateway/health/breaker.py): right after an outage, calls are refused at once
        until one probe gets through, so a stalled Vault costs one timeout per process, not per request."""
        if not self._breaker.allow():
            metrics.VAULT_LATENCY.labels(operation, "unavailable").observe(0.0)
            raise VaultUnavailable()
        client, outcome, started = self._client(token), "ok", time.perf_counter()
        try:
            return call(client)
        except VAULT_REFUSED:
            outcome = "refused"
            raise AuthFailed(refused) from None
        except VAULT_DOWN:
            outcome = "unavailable"
            raise VaultUnavailable() from None
        finally:
            (self._breaker.failed if outcome == "unavailable" else self._breaker.succeeded)()
            client.adapter.close()
            metrics.VAULT_LATENCY.labels(operation, outcome).observe(time.perf_counter() - started)

    def _cache_ttl(self, credential: Credential, auth: Mapping[str, Any]) -> float:
        bounds = [float(self.cache_ttl)]
        lease = auth.get("lease_duration")
        if isinstance(lease, (int, float)) and lease > 0:
            bounds.append(float(lease))
        if credential.kind == "jwt":
            # Vault has verified this token; its exp is read only to bound how long we trust it.
            exp = _jwt_exp(credential.secret)
            bounds.append(exp - time.time() if exp is not None else 0.0)
        return min(bounds)


def _jwt_exp(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (IndexError, ValueError, AttributeError):
        return None
