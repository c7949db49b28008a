"""When a submitted job is due: `delay_seconds` or `run_at` in the submit body, checked against the
longest delay this deployment allows. The message then waits off its queue until due (jobs/delayed.py).

The longest delay is `limits.max_delay` or `results.expires`, whichever is shorter: a delayed task's
record, index entry and idempotency claims live `results.expires` past its due time, and the index and
claims of the tasks around it are kept no longer than that again. A `run_at` already past runs at once
(a client's clock a little behind ours is the usual cause), as Cloud Tasks does with a past
`scheduleTime`; anything else out of bounds is a 400 naming the field.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from settings import Settings

FIELDS = ("delay_seconds", "run_at")
MAX_RUN_AT_LENGTH = 64
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def max_delay(settings: Settings) -> int:
    """The longest delay a submit may ask for, in seconds (0: delayed jobs are off)."""
    config = settings.config
    return min(int(config["limits"]["max_delay"]), int(config["results"]["expires"]))


def due_errors(payload: Mapping[str, Any], settings: Settings, now: datetime | None = None) -> dict[str, list[str]]:
    """The problems of a submit's `delay_seconds` / `run_at`, by field (empty when it has none)."""
    delay, run_at = payload.get("delay_seconds"), payload.get("run_at")
    if delay is not None and run_at is not None:
        return {"run_at": ["Give delay_seconds or run_at, not both"]}
    longest = max_delay(settings)
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or (
                isinstance(delay, float) and not math.isfinite(delay)):
            return {"delay_seconds": ["Must be a number of seconds"]}
        if delay < 0:
            return {"delay_seconds": ["Must not be negative"]}
        return _within(delay, longest, "delay_seconds")
    if run_at is not None:
        parsed = _instant(run_at)
        if parsed is None:
            return {"run_at": ["Must be an ISO 8601 date and time with a UTC offset or Z, "
                               "e.g. 2026-12-24T18:00:00+01:00"]}
        return _within((parsed - (now or datetime.now(UTC))).total_seconds(), longest, "run_at")
    return {}


def due_at(payload: Mapping[str, Any], now: datetime | None = None) -> datetime | None:
    """When a checked submit is due: None for at once (no delay, or a `run_at` already past)."""
    now = now or datetime.now(UTC)
    if payload.get("delay_seconds"):
        return now + timedelta(seconds=float(payload["delay_seconds"]))
    parsed = _instant(payload["run_at"]) if payload.get("run_at") is not None else None
    return parsed.astimezone(UTC) if parsed is not None and parsed > now else None


def _within(delay: float, longest: int, field: str) -> dict[str, list[str]]:
    if delay <= 0:
        return {}
    if longest == 0:
        return {field: ["Delayed jobs are not enabled here (limits.max_delay is 0)"]}
    if delay > longest:
        return {field: [f"At most {longest} seconds ahead (limits.max_delay, and never past results.expires)"]}
    return {}


def _instant(value: Any) -> datetime | None:
    """An RFC 3339 date-time (ISO 8601 with a zone: what OpenAPI's `date-time` means), or None."""
    if not isinstance(value, str) or len(value) > MAX_RUN_AT_LENGTH or not RFC3339.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        return None
