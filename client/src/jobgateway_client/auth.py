"""How a client proves who it is: Basic (a Vault userpass user), a fixed bearer token (a JWT Vault's JWT
auth accepts), or a token provider, a callable asked for a fresh token when none is held and again,
once, when the gateway answers 401 (the token expired): re-login without a loop.

Secrets stay out of every repr, message and log line."""
from __future__ import annotations

import base64
import inspect
import threading
from collections.abc import Awaitable, Callable

import anyio
import anyio.to_thread

from jobgateway_client.errors import TokenProviderError

TokenSource = Callable[[], str | Awaitable[str]]


class Auth:
    """Base of the strategies. `refreshable` strategies can be asked for a new credential after a 401."""

    refreshable = False

    def static_header(self) -> str | None:
        """The Authorization header of a strategy whose credential never changes."""
        return None


class BasicAuth(Auth):
    """HTTP Basic: a Vault userpass username and password."""

    def __init__(self, username: str, password: str) -> None:
        if not username or ":" in username:
            raise ValueError("a Basic username must be non-empty and contain no colon")
        self.username = username
        self._value = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")

    def static_header(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


class BearerToken(Auth):
    """A fixed bearer token (a JWT). When it expires, calls answer 401: use a TokenProvider to renew."""

    def __init__(self, token: str) -> None:
        self._value = "Bearer " + _checked(token, ValueError)

    def static_header(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "BearerToken(***)"


class TokenProvider(Auth):
    """A callable returning a fresh bearer token (plain or `async def`): one that asks Vault, an identity
    provider, or runs a command. Called before the first request, and again after a 401 — once per
    request, never in a loop. With `Client`, an `async` callable is refused; with `AsyncClient`, a plain
    one runs in a worker thread so a slow provider does not block the event loop."""

    refreshable = True

    def __init__(self, fetch: TokenSource) -> None:
        if not callable(fetch):
            raise TypeError("TokenProvider takes a callable returning a token")
        self.fetch = fetch

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fetch) or inspect.iscoroutinefunction(type(self.fetch).__call__)

    def __repr__(self) -> str:
        return f"TokenProvider({getattr(self.fetch, '__name__', type(self.fetch).__name__)})"


AuthLike = Auth | tuple[str, str] | str | Callable[[], str] | None


def as_auth(value: AuthLike) -> Auth | None:
    """Shorthands: `(username, password)` is Basic, a string a fixed bearer token, a callable a provider."""
    if value is None or isinstance(value, Auth):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return BasicAuth(*value)
    if isinstance(value, str):
        return BearerToken(value)
    if callable(value):
        return TokenProvider(value)
    raise TypeError("auth must be BasicAuth, BearerToken, TokenProvider, (username, password), a token or a callable")


def _checked(token: object, error: type[Exception] = TokenProviderError) -> str:
    """A token is one non-empty word (a provider's trailing newline is dropped); never quoted in the error."""
    if not isinstance(token, str) or not token.strip() or any(c.isspace() for c in token.strip()):
        raise error("the token is empty or not a single word")
    return token.strip()


class Credentials:
    """The header a client sends now, and its generation: a refresh after a 401 replaces the token only
    if no other request has replaced it since this one was sent, so concurrent 401s fetch once."""

    def __init__(self, auth: Auth | None) -> None:
        if isinstance(auth, TokenProvider) and auth.is_async:
            raise TypeError("Client takes a plain token callable; use AsyncClient for an async one")
        self.auth = auth
        self._header: str | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def current(self) -> tuple[str | None, int]:
        if not isinstance(self.auth, TokenProvider):
            return (self.auth.static_header() if self.auth else None), 0
        with self._lock:
            if self._header is None:
                self._header = "Bearer " + self._fetch()
            return self._header, self._generation

    def refresh(self, generation: int) -> bool:
        """After a 401 with `generation`'s header: a new token (unless another request got one). False
        when the strategy cannot renew."""
        if not isinstance(self.auth, TokenProvider):
            return False
        with self._lock:
            if generation == self._generation:
                self._header = "Bearer " + self._fetch()
                self._generation += 1
        return True

    def _fetch(self) -> str:
        assert isinstance(self.auth, TokenProvider)
        try:
            token = self.auth.fetch()
        except TokenProviderError:
            raise
        except Exception as exc:  # any provider failure is one typed error, cause chained
            raise TokenProviderError(f"the token provider failed: {type(exc).__name__}") from exc
        return _checked(token)


class AsyncCredentials:
    """Credentials for AsyncClient: the same rules, an async lock, the provider awaited or run in a thread."""

    def __init__(self, auth: Auth | None) -> None:
        self.auth = auth
        self._header: str | None = None
        self._generation = 0
        self._lock: anyio.Lock | None = None

    async def current(self) -> tuple[str | None, int]:
        if not isinstance(self.auth, TokenProvider):
            return (self.auth.static_header() if self.auth else None), 0
        async with self._locked():
            if self._header is None:
                self._header = "Bearer " + await self._fetch()
            return self._header, self._generation

    async def refresh(self, generation: int) -> bool:
        if not isinstance(self.auth, TokenProvider):
            return False
        async with self._locked():
            if generation == self._generation:
                self._header = "Bearer " + await self._fetch()
                self._generation += 1
        return True

    def _locked(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def _fetch(self) -> str:
        assert isinstance(self.auth, TokenProvider)
        fetch = self.auth.fetch
        try:
            if self.auth.is_async:
                token = await fetch()  # type: ignore[misc]
            else:
                token = await anyio.to_thread.run_sync(fetch)
        except TokenProviderError:
            raise
        except Exception as exc:  # any provider failure is one typed error, cause chained
            raise TokenProviderError(f"the token provider failed: {type(exc).__name__}") from exc
        return _checked(token)
