"""Landing lists: where a worker's transport puts a message it takes off its queue until the delivery
is recorded in kombu's `unacked` (tasks/delivery/transport.py), and how what a dead worker left there
goes back. Key names: jobs/keys.py (`gw:landing:<node>:<queue>`, `gw:landings`, `gw:worker-alive:<node>`).

A worker starting under a node name first puts back what its previous life left (it has taken nothing
yet); every live worker's sweep puts back the lists of nodes whose alive key has lapsed, and what has
sat in its own list since its previous sweep (a move whose reply was lost with the connection: the
transport clears each landing within milliseconds). Messages go back to the consuming end of their
queue, oldest first to be taken again, so they run next. A message put back whose delivery had been
recorded too runs once: the start check (tasks/delivery/startcheck.py) holds or skips the second.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from jobs.keys import ALIVE_PREFIX, LANDINGS, landing_key

# KEYS[1] landing list, KEYS[2] its queue: move everything back, newest first to the consuming end, so
# the oldest ends up taken first. Returns how many moved.
PUT_BACK = """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
return moved
"""

# KEYS[1] landing list, KEYS[2] its queue, ARGV[1] a message: back to the queue if it is still there.
PUT_ONE_BACK = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

Seen = set[tuple[Any, Any]]


class Landings:
    """One worker's landing lists: named once each in `gw:landings`, swept at each refresh
    (tasks/delivery/keeper.py)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._registered: set[str] = set()
        self._seen: Seen = set()  # own landing lists' contents at the previous sweep

    def key(self, queue: str) -> str:
        return landing_key(self.node, queue)

    def register(self, acquire: Callable[[], AbstractContextManager[Any]], queue: str) -> str:
        """The landing list for `queue`, named in `gw:landings` the first time so a sweep can find it.
        `acquire` lends a Redis client (the channel's `conn_or_acquire`)."""
        name = self.key(queue)
        if name not in self._registered:
            with acquire() as client:
                client.hset(LANDINGS, name, json.dumps({"node": self.node, "queue": queue}))
            self._registered.add(name)
        return name

    def put_back_own(self, client: Any) -> int:
        """Put back everything in this node's lists (a worker starting again under that name)."""
        return sum(int(client.eval(PUT_BACK, 2, name, place["queue"]))
                   for name, place in _places(client) if place["node"] == self.node)

    def sweep(self, client: Any) -> int:
        """One read of `gw:landings` and one of every other node's alive key: put back the lists of every
        node whose alive key has lapsed, and what sits in this node's own lists and sat there at the
        previous sweep too. Returns how many went back."""
        moved, now = 0, set()
        places = _places(client)
        others = sorted({place["node"] for _, place in places if place["node"] != self.node})
        alive = dict(zip(others, client.mget([ALIVE_PREFIX + node for node in others]), strict=True)) if others else {}
        for name, place in places:
            if place["node"] == self.node:
                for item in client.lrange(name, 0, -1):
                    if (name, item) in self._seen:
                        moved += int(client.eval(PUT_ONE_BACK, 2, name, place["queue"], item))
                    else:
                        now.add((name, item))
            elif alive[place["node"]] is None:
                moved += int(client.eval(PUT_BACK, 2, name, place["queue"]))
        self._seen = now
        return moved


def mark_alive(client: Any, node: str, seconds: float) -> None:
    client.set(ALIVE_PREFIX + node, "1", ex=max(1, int(seconds)))


def _places(client: Any) -> list[tuple[Any, dict[str, str]]]:
    return [(name, json.loads(value)) for name, value in client.hgetall(LANDINGS).items()]
