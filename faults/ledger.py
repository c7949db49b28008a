"""The probe's ledger: a file, outside everything the faults break, with one line per event of a probe
job, written by the worker's pool processes and read by the checker:

- `start`: the job's body began (its time: for a delayed job, held against its `scheduled_for` by the
  checker); `done`: its work completed; `stored`: Celery stored its result (the
  `task_success` signal comes after that), so the job has finished for good.

Work done twice with no `stored` between is a rerun after lost work (the worker died between the work
and its result): allowed, as for every job type here, which are pure functions of their payload. A
`start` after a `stored` is a finished job run again: a duplicate.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field


def record(path: str, event: str, task_id: str) -> None:
    line = f"{event} {task_id} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines from concurrent processes never interleave
    finally:
        os.close(fd)


@dataclass
class Runs:
    """What the ledger says about one probe job."""

    starts: int = 0
    done: int = 0
    stored: int = 0
    started_after_stored: int = 0
    first_start: float | None = None
    last_done: float | None = None
    last_pid: int = 0  # the process of the latest event
    events: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """From its first start to its last completed work."""
        if self.first_start is None or self.last_done is None:
            return 0.0
        return self.last_done - self.first_start


def read(path: str) -> dict[str, Runs]:
    runs: dict[str, Runs] = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return runs
    for line in lines:
        event, task_id, pid, stamp = line.split()
        one = runs.setdefault(task_id, Runs())
        one.events.append(event)
        one.last_pid = int(pid)
        if event == "start":
            one.starts += 1
            one.started_after_stored += one.stored > 0
            if one.first_start is None:
                one.first_start = float(stamp)
        elif event == "done":
            one.done += 1
            one.last_done = float(stamp)
        elif event == "stored":
            one.stored += 1
    return runs
