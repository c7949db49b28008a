"""Landing places: where a worker's transport puts a message it takes off its queue until the delivery
is recorded in `unacked` (tasks/transport.py), and how what a dead worker left there goes back.

- `gw:landing:<node>:<queue>`: the list; `gw:landings`: hash of every landing list -> its node and
  queue (written once per list by the worker that uses it);
- `gw:worker-alive:<node>`: set by each live worker every few seconds, for `workers.visibility_timeout`.

A worker starting under a node name first puts back what its previous life left (it has taken nothing
yet); every live worker's sweep puts back the lists of nodes whose alive key has lapsed, and what has
sat in its own list since its previous sweep (a move whose reply was lost with the connection: the
transport clears each landing within milliseconds). Messages go
back to the consuming end of their queue, oldest first to be taken again, so they run next. A message
put back whose delivery had been recorded too runs once: the start check holds or skips the second.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

LANDING_PREFIX = "gw:landing:"
LANDINGS = "gw:landings"
ALIVE_PREFIX = "gw:worker-alive:"

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

_registered: set[str] = set()


def key(node: str, queue: str) -> str:
    return f"{LANDING_PREFIX}{node}:{queue}"


def register(acquire: Callable[[], ContextManager[Any]], node: str, queue: str) -> None:
    """Name a landing list in `gw:landings` (once per process and list), so a sweep can find it.
    `acquire` lends a Redis client (the channel's `conn_or_acquire`)."""
    name = key(node, queue)
    if name not in _registered:
        with acquire() as client:
            client.hset(LANDINGS, name, json.dumps({"node": node, "queue": queue}))
        _registered.add(name)


def mark_alive(client: Any, node: str, seconds: float) -> None:
    client.set(ALIVE_PREFIX + node, "1", ex=max(1, int(seconds)))


def put_back(client: Any, node: str) -> int:
    """Put back everything in `node`'s landing lists (a worker starting again under that name)."""
    return sum(int(client.eval(PUT_BACK, 2, name, place["queue"]))
               for name, place in _places(client) if place["node"] == node)


def sweep(client: Any, node: str, seen: set[tuple[Any, Any]]) -> tuple[int, set[tuple[Any, Any]]]:
    """A live worker's sweep, one read of `gw:landings`: put back the lists of every node whose alive key
    has lapsed, and what sits in `node`'s own lists and sat there at the previous sweep too (`seen`).
    Returns how many messages went back, and what to pass as `seen` next time."""
    moved, now = 0, set()
    for name, place in _places(client):
        if place["node"] == node:
            for item in client.lrange(name, 0, -1):
                if (name, item) in seen:
                    moved += int(client.eval(PUT_ONE_BACK, 2, name, place["queue"], item))
                else:
                    now.add((name, item))
        elif not client.exists(ALIVE_PREFIX + place["node"]):
            moved += int(client.eval(PUT_BACK, 2, name, place["queue"]))
    return moved, now


def _places(client: Any) -> list[tuple[Any, dict[str, str]]]:
    return [(name, json.loads(value)) for name, value in client.hgetall(LANDINGS).items()]
