"""The fault suite's job type, `probe`: it works for `work_ms` and writes each start, each completed
work and each stored result to the ledger (faults/ledger.py, path in FAULTS_LEDGER), which no fault
touches, so the checker can count runs without trusting the Redis being broken. Loaded into a worker
started with compose's command plus `-I faults.probe`, as the tests load theirs."""
from __future__ import annotations

import os
import time
from typing import Any

from celery.signals import task_success

from faults import ledger
from tasks import app


@app.task(name="faults.probe", bind=True)
def probe(self, upload: dict[str, Any]) -> dict[str, Any]:
    ledger.record(os.environ["FAULTS_LEDGER"], "start", self.request.id)
    time.sleep(upload["work_ms"] / 1000)  # the job's work: being busy when the fault strikes
    ledger.record(os.environ["FAULTS_LEDGER"], "done", self.request.id)
    return {"tag": upload["tag"]}


@task_success.connect(sender=probe)
def _stored(sender: Any = None, **_: Any) -> None:
    """Sent after Celery stored the result: the job has finished for good."""
    ledger.record(os.environ["FAULTS_LEDGER"], "stored", sender.request.id)
