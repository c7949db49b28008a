"""A test-only job that blocks until the test releases it: lets a test see `pending` for certain.

It waits on a Redis list (BLPOP with a bound), so tests synchronise on an event, never on a sleep.
"""
from __future__ import annotations

from typing import Any

from tasks import app


@app.task(name="tests.hold", bind=True)
def hold(self, upload: dict[str, Any]) -> dict[str, Any]:
    self.report_progress(50, "holding")
    released = self.app.backend.client.blpop([f"release:{self.request.id}"], timeout=60)
    return {"released": released is not None, "tag": upload.get("tag")}
