"""The fault suite's job type, `probe`: it works for `work_ms` and writes each start and each completed
run to a ledger file (FAULTS_LEDGER) that no fault touches, so the checker can count runs without
trusting the Redis being broken. Loaded into a worker started with compose's command plus
`-I faults.probe`, as the tests load theirs."""
from __future__ import annotations

import os
import time
from typing import Any

from tasks import app


def _record(event: str, task_id: str) -> None:
    line = f"{event} {task_id} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(os.environ["FAULTS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines from concurrent processes never interleave
    finally:
        os.close(fd)


@app.task(name="faults.probe", bind=True)
def probe(self, upload: dict[str, Any]) -> dict[str, Any]:
    _record("start", self.request.id)
    time.sleep(upload["work_ms"] / 1000)  # the job's work: being busy when the fault strikes
    _record("done", self.request.id)
    return {"tag": upload["tag"]}


def read_ledger(path: str) -> tuple[dict[str, int], dict[str, int]]:
    """(starts, completed runs) per task id."""
    starts: dict[str, int] = {}
    done: dict[str, int] = {}
    try:
        text = open(path).read()
    except FileNotFoundError:
        return starts, done
    for line in text.splitlines():
        event, task_id, *_ = line.split()
        table = starts if event == "start" else done
        table[task_id] = table.get(task_id, 0) + 1
    return starts, done
