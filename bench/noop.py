"""`bench.noop`: the bare-Celery baseline of the end-to-end row. Loaded into the bench's worker with
`-I bench.noop`; it runs through the same JobTask base, queue, result backend and outcome counting as
`jobs.calc_hash`, and does nothing, so the difference between the two rows is the gateway plus the
hashing itself."""
from __future__ import annotations

from typing import Any

from tasks import app


@app.task(name="bench.noop")
def noop(upload: dict[str, Any] | None = None) -> None:
    return None
