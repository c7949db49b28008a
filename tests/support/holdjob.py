"""A test-only job that blocks until the test releases it: lets a test see `pending` for certain.

It waits on a Redis list (BLPOP with a bound), so tests synchronise on an event, never on a sleep.
"""
from __future__ import annotations

import os
import signal
from typing import Any

from jobs.failures import TransientError
from tasks import app


@app.task(name="tests.hold", bind=True)
def hold(self, upload: dict[str, Any]) -> dict[str, Any]:
    self.app.backend.client.incr(f"starts:{self.request.id}")
    self.report_progress(50, "holding")
    released = self.app.backend.client.blpop([f"release:{self.request.id}"], timeout=60)
    return {"released": released is not None, "tag": upload.get("tag")}


@app.task(name="tests.flaky", bind=True)
def flaky(self, upload: dict[str, Any]) -> dict[str, Any]:
    """Fails transiently on its first attempt, then succeeds: proves a retry happened."""
    self.app.backend.client.incr(f"runs:{self.request.id}")
    if self.request.retries == 0:
        raise TransientError("first attempt always fails")
    return {"attempt": self.request.retries + 1, "tag": upload.get("tag")}


@app.task(name="tests.doomed", bind=True)
def doomed(self, upload: dict[str, Any]) -> dict[str, Any]:
    """Always fails transiently: ends dead-lettered once its retries are spent."""
    self.app.backend.client.incr(f"runs:{self.request.id}")
    raise TransientError("never works")


@app.task(name="tests.crash", bind=True)
def crash(self, upload: dict[str, Any]) -> dict[str, Any]:
    """Kills the pool process running it, every time: a job that kills its worker."""
    self.app.backend.client.incr(f"starts:{self.request.id}")
    os.kill(os.getpid(), signal.SIGKILL)
    return {}
