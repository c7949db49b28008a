"""The `when` of a schedule (config `schedules`), checked with the other settings at start-up.

A cron expression is the classic five fields, `minute hour day-of-month month day-of-week`, each a comma
list of `*`, `*/STEP`, `N`, `N-M` or `N-M/STEP`; months may be written jan..dec, days sun..sat (0..6, Sunday
is 0). Nothing else (no `@daily`, no seconds field, no `L`/`W`/`?`): what this module accepts, Celery's
crontab (which the scheduler runs, gateway/schedules/plan.py) accepts too, and means the same thing.
A time zone is an IANA name (`Europe/Paris`), read through zoneinfo (the `tzdata` package backs it where
the host has no zone files).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ITEM = re.compile(r"(?P<range>\*|(?P<start>[a-z0-9]+)(?:-(?P<end>[a-z0-9]+))?)(?:/(?P<step>[0-9]+))?")


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    first_name: int = 0  # the number of names[0]


FIELDS = (Field("minute", 0, 59), Field("hour", 0, 23), Field("day of month", 1, 31),
          Field("month", 1, 12, MONTHS, 1), Field("day of week", 0, 6, DAYS, 0))


@dataclass(frozen=True)
class Cron:
    """A checked cron expression, in Celery crontab's argument names."""

    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str


def parse_cron(text: str) -> Cron:
    """Raise ValueError, saying which field is wrong and why."""
    parts = text.lower().split()
    if len(parts) != len(FIELDS):
        raise ValueError(f"a cron expression has {len(FIELDS)} fields (minute hour day-of-month month "
                         f"day-of-week), {text!r} has {len(parts)}")
    for part, spec in zip(parts, FIELDS, strict=True):
        for item in part.split(","):
            _check_item(item, spec)
    return Cron(*parts)


def _check_item(item: str, spec: Field) -> None:
    match = _ITEM.fullmatch(item)
    if not match:
        raise ValueError(f"{spec.name}: {item!r} is not *, N, N-M or one of them /STEP")
    values = [_value(match[key], spec) for key in ("start", "end") if match[key] is not None]
    if len(values) == 2 and values[0] > values[1]:
        raise ValueError(f"{spec.name}: the range {item!r} runs backwards")
    if match["step"] is not None and not 0 < int(match["step"]) <= spec.high:
        raise ValueError(f"{spec.name}: the step of {item!r} must be from 1 to {spec.high}")


def _value(text: str, spec: Field) -> int:
    if text.isdigit():
        value = int(text)
    elif text in spec.names:
        value = spec.names.index(text) + spec.first_name
    else:
        raise ValueError(f"{spec.name}: {text!r} is not a number" + (f" nor one of {', '.join(spec.names)}"
                                                                       if spec.names else ""))
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{spec.name}: {value} is outside {spec.low}..{spec.high}")
    return value


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError when there is none of that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name (like UTC or Europe/Paris)") from None
