"""Workers that die, by real means (SIGKILL of a worker's whole process group, a job that kills its pool
process), and what a client then sees: the job queued again (never `pending` once its worker is gone)
and run again within the stated bound, or `error 6` in the dead-letter list after
`workers.max_deliveries` deaths; never a second run of a finished job, never `expired` after a start."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from devsupport.processes import ROOT, start_worker, wait_until
from jobs.headers import JOB_TYPE_HEADER, SUBMITTED_HEADER
from jobs.keys import ALIVE_PREFIX, KOMBU_UNACKED, LANDINGS, LEASE_PREFIX, RECORD_PREFIX, landing_key
from jobs.status import REQUEUED
from tasks.delivery.leases import holder
from tasks.delivery.startcheck import END_SCRIPT, START_SCRIPT

VISIBILITY = 10  # workers.visibility_timeout of these tests' workers (45 by default)
SWEEP = 5  # celeryconfig.RESTORE_INTERVAL


@pytest.fixture
def loss_worker(service_env, run_dir, celery_client):
    """Start workers consuming only `loss`, with a short visibility timeout; all stopped at the end."""
    started = []

    def start(name: str):
        env = dict(service_env, GATEWAY__WORKERS__VISIBILITY_TIMEOUT=str(VISIBILITY))
        proc = start_worker(name, "loss", env, run_dir, extra=["-I", "tests.support.holdjob"])
        node = f"{name}@{socket.gethostname()}"
        wait_until(lambda: proc.alive() and celery_client.control.ping(destination=[node], timeout=0.5),
                   60, f"worker {node} ready")
        started.append(proc)
        return proc
    yield start
    for proc in started:
        proc.stop()


def test_a_job_whose_worker_is_killed_with_its_process_group_is_queued_again_and_reruns_promptly(
        api, loss_worker, redis_client):
    first = loss_worker(f"loss-a-{uuid.uuid4().hex[:6]}")
    task_id = api.submitted("hold_loss", {"tag": "killed"})
    wait_until(lambda: redis_client.get(f"starts:{task_id}") == "1", 30, "the job running")
    os.killpg(first.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    info = api.wait_status(task_id, "created", timeout=VISIBILITY + 3)
    assert info["message"] == REQUEUED  # not `pending` with stale progress once the lease lapsed
    loss_worker(f"loss-b-{uuid.uuid4().hex[:6]}")
    wait_until(lambda: redis_client.get(f"starts:{task_id}") == "2", VISIBILITY + SWEEP + 30, "the job running again")
    assert time.monotonic() - killed < VISIBILITY + SWEEP + 30  # + the second worker's start-up
    assert api.taskinfo(task_id).json()["status"] == "pending"
    redis_client.rpush(f"release:{task_id}", "go")
    done = api.wait_status(task_id, "done", "error", timeout=30)
    assert (done["status"], done["result"]["tag"]) == ("done", "killed")


def _land(redis_client, task_id: str, node: str) -> None:
    """Do what a worker killed right after taking the job off its queue left behind: the message in its
    landing place (tasks/delivery/landing.py), nowhere else."""
    wait_until(lambda: any(task_id in item for item in redis_client.lrange("loss", 0, -1)), 10, "the job queued")
    assert redis_client.llen("loss") == 1
    redis_client.lmove("loss", landing_key(node, "loss"), "RIGHT", "LEFT")
    redis_client.hset(LANDINGS, landing_key(node, "loss"), json.dumps({"node": node, "queue": "loss"}))
    assert redis_client.llen("loss") == 0 and not _unacked(redis_client, task_id)


def test_a_job_a_dead_worker_took_off_its_queue_and_never_recorded_goes_back_and_runs(api, loss_worker, redis_client):
    """Stock kombu took a message with BRPOP and recorded it afterwards: a worker killed in between lost
    the job (the fault suite's worker-kill-long, 1 in 10 kills). Now it waits in the worker's landing
    place, and a live worker's sweep puts it back once the dead worker's alive key lapses."""
    task_id = api.submitted("hold_loss", {"tag": "landed"})
    _land(redis_client, task_id, "ghost@nowhere")
    loss_worker(f"loss-d-{uuid.uuid4().hex[:6]}")
    wait_until(lambda: redis_client.get(f"starts:{task_id}") == "1", VISIBILITY + SWEEP + 10, "the job running")
    redis_client.rpush(f"release:{task_id}", "go")
    assert api.wait_status(task_id, "done", "error", timeout=30)["status"] == "done"
    assert redis_client.llen(landing_key("ghost@nowhere", "loss")) == 0


def test_a_worker_starting_again_puts_back_what_its_previous_life_took(api, loss_worker, redis_client):
    name = f"loss-e-{uuid.uuid4().hex[:6]}"
    node = f"{name}@{socket.gethostname()}"
    task_id = api.submitted("hold_loss", {"tag": "restarted"})
    _land(redis_client, task_id, node)
    redis_client.set(ALIVE_PREFIX + node, "1", ex=300)  # no sweep would touch it: only the start
    loss_worker(name)
    wait_until(lambda: redis_client.get(f"starts:{task_id}") == "1", 10, "the job running")
    redis_client.rpush(f"release:{task_id}", "go")
    assert api.wait_status(task_id, "done", "error", timeout=30)["status"] == "done"


def test_a_job_left_in_a_live_workers_landing_place_goes_back_and_runs(api, loss_worker, redis_client):
    """The move reached Redis but its reply was lost with the connection (Redis restarting): the live
    worker never saw the job. Its own sweep puts back what sat in its landing place for a whole tick."""
    task_id = api.submitted("hold_loss", {"tag": "reply-lost"})
    wait_until(lambda: redis_client.llen("loss") == 1, 10, "the job queued")
    redis_client.lmove("loss", "loss-aside", "RIGHT", "LEFT")  # out of the worker's reach while it starts
    name = f"loss-f-{uuid.uuid4().hex[:6]}"
    loss_worker(name)
    node = f"{name}@{socket.gethostname()}"
    wait_until(lambda: redis_client.hexists(LANDINGS, landing_key(node, "loss")), 10, "its landing place named")
    redis_client.lmove("loss-aside", landing_key(node, "loss"), "RIGHT", "LEFT")
    wait_until(lambda: redis_client.get(f"starts:{task_id}") == "1", 3 * 5 + 5, "the job running")
    redis_client.rpush(f"release:{task_id}", "go")
    assert api.wait_status(task_id, "done", "error", timeout=30)["status"] == "done"


def test_a_job_that_kills_its_worker_ends_error_6_in_the_dead_letter_list(api, loss_worker, redis_client, settings):
    loss_worker(f"loss-c-{uuid.uuid4().hex[:6]}")
    task_id = api.submitted("crash", {"tag": "poison"})
    info = api.wait_status(task_id, "error", timeout=60)
    assert info["code"] == 6
    deliveries = settings.config["workers"]["max_deliveries"]
    assert redis_client.get(f"starts:{task_id}") == str(deliveries)  # started that many times, never again
    dead = {entry["uuid"]: entry for entry in api.request("GET", "/ops/deadletters").json()["deadletters"]}
    assert dead[task_id]["error"] == "WorkerLost" and dead[task_id]["attempts"] == deliveries


def test_a_redelivered_finished_job_is_skipped_not_run_again(api, redis_client, celery_client):
    """A delivery can come back after its job finished (the ack was lost with the broker connection)."""
    task_id = api.submitted("flaky", {"tag": "once"})
    api.wait_status(task_id, "done", timeout=30)
    runs = redis_client.get(f"runs:{task_id}")
    celery_client.send_task("tests.flaky", kwargs={"upload": {"tag": "once"}}, task_id=task_id, queue="hold",
                            headers={JOB_TYPE_HEADER: "flaky", SUBMITTED_HEADER: time.time()})
    wait_until(lambda: redis_client.llen("hold") == 0 and not _unacked(redis_client, task_id), 30,
               "the redelivery consumed")
    assert redis_client.get(f"runs:{task_id}") == runs
    assert api.taskinfo(task_id).json()["status"] == "done"


def _unacked(redis_client, task_id: str) -> bool:
    return any(task_id in value for value in redis_client.hvals(KOMBU_UNACKED))


def start_verdict(redis_client, task_id: str, expires_at: float, holder: str = "me@host") -> list:
    script = redis_client.register_script(START_SCRIPT)
    return script(keys=[RECORD_PREFIX + task_id, LEASE_PREFIX + task_id, f"celery-task-meta-{task_id}"],
                  args=[time.time(), expires_at, 2, 30, holder])


def test_a_started_job_past_its_ttl_runs_again_and_an_unstarted_one_expires(redis_client):
    """The TTL means "no worker started it in time", never "a worker started it and died"."""
    started, unstarted = str(uuid.uuid4()), str(uuid.uuid4())
    redis_client.hset(RECORD_PREFIX + started, mapping={"type": "hold", "started": str(time.time() - 100)})
    redis_client.hset(RECORD_PREFIX + unstarted, mapping={"type": "hold"})
    past = time.time() - 10
    assert start_verdict(redis_client, started, past)[0] == "run"
    assert start_verdict(redis_client, unstarted, past)[0] == "expired"


def test_a_job_another_live_worker_holds_is_not_started_twice(redis_client):
    task_id = str(uuid.uuid4())
    redis_client.hset(RECORD_PREFIX + task_id, mapping={"type": "hold"})
    redis_client.set(LEASE_PREFIX + task_id, "other@host", ex=30)
    assert start_verdict(redis_client, task_id, time.time() + 60)[0] == "held"
    assert start_verdict(redis_client, task_id, time.time() + 60, holder="other@host")[0] == "run"


def test_a_running_job_delivered_again_to_another_pool_process_of_its_worker_is_held(redis_client):
    """A worker frozen past its visibility timeout is handed its own running job again (worker-freeze)."""
    task_id = str(uuid.uuid4())
    redis_client.hset(RECORD_PREFIX + task_id, mapping={"type": "hold"})
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("me@host", 101))[0] == "run"
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("me@host", 102))[0] == "held"


def test_an_ended_attempt_leaves_no_lease_to_hold_its_retry(redis_client):
    """A retry run by another pool process of the same worker starts at once, not after the lease lapses."""
    task_id = str(uuid.uuid4())
    redis_client.hset(RECORD_PREFIX + task_id, mapping={"type": "hold"})
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("me@host", 101))[0] == "run"
    end = redis_client.register_script(END_SCRIPT)
    assert redis_client.hget(RECORD_PREFIX + task_id, "runs") == "1"
    end(keys=[RECORD_PREFIX + task_id, LEASE_PREFIX + task_id], args=[holder("me@host", 999)])  # not its lease
    assert redis_client.exists(LEASE_PREFIX + task_id)
    end(keys=[RECORD_PREFIX + task_id, LEASE_PREFIX + task_id], args=[holder("me@host", 101)])
    assert not redis_client.exists(LEASE_PREFIX + task_id) and redis_client.hget(RECORD_PREFIX + task_id, "runs") is None
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("me@host", 102))[0] == "run"


def test_attempts_whose_worker_died_are_counted_in_the_record_up_to_max_deliveries(redis_client):
    """Two starts that never ended (max deliveries 2 here): the third delivery is `lost`, not run."""
    task_id = str(uuid.uuid4())
    redis_client.hset(RECORD_PREFIX + task_id, mapping={"type": "hold"})
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("a@host", 1)) == ["run", 0]
    redis_client.delete(LEASE_PREFIX + task_id)  # its worker died: the lease lapsed
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("b@host", 1)) == ["run", 1]
    redis_client.delete(LEASE_PREFIX + task_id)
    assert start_verdict(redis_client, task_id, time.time() + 60, holder=holder("c@host", 1)) == ["lost", 2]


def test_a_finished_job_is_never_started_again(redis_client):
    task_id = str(uuid.uuid4())
    redis_client.hset(RECORD_PREFIX + task_id, mapping={"type": "hold"})
    redis_client.set(f"celery-task-meta-{task_id}", json.dumps({"status": "FAILURE"}))
    assert start_verdict(redis_client, task_id, time.time() + 60)[0] == "finished"


def test_the_worker_healthcheck_passes_for_a_consuming_worker_and_fails_for_an_unknown_one(worker):
    """`python -m tasks.delivery.heartbeat <node>`: the heartbeat file the consumer's event loop touches."""
    node = f"main@{socket.gethostname()}"
    alive = subprocess.run([sys.executable, "-m", "tasks.delivery.heartbeat", node], cwd=ROOT, capture_output=True, timeout=30)
    assert alive.returncode == 0, alive.stdout
    unknown = subprocess.run([sys.executable, "-m", "tasks.delivery.heartbeat", "nobody@nowhere"], cwd=ROOT, capture_output=True,
                             timeout=30)
    assert unknown.returncode == 1
