"""A job type's resource bounds (jobs/catalogue.py Bounds), enforced in the worker: each check runs
before the work it bounds, and what would pass a bound is bad content (OutOfBounds, code 2) whose
message names the bound, never a pool process out of memory."""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from celery import Task

from jobs.catalogue import Bounds
from jobs.failures import OutOfBounds
from tasks.runtime import bounds_for

Job = TypeVar("Job", bound=Callable[..., Any])
OUT_OF_MEMORY = "the job needed more memory than a worker may use (workers.max_address_space_mib)"


def check_output_size(size: tuple[int, int], bounds: Bounds) -> None:
    """An image of `size` may be made, or OutOfBounds naming the bound it would pass."""
    width, height = size
    if max(width, height) > bounds.max_output_side:
        raise OutOfBounds(f"output of {width}x{height} pixels is over the bound of {bounds.max_output_side} "
                          "pixels a side (max_output_side)")
    if width * height > bounds.max_output_pixels:
        raise OutOfBounds(f"output of {width}x{height} pixels is over the bound of {bounds.max_output_pixels} "
                          "pixels (max_output_pixels)")


def check_stored_size(stored: int, bounds: Bounds) -> None:
    """A result storing `stored` bytes may be kept, or OutOfBounds naming the bound."""
    if stored > bounds.max_result_bytes:
        raise OutOfBounds(f"the result would store {stored} bytes, over the bound of {bounds.max_result_bytes} "
                          "bytes (max_result_bytes)")


def bounded_result(task: Task, result: Any) -> Any:
    """The result, if what Celery would store of it stays within the job type's `max_result_bytes`."""
    check_stored_size(len(json.dumps(result, separators=(",", ":"))), bounds_for(task))
    return result


def memory_bounded(job: Job) -> Job:
    """A job that runs out of memory (the pool process's address-space limit, tasks/app.py) ends as
    bad content. The MemoryError itself must not leave the task: Celery's worker treats a MemoryError
    reported by a pool process as its own and shuts the whole worker down, and the message, never
    acknowledged, would take the next worker down the same way."""

    @wraps(job)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        try:
            return job(*args, **kwargs)
        except MemoryError:
            raise OutOfBounds(OUT_OF_MEMORY) from None
    return bounded  # type: ignore[return-value]
