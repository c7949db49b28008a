"""How to reach a Redis address of the settings: a plain URL, or a Sentinel group that names its master.

A Sentinel address is written as kombu and Celery take it, every sentinel in one string:
`sentinel://[USER:PASSWORD@]HOST:PORT/DB;sentinel://HOST:PORT/DB;...`. The credentials in the first URL
are the *master's* (folded in from .secrets.json `redis`, as for redis://), the database is the first
URL's; the sentinels' own credentials never travel in a URL (kombu#1007: passwords in sentinel URLs were
mis-parsed) but in `sentinel_kwargs`, built here for kombu, Celery's result backend and our own clients
alike. The master's name is config `queue.sentinel.master_name`.

`connect` is the one place our own clients (the gateway's, gateway/health/clients.py; the workers',
tasks/runtime.py) are built: for a Sentinel address it returns redis-py's master-following client
(`Sentinel.master_for`), whose connections ask the sentinels for the master each time they connect, so a
failover is followed without a restart. Every sentinel is asked in turn (celery#5538: one down sentinel
must not hide the others), each bounded by the client's own timeouts.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.sentinel import Sentinel

SCHEME = "sentinel://"
SEPARATOR = ";"
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelOptions:
    """The master's name and the sentinels' own credentials (not the master's)."""

    master_name: str
    username: str | None = None
    password: str | None = None

    def sentinel_kwargs(self, timeout: float | None, connect_timeout: float | None = None) -> dict[str, Any]:
        """Connection options of the clients that talk to the sentinels themselves. Always given
        explicitly: Celery's result backend defaults to none at all, which means no socket timeout; and
        redis-py 8 retries a client built from host and port ten times with a backoff (4 to 5 s for a
        sentinel that refuses connections) before the next sentinel is asked: `retry` None asks once."""
        kwargs: dict[str, Any] = {"retry": None, "socket_timeout": timeout,
                                  "socket_connect_timeout": connect_timeout if connect_timeout is not None else timeout}
        if self.password:
            kwargs["password"] = self.password
            if self.username:
                kwargs["username"] = self.username
        return kwargs


@dataclass(frozen=True)
class SentinelAddress:
    """A sentinel:// URL taken apart: every sentinel, the database, the master's credentials."""

    sentinels: tuple[tuple[str, int], ...]
    db: int
    username: str | None
    password: str | None


def is_sentinel(url: str) -> bool:
    return url.startswith(SCHEME)


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Raise ValueError, saying why, on anything that is not a list of sentinel://HOST:PORT[/DB]."""
    chunks = [chunk for chunk in url.split(SEPARATOR) if chunk]
    sentinels = []
    for chunk in chunks:
        parts = urlsplit(chunk)
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ValueError(f"{chunk.rsplit('@', 1)[-1]!r} is not sentinel://HOST:PORT")
        sentinels.append((parts.hostname, parts.port or DEFAULT_PORT))
    if not sentinels:
        raise ValueError("no sentinel named")
    first = urlsplit(chunks[0])
    db = first.path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    return SentinelAddress(tuple(sentinels), int(db), unquote(first.username) if first.username else None,
                           unquote(first.password) if first.password else None)


def connect(url: str, sentinel: SentinelOptions | None, sentinel_connection_class: type | None = None,
            **options: Any) -> Redis:
    """A client of `url` with redis-py `options`; for a Sentinel address, one that follows the master.
    `sentinel_connection_class` replaces options' `connection_class` for a Sentinel address (it must
    derive from redis-py's SentinelManagedConnection)."""
    if not is_sentinel(url):
        return Redis.from_url(url, **options)
    if sentinel is None:
        raise ValueError("a sentinel:// address needs config queue.sentinel.master_name")
    address = parse_sentinel_url(url)
    options.pop("connection_class", None)
    if sentinel_connection_class is not None:
        options["connection_class"] = sentinel_connection_class
    manager = Sentinel(address.sentinels, sentinel_kwargs=sentinel.sentinel_kwargs(
        options.get("socket_timeout"), options.get("socket_connect_timeout")))
    return manager.master_for(sentinel.master_name, db=address.db, username=address.username,
                              password=address.password, **options)


def transport_options(sentinel: SentinelOptions, timeout: float | None,
                      connect_timeout: float | None = None) -> Mapping[str, Any]:
    """What kombu's Sentinel transport and Celery's Sentinel result backend need beyond the URL."""
    return {"master_name": sentinel.master_name, "sentinel_kwargs": sentinel.sentinel_kwargs(timeout, connect_timeout)}
