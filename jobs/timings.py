"""How long jobs run and how long they waited in their queue, per job type, kept in Redis by the workers
(tasks/timing.py) and exported by the gateway as two Prometheus histograms (gateway/health/metrics.py).
Every worker process of every replica adds to the one hash, so a scrape of any gateway reads the sum.

One hash, `gw:timings` (lifetime, like `gw:stats:total`), three fields per finished job, written in the
pipeline that already counts the job's outcome (tasks/outcomes.py): three HINCRBYs, no extra round trip.
- `bucket|<type>|<runtime le>|<wait le>`: jobs whose runtime fell in the bucket ending at `runtime le`
  and whose wait fell in the one ending at `wait le` (`-`: the wait is unknown, a message the gateway
  did not publish). One field holds both histograms' buckets: each histogram's bucket counts are sums
  over the other's buckets, so one command counts a job in both.
- `runtime_us|<type>`, `wait_us|<type>`: the sums, in whole microseconds (HINCRBY, exact).
Counts are not stored: a histogram's count is the sum of its buckets.
"""
from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field

from jobs.keys import TIMINGS as KEY

RUNTIME, WAIT = "runtime", "wait"
# Upper bounds in seconds. Runtime: the catalogue's time limits reach 120 s. Wait: a job's TTL (3600 s by
# default) bounds how long it may wait before it expires instead of running.
BUCKETS = {
    RUNTIME: (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    WAIT: (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
}
INF, UNKNOWN = "+Inf", "-"
BUCKET, SUM_SUFFIX = "bucket", "_us"


def le(kind: str, seconds: float) -> str:
    """The label of the smallest bucket of `kind` holding `seconds` (`+Inf` past the last bound)."""
    bounds = BUCKETS[kind]
    i = bisect.bisect_left(bounds, seconds)
    return _label(bounds[i]) if i < len(bounds) else INF


def increments(job_type: str, runtime: float, wait: float | None) -> list[tuple[str, int]]:
    """One finished job's three (field, amount) increments of the hash, two without a known wait."""
    wait_le = le(WAIT, wait) if wait is not None else UNKNOWN
    found = [(f"{BUCKET}|{job_type}|{le(RUNTIME, runtime)}|{wait_le}", 1),
             (f"{RUNTIME}{SUM_SUFFIX}|{job_type}", _micros(runtime))]
    if wait is not None:
        found.append((f"{WAIT}{SUM_SUFFIX}|{job_type}", _micros(wait)))
    return found


def add(pipe, job_type: str, runtime: float, wait: float | None) -> None:
    """Queue one finished job's increments on a Redis pipeline."""
    for name, amount in increments(job_type, runtime, wait):
        pipe.hincrby(KEY, name, amount)


@dataclass
class Histogram:
    """One job type's histogram of one kind: cumulative bucket counts (`le` label -> count), sum in seconds."""
    buckets: list[tuple[str, int]] = field(default_factory=list)
    sum: float = 0.0

    @property
    def count(self) -> int:
        return self.buckets[-1][1] if self.buckets else 0


def read(fields: dict[str, str] | dict[bytes, bytes]) -> dict[str, dict[str, Histogram]]:
    """The hash's fields -> {kind: {job type: Histogram}}. A bucket label that is not a bound of today's
    buckets (they changed since it was written) counts in the next bound above it, so counts never drop."""
    counts: dict[str, dict[str, list[int]]] = {RUNTIME: {}, WAIT: {}}
    sums: dict[str, dict[str, int]] = {RUNTIME: {}, WAIT: {}}
    for raw_field, raw_value in fields.items():
        name = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
        kind, _, rest = name.partition("|")
        if kind == BUCKET and rest.count("|") >= 2:
            job_type, runtime_le, wait_le = rest.rsplit("|", 2)
            _count(counts, RUNTIME, job_type, runtime_le, int(raw_value))
            if wait_le != UNKNOWN:
                _count(counts, WAIT, job_type, wait_le, int(raw_value))
        elif kind.removesuffix(SUM_SUFFIX) in sums and kind.endswith(SUM_SUFFIX):
            sums[kind.removesuffix(SUM_SUFFIX)][rest] = int(raw_value)
    return {kind: {job_type: Histogram(_cumulative(kind, per_bucket), sums[kind].get(job_type, 0) / 1e6)
                   for job_type, per_bucket in sorted(counts[kind].items())}
            for kind in (RUNTIME, WAIT)}


def _count(counts: dict[str, dict[str, list[int]]], kind: str, job_type: str, label: str, value: int) -> None:
    per_bucket = counts[kind].setdefault(job_type, [0] * (len(BUCKETS[kind]) + 1))
    per_bucket[_index(kind, label)] += value


def _index(kind: str, label: str) -> int:
    """The position among `kind`'s buckets (the last is +Inf) of the bucket a stored label counts in."""
    bounds = BUCKETS[kind]
    try:
        value = float(label)
    except ValueError:
        return len(bounds)
    return len(bounds) if math.isnan(value) else bisect.bisect_left(bounds, value)


def _cumulative(kind: str, per_bucket: list[int]) -> list[tuple[str, int]]:
    labels = [*(_label(bound) for bound in BUCKETS[kind]), INF]
    return list(zip(labels, itertools.accumulate(per_bucket), strict=True))


def _label(bound: float) -> str:
    """Prometheus' own spelling of a bucket bound (prometheus_client's floatToGoString): 1.0, 0.25."""
    return repr(float(bound))


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1e6))
