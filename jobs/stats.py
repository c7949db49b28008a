"""Task counts kept in Redis, written by whoever sees the event: the gateway counts submissions, the
workers count outcomes. Every gateway replica and worker adds to the same keys, so /metrics and the ops
API read one sum, whatever the number of processes, and nothing is lost when a process restarts.

Two shapes of the same counts:
- `gw:stats:total`: monotonic lifetime counters (Prometheus counters).
- `gw:stats:hour:<YYYYMMDDHH>`: the same per UTC hour, expiring with the results, for "how many in the
  retention window" without scanning tasks.
Fields: `submitted|<type>`, `done|<type>`, `error|<type>|<reason>` (reason: an exception class name,
`revoked` or `expired`).
"""
from __future__ import annotations

import time

from jobs.keys import STATS_HOUR_PREFIX as HOUR_PREFIX
from jobs.keys import STATS_TOTAL as TOTAL_KEY

SUBMITTED, DONE, ERROR = "submitted", "done", "error"  # the kinds of count
HOUR_MARGIN = 3600  # seconds an hour's counts outlive the results of that hour


def field(kind: str, job_type: str, reason: str | None = None) -> str:
    """The one way a count's field is written: `kind|type[|reason]` (read back by `parse`)."""
    return f"{kind}|{job_type}|{reason}" if reason is not None else f"{kind}|{job_type}"


def lua_increment(total: str, hour: str, field: str, retention: str, expire_when: str = "true") -> str:
    """What `add` does, as Lua for a script that counts inside its own atomic step (gateway/submission/
    publishing.py); the arguments are Lua expressions (KEYS[n], ARGV[n]). `expire_when`: a Lua condition
    for setting the hour's TTL, which a caller that knows it is already set can skip."""
    return (f"redis.call('HINCRBY', {total}, {field}, 1)\n"
            f"redis.call('HINCRBY', {hour}, {field}, 1)\n"
            f"if {expire_when} then redis.call('EXPIRE', {hour}, tonumber({retention}) + {HOUR_MARGIN}) end\n")


def hour_key(timestamp: float | None = None) -> str:
    return HOUR_PREFIX + time.strftime("%Y%m%d%H", time.gmtime(time.time() if timestamp is None else timestamp))


def add(pipe, field: str, retention: int, amount: int = 1, expire: bool = True) -> None:
    """Queue the increments of `field` on a Redis pipeline (the caller executes it). `expire`: set the
    hour key's TTL too, which a caller that already set it this hour can skip."""
    key = hour_key()
    pipe.hincrby(TOTAL_KEY, field, amount).hincrby(key, field, amount)
    if expire:
        pipe.expire(key, retention + HOUR_MARGIN)


def parse(field: str) -> tuple[str, str, str]:
    """`kind|type[|reason]` -> (kind, type, reason or "")."""
    kind, _, rest = field.partition("|")
    job_type, _, reason = rest.partition("|")
    return kind, job_type, reason
