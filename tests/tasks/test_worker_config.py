"""Per-queue worker settings: a worker started for one queue takes that queue's concurrency and prefetch."""
from __future__ import annotations

import socket

from devsupport.processes import start_worker, wait_until
from tasks.app import cli_queues, queue_overrides


def test_cli_queues_reads_every_spelling():
    assert cli_queues(["celery", "-A", "tasks", "worker", "-Q", "hash,images"]) == ["hash", "images"]
    assert cli_queues(["celery", "worker", "--queues=images"]) == ["images"]
    assert cli_queues(["celery", "worker", "-Qhash"]) == ["hash"]
    assert cli_queues(["celery", "flower"]) == []


def test_overrides_apply_to_a_single_queue_worker_only():
    workers = {"queues": {"images": {"concurrency": 1, "prefetch_multiplier": 1}}}
    assert queue_overrides(workers, ["images"]) == {"worker_concurrency": 1, "worker_prefetch_multiplier": 1}
    assert queue_overrides(workers, ["images", "hash"]) == {}
    assert queue_overrides(workers, ["hash"]) == {}


def test_a_worker_started_for_one_queue_runs_with_its_settings(service_env, run_dir, celery_client):
    proc = start_worker("solo", "solo", service_env, run_dir, concurrency=None)
    node = f"solo@{socket.gethostname()}"
    try:
        stats = wait_until(lambda: (celery_client.control.inspect(destination=[node], timeout=1).stats() or {}).get(node),
                           60, "solo worker stats")
        assert stats["pool"]["max-concurrency"] == 3
        assert stats["prefetch_count"] == 15  # prefetch_multiplier 5 x concurrency 3
    finally:
        proc.stop()
