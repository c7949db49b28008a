"""The fault suite's job type, `probe`: it works for `work_ms` and writes each start and each completed
run to the ledger (faults/ledger.py, path in FAULTS_LEDGER), which no fault touches, so the checker can
count runs without trusting the Redis being broken. Loaded into a worker started with compose's command
plus `-I faults.probe`, as the tests load theirs."""
from __future__ import annotations

import os
import time
from typing import Any

from faults import ledger
from tasks import app


@app.task(name="faults.probe", bind=True)
def probe(self, upload: dict[str, Any]) -> dict[str, Any]:
    ledger.record(os.environ["FAULTS_LEDGER"], "start", self.request.id)
    time.sleep(upload["work_ms"] / 1000)  # the job's work: being busy when the fault strikes
    ledger.record(os.environ["FAULTS_LEDGER"], "done", self.request.id)
    return {"tag": upload["tag"]}
