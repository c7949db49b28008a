"""Stock Celery, the anchor of the Redis rows (issue 19): a plain `Celery(broker=..., backend=...)` app with
no project code, `task_acks_late=True`, and a trivial task computing the calc_hash digest, for a stock
worker started as `celery -A bench.stock worker -Q stock-hash -E -c <workers.concurrency> -n bench-stock@%h`.

The broker (and result backend) URL comes from BENCH_STOCK_BROKER_URL, so it never appears on a command
line (it carries the bench Redis's password). Nothing here imports the gateway, the workers or their
configuration: what this app costs Redis is what Celery and kombu cost by themselves.
"""
from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

from celery import Celery

BROKER_ENV = "BENCH_STOCK_BROKER_URL"
TASK = "bench.stock.calc_hash"
# Queue names of their own (stock kombu's lists, not the project's): the one-queue rows consume the
# first, the multi-queue rows all three, as a project worker would consume hash, images and webhooks.
QUEUES = ("stock-hash", "stock-images", "stock-webhooks")


def make_app(url: str) -> Celery:
    app = Celery("bench-stock", broker=url, backend=url, set_as_current=False)
    app.conf.task_acks_late = True  # the project acknowledges late too; stock Celery's default is early

    @app.task(name=TASK)
    def calc_hash(upload: dict[str, Any]) -> dict[str, Any]:
        content = base64.b64decode(upload["content"])
        return {"size": len(content), "digests": {"sha256": hashlib.sha256(content).hexdigest()}}

    return app


# What `celery -A bench.stock worker` loads. Building it connects to nothing; without the variable it
# points at a port nothing listens on (never at a Redis of yours).
app = make_app(os.environ.get(BROKER_ENV, "redis://127.0.0.1:1/0"))
