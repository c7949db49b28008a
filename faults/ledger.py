"""The probe's ledger: a file, outside everything the faults break, with one line per start and per
completed run of a probe job. Written by the worker's pool processes, read by the checker."""
from __future__ import annotations

import os
import time


def record(path: str, event: str, task_id: str) -> None:
    line = f"{event} {task_id} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines from concurrent processes never interleave
    finally:
        os.close(fd)


def read(path: str) -> tuple[dict[str, int], dict[str, int]]:
    """(starts, completed runs) per task id."""
    starts: dict[str, int] = {}
    done: dict[str, int] = {}
    try:
        with open(path) as handle:
            text = handle.read()
    except FileNotFoundError:
        return starts, done
    for line in text.splitlines():
        event, task_id, *_ = line.split()
        table = starts if event == "start" else done
        table[task_id] = table.get(task_id, 0) + 1
    return starts, done


def longest_run(path: str) -> float:
    """Seconds from a probe's first start to its last completed run, the longest over all probes."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return 0.0
    for line in lines:
        event, task_id, _, stamp = line.split()
        if event == "start":
            first.setdefault(task_id, float(stamp))
        else:
            last[task_id] = float(stamp)
    return max((last[task_id] - first[task_id] for task_id in last if task_id in first), default=0.0)
