"""kombu's Redis transport for the gateway's publisher, minus one cost: a client object per publish.

kombu's Redis channel builds a new `redis.Redis` for every command batch it sends without a client
(`conn_or_acquire()`); with redis-py 8 that constructor builds its response-callback tables each
time, measured at about a fifth of the CPU of a publish. The client only wraps the channel's
connection pool and is thread-safe, so this channel builds it once and reuses it. Nothing else
changes: same pool, same commands, same message format (a stock worker and Flower see no
difference). Used only by the gateway (celeryconfig, role "gateway"); workers keep stock kombu.
"""
from __future__ import annotations

from contextlib import contextmanager

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        if self._shared_client is None:
            self._shared_client = self._create_client()
        yield self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel
