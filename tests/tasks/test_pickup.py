"""A worker on several queues waits on all of them at once (tasks/delivery/transport.py, point 5): one
blocking move per queue, each on a connection of its own, where it used to poll its queues in turn. The
proof is structural, not a timing: Redis shows one blocked BLMOVE per queue, all at the same moment.
Queues added and cancelled by remote control (`celery control add_consumer / cancel_consumer`) get and
lose their own blocked move; every job on every queue runs."""
from __future__ import annotations

import socket
import uuid

import pytest

from devsupport.processes import start_worker, wait_until

QUEUES = ("pick_a", "pick_b", "pick_c")  # tests/conftest.py


def blocked_moves(redis_client) -> int:
    """How many connections are blocked in a BLMOVE right now (every worker's, not only one's)."""
    return sum(1 for client in redis_client.client_list() if client["cmd"] == "blmove" and "b" in client["flags"])


@pytest.fixture
def pick_worker(service_env, run_dir, celery_client, worker, redis_client):
    """A worker on three queues of its own, and how many blocked moves the other workers keep."""
    others = _settled(redis_client)
    name = f"pick-{uuid.uuid4().hex[:6]}"
    proc = start_worker(name, ",".join(QUEUES), service_env, run_dir, extra=["-I", "tests.support.holdjob"])
    node = f"{name}@{socket.gethostname()}"
    wait_until(lambda: proc.alive() and celery_client.control.ping(destination=[node], timeout=0.5),
               60, f"worker {node} ready")
    yield node, others
    proc.stop()


def _settled(redis_client) -> int:
    """The largest count seen over a few reads: a worker's move is briefly not blocked between two."""
    return max(blocked_moves(redis_client) for _ in range(20))


def _hold(celery_client, redis_client, queue: str) -> str:
    task_id = str(uuid.uuid4())
    celery_client.send_task("tests.hold", kwargs={"upload": {"tag": queue}}, task_id=task_id, queue=queue)
    return task_id


def _finish(celery_client, redis_client, task_ids: list[str]) -> None:
    for task_id in task_ids:
        redis_client.rpush(f"release:{task_id}", "go")
    wait_until(lambda: all(celery_client.AsyncResult(task_id).state == "SUCCESS" for task_id in task_ids), 60,
               "every held job done")


def test_a_worker_on_three_queues_waits_on_all_three_at_once(pick_worker, redis_client):
    _, others = pick_worker
    wait_until(lambda: blocked_moves(redis_client) >= others + len(QUEUES), 20,
               "one blocked move per queue of the new worker")


def test_a_job_on_any_of_its_queues_runs(pick_worker, celery_client, redis_client):
    task_ids = [_hold(celery_client, redis_client, queue) for queue in reversed(QUEUES)]
    wait_until(lambda: sum(redis_client.get(f"starts:{task_id}") == "1" for task_id in task_ids) == 2, 30,
               "two jobs running (concurrency 2)")
    _finish(celery_client, redis_client, task_ids)
    assert [redis_client.get(f"starts:{task_id}") for task_id in task_ids] == ["1", "1", "1"]


def test_a_cancelled_queue_loses_its_move_and_an_added_one_gets_it_back(pick_worker, celery_client, redis_client):
    node, others = pick_worker
    wait_until(lambda: blocked_moves(redis_client) >= others + 3, 20, "three blocked moves")
    celery_client.control.cancel_consumer("pick_b", destination=[node], reply=True, timeout=5)
    wait_until(lambda: _settled(redis_client) == others + 2, 20, "two blocked moves left")
    waiting = _hold(celery_client, redis_client, "pick_b")
    ran = _hold(celery_client, redis_client, "pick_c")
    wait_until(lambda: redis_client.get(f"starts:{ran}") == "1", 30, "the job on a consumed queue running")
    _finish(celery_client, redis_client, [ran])
    assert redis_client.llen("pick_b") == 1 and redis_client.get(f"starts:{waiting}") is None
    celery_client.control.add_consumer("pick_b", destination=[node], reply=True, timeout=5)
    wait_until(lambda: redis_client.get(f"starts:{waiting}") == "1", 30, "the job on the queue added back running")
    _finish(celery_client, redis_client, [waiting])
    wait_until(lambda: blocked_moves(redis_client) >= others + 3, 20, "three blocked moves again")
