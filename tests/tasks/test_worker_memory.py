"""Worker memory is bounded: each pool process has an address-space limit, and one left large is
replaced. A job that still tries to take more ends as an error (code 2) once; the worker keeps serving."""
from __future__ import annotations

import socket

from devsupport.procfs import address_space_limit, children
from tests.support.api import b64
from tests.support.images import one_by_hundred


def test_every_pool_process_runs_under_the_address_space_limit(worker, settings):
    limit = settings.config["workers"]["max_address_space_mib"] * 1024 * 1024
    pool = children(worker.proc.pid)
    assert pool and all(address_space_limit(pid) == str(limit) for pid in pool)


def test_pool_processes_are_replaced_past_the_memory_bound(worker, settings, celery_client):
    node = f"main@{socket.gethostname()}"
    conf = celery_client.control.inspect(destination=[node], timeout=5).conf()[node]
    assert conf["worker_max_memory_per_child"] == settings.config["workers"]["max_memory_per_child_mib"] * 1024


def test_a_job_allocating_past_the_limit_ends_code_2_once_and_the_worker_keeps_serving(api, worker, settings):
    # Only the address-space limit stands between this job and 10000 x 1,000,000 pixels (30 GB): its
    # job type's output bounds are set past anything a host could hold. Refuse to run it unprotected.
    limit = settings.config["workers"]["max_address_space_mib"] * 1024 * 1024
    pool = children(worker.proc.pid)
    assert pool and all(address_space_limit(pid) == str(limit) for pid in pool)
    task_id = api.submitted("resize_unbounded", {"content": b64(one_by_hundred()), "width": 10000})
    info = api.wait_status(task_id, "done", "error", timeout=60)
    assert (info["status"], info["code"]) == ("error", 2)
    assert info["message"] == "the job needed more memory than a worker may use (workers.max_address_space_mib)"
    assert worker.alive()
    after = api.submitted("calc_hash", {"content": b64(b"still serving")})
    assert api.wait_status(after, "done", "error")["status"] == "done"
    assert api.taskinfo(task_id).json() == info  # ended once: nothing ran it again
