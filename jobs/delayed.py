"""Delayed jobs: a task's message kept off its queue until it is due, then put on it exactly once.

Celery's own delay (`countdown`, `eta`) hands the message to a worker at once, which holds it
unacknowledged until it is due; on Redis kombu delivers again whatever stays unacknowledged longer
than the visibility timeout, so a job delayed longer than that runs twice or more (kombu#337). Here no
queue sees the message early: the gateway's save stores the Redis commands that would queue it (the
LPUSH of the standard Celery message and its task-sent event's PUBLISH, as captured by
gateway/submission/capture.py) in `gw:delayed:messages`, and the task's id, scored by when it is due, in
`gw:delayed` (jobs/keys.py), on the broker, in the same script or round trip as any other publish.

MOVE, one Lua script, takes what is due by the Redis server's clock out of both and runs its commands. A
script runs alone, so however many processes run it at once each message is moved once; its effects
reach the AOF (and replicas) as one transaction, so a Redis restart finds the task either still waiting
or its message on its queue, never both and never neither. Cancelling a task still waiting moves it at
once (RELEASE, the same move for one id): the worker that takes it finds it cancelled and ends it the way
it ends any cancelled queued job (counted, its webhook sent), without running it.

Who moves: every Celery worker process (its keeper thread, tasks/delivery/keeper.py, every MOVE_EVERY
seconds) and a gateway process while HTTP workers long-poll it (gateway/workers/leasing.py's sweep,
every SWEEP_EVERY seconds). Each first reads the earliest waiting task with one ZRANGE, and runs the
script only when that one is due: with no delayed job, moving costs one command per MOVE_EVERY per
worker process.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.client import Pipeline

from jobs.keys import DELAYED, DELAYED_MESSAGES

MOVE_EVERY = 1.0  # seconds between one worker process's looks at gw:delayed
BATCH = 100  # messages one run of the script moves at most (a backlog is moved in several runs, at once)
# The earliest task is handed to the script (which goes by the Redis server's clock) once the local clock
# says it is due within this margin: a mover whose clock is behind Redis's by less moves it on time.
CLOCK_MARGIN = 1.0

# move(KEYS, uuid): KEYS are gw:delayed and gw:delayed:messages; the task leaves both and its commands run.
# Returns 1 when it was waiting, 0 when another mover (or a cancel) already took it.
MOVE_LUA = """
local function move(KEYS, uuid)
  if redis.call('ZREM', KEYS[1], uuid) == 0 then return 0 end
  local commands = redis.call('HGET', KEYS[2], uuid)
  redis.call('HDEL', KEYS[2], uuid)
  if commands then
    for _, command in ipairs(cjson.decode(commands)) do redis.call(command[1], unpack(command[2])) end
  end
  return 1
end
"""
# KEYS: gw:delayed, gw:delayed:messages. ARGV: the most to move. Returns how many were moved.
MOVE_SCRIPT = MOVE_LUA + """
local clock = redis.call('TIME')
local now = string.format('%.6f', tonumber(clock[1]) + tonumber(clock[2]) / 1000000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, uuid in ipairs(due) do move(KEYS, uuid) end
return #due
"""
# KEYS: the same. ARGV: a task id. Moves that task now, due or not (a cancel: see the module's docstring).
RELEASE_SCRIPT = MOVE_LUA + "return move(KEYS, ARGV[1])\n"

Commands = list[tuple[str, tuple]]  # Redis commands as (name, arguments), as gateway/submission/capture.py has them


def hold(commands: Sequence[tuple[str, tuple]], uuid: str, due: float) -> Commands:
    """The commands that keep a task's message (`commands`, which would queue it) until `due`."""
    queued = json.dumps([[name, list(args)] for name, args in commands])
    return [("zadd", (DELAYED, repr(due), uuid)), ("hset", (DELAYED_MESSAGES, uuid, queued))]


class Mover:
    """Moves due messages onto their queues, on one Redis client of the broker (see the module's docstring)."""

    def __init__(self, broker: Redis) -> None:
        self.broker = broker
        self._move = broker.register_script(MOVE_SCRIPT)  # EVALSHA, loaded once per server
        self._release = broker.register_script(RELEASE_SCRIPT)

    def tick(self, now: float | None = None) -> int:
        """Move whatever is due; how many were moved. One ZRANGE when nothing is."""
        earliest: Any = self.broker.zrange(DELAYED, 0, 0, withscores=True)
        if not earliest or float(earliest[0][1]) > (time.time() if now is None else now) + CLOCK_MARGIN:
            return 0
        moved = 0
        while True:
            count = int(self._move(keys=[DELAYED, DELAYED_MESSAGES], args=[BATCH]))
            moved += count
            if count < BATCH:
                return moved

    def release(self, uuid: str) -> bool:
        """Put a waiting task's message on its queue now; whether it was still waiting."""
        return bool(self._release(keys=[DELAYED, DELAYED_MESSAGES], args=[uuid]))

    def release_on(self, pipe: Pipeline, uuid: str) -> None:
        """`release`, queued on a pipeline of the broker (a transaction the caller executes)."""
        self._release(keys=[DELAYED, DELAYED_MESSAGES], args=[uuid], client=pipe)
