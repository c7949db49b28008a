"""Periodic jobs against real processes: two schedulers started with the shipped command
(devsupport/processes.py SCHEDULER_COMMAND: run-local.sh's and compose's) on the session's settings, whose
`every-second` schedule (tests/conftest.py) belongs to `client-scheduled`; the session's worker runs the
tasks, its gateway lists them and shows /ops/schedules."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime

import pytest
from celery import Celery
from redis import Redis

import celeryconfig
from devsupport.processes import BIN, ROOT, SCHEDULER_COMMAND, Process, start_redis, start_scheduler, wait_until
from gateway.health.clients import redis_client
from gateway.schedules.firing import Firing
from gateway.schedules.plan import plan
from gateway.submission import capture
from gateway.submission.publishing import Dispatcher
from jobs.catalogue import JobCatalogue
from jobs.keys import BEAT_LOCK, BEAT_PREFIX, RECORD_PREFIX, SCHEDULE_RUNS
from jobs.store import TaskStore
from tests.support.api import Api

SCHEDULE, OWNER = "every-second", "client-scheduled"
ACQUIRED = "beat: Acquired lock"


@pytest.fixture
def owner_api(gateway_url, worker, vault) -> Api:
    """The gateway as the schedule's owner: a JWT client (Vault's `dynamic` role) with that client_id."""
    api = Api(gateway_url)
    api.session.headers["Authorization"] = "Bearer " + vault.jwt(client_id=OWNER, client_role="service")
    return api


def owner_tasks(api: Api) -> list[dict]:
    response = api.request("GET", "/tasks", params={"limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def acquired(proc: Process) -> bool:
    return ACQUIRED in proc.output()


def test_one_of_two_schedulers_fires_each_tick_as_a_task_of_the_owner_and_the_other_takes_over(
        owner_api, api, api_as, service_env, run_dir, redis_client, settings):
    before = {task["uuid"] for task in owner_tasks(owner_api)}
    first = start_scheduler("a", service_env, run_dir)
    second = None
    try:
        wait_until(lambda: acquired(first), 20, "the first scheduler holding the lock")
        second = start_scheduler("b", service_env, run_dir)
        wait_until(lambda: "beat: Starting" in second.output(), 20, "the second scheduler started")

        # Ticks become ordinary tasks of the owner, run by the real worker.
        def done_runs() -> list[dict]:
            runs = [t for t in owner_tasks(owner_api) if t["uuid"] not in before]
            return runs if sum(t["status"] == "done" for t in runs) >= 2 else []
        runs = wait_until(done_runs, 20, "two scheduled tasks done")
        assert all(t["type"] == "calc_hash" for t in runs)
        assert second.alive() and not acquired(second), "only one scheduler holds the lock"

        # The holder dies without a word: the other takes over within the lock's timeout.
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: acquired(second), 10, "the second scheduler taking the lock")
        took = time.monotonic() - killed
        lock_timeout, max_interval = settings.config["scheduler"]["lock_timeout"], settings.config["scheduler"]["max_interval"]
        assert took <= lock_timeout + max_interval + 2, took
        taken_over = {t["uuid"] for t in owner_tasks(owner_api)}
        wait_until(lambda: {t["uuid"] for t in owner_tasks(owner_api)} - taken_over, 10,
                   "a task fired by the second scheduler")
        assert redis_client.pttl(BEAT_LOCK) > 0

        # /ops/schedules: operators see the last and next run and the last task; clients may not look.
        body = api.request("GET", "/ops/schedules").json()
        assert body["scheduler"]["lock_held"] is True and 0 < body["scheduler"]["lock_expires_in"] <= lock_timeout
        row = next(row for row in body["schedules"] if row["name"] == SCHEDULE)
        assert row["type"] == "calc_hash" and row["owner"] == OWNER and row["every"] == 1 and row["cron"] is None
        last, upcoming = datetime.fromisoformat(row["last_run_at"]), datetime.fromisoformat(row["next_run_at"])
        assert abs((upcoming - last).total_seconds() - 1) < 0.01
        assert row["last_task"] in {t["uuid"] for t in owner_tasks(owner_api)}
        refused = api_as("service").request("GET", "/ops/schedules")
        assert refused.status_code == 403 and refused.json() == {"code": 403, "message": "Forbidden"}
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()

    # Never two tasks for one tick: every task of the owner is one tick, a second apart from the next.
    made = sorted(datetime.fromisoformat(t["created"]).timestamp()
                  for t in owner_tasks(owner_api) if t["uuid"] not in before)
    gaps = [later - earlier for earlier, later in zip(made, made[1:], strict=False)]
    assert len(made) >= 3 and min(gaps) > 0.9, gaps
    assert "already made task" not in first.output() + second.output()
    # Nothing left running for the tests that follow.
    wait_until(lambda: all(t["status"] == "done" for t in owner_tasks(owner_api)), 20, "every scheduled task done")


def test_a_tick_fired_twice_makes_one_task(settings, redis_client, owner_api):
    """What a beat that lost its lock mid-tick, or restarted between its submit and its bookkeeping, does:
    fire a tick another firing already made. The tick's claim answers with the first task."""
    app = Celery("test-firing", config_source=celeryconfig.build(settings, role="gateway", transport=capture.Transport),
                 set_as_current=False)
    store = TaskStore(redis_client_for(settings), ttl=settings.config["results"]["expires"])
    firing = Firing(Dispatcher(app, store, redis_client_for(settings), same_redis=True),
                    JobCatalogue(settings.config["jobs"]), settings.config["limits"])
    planned = plan(settings.config["schedules"], app)[SCHEDULE]
    tick = f"test-{time.time()}"
    once, again = firing.fire(planned, tick), firing.fire(planned, tick)
    assert once.new and not again.new and once.uuid == again.uuid
    assert json.loads(redis_client.hget(SCHEDULE_RUNS, SCHEDULE))["uuid"] == once.uuid
    other = firing.fire(planned, tick + "-next")
    assert other.new and other.uuid != once.uuid
    for uuid in (once.uuid, other.uuid):  # ordinary tasks of the owner, run by the worker
        assert owner_api.wait_status(uuid, "done")["type"] == "calc_hash"


def redis_client_for(settings):
    return redis_client(settings.result_url)


BAD_SCHEDULES = {
    "a": ({"type": "nope", "upload": {}, "owner": "c", "every": 5}, "config.schedules.a.type: unknown job type 'nope'"),
    "b": ({"type": "calc_hash", "upload": {"content": 1}, "owner": "c", "every": 5},
          "config.schedules.b.upload.content: 1 is not of type 'string'"),
    "c": ({"type": "calc_hash", "upload": {"content": "eA=="}, "owner": "c", "cron": "61 * * * *"},
          "config.schedules.c.cron: minute: 61 is outside 0..59"),
    "d": ({"type": "calc_hash", "upload": {"content": "eA=="}, "owner": "c", "cron": "0 3 * * *",
           "timezone": "Mars/Base"}, "config.schedules.d.timezone: 'Mars/Base' is not an IANA time zone name"),
    "e": ({"type": "calc_hash", "upload": {"content": "eA=="}, "owner": "c", "every": 5, "cron": "* * * * *"},
          "config.schedules.e: give either `every` (seconds) or `cron`, not both"),
}


def start_with_schedules(service_env: dict[str, str], schedules: dict) -> subprocess.CompletedProcess:
    env = dict(service_env, GATEWAY__SCHEDULES=json.dumps(schedules))
    return subprocess.run([str(BIN / "celery"), *SCHEDULER_COMMAND[1:]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_bad_schedules_stop_the_scheduler_at_start_each_named_by_its_path(service_env):
    done = start_with_schedules(service_env, {name: schedule for name, (schedule, _) in BAD_SCHEDULES.items()})
    assert done.returncode == 2, done.stderr[-2000:]
    for _, problem in BAD_SCHEDULES.values():
        assert problem in done.stderr, (problem, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and ACQUIRED not in done.stdout + done.stderr
    # What only the gateway knows: the callback URLs it would take from this owner.
    done = start_with_schedules(service_env, {"hooked": {"type": "calc_hash", "upload": {"content": "eA=="},
                                                         "owner": "client-admin", "every": 5,
                                                         "callback_url": "http://elsewhere.example/hook"}})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "config.schedules.hooked.callback_url: Host is not allowed for callbacks." in done.stderr


def test_the_schedules_keys_are_redbeats():
    """RedBeat's own names, under the prefix jobs/keys.py documents: what /ops/schedules reads."""
    from redbeat.schedulers import RedBeatConfig

    app = Celery("keys", set_as_current=False)
    app.conf.update(redbeat_key_prefix=BEAT_PREFIX, redbeat_redis_url="redis://127.0.0.1:1/0")
    conf = RedBeatConfig(app)
    assert conf.lock_key == BEAT_LOCK and conf.schedule_key == BEAT_PREFIX + ":schedule"


def test_the_scheduler_rides_out_a_redis_restart_that_lost_everything(service_env, run_dir, redis_password):
    """Its own Redis, in memory: restarted, it has lost the lock and the schedules' entries. The scheduler
    logs the outage (no traceback), takes the lock again, writes the entries again and fires on."""
    server, port = start_redis(run_dir, redis_password)
    env = dict(service_env, GATEWAY__QUEUE__URL=f"redis://127.0.0.1:{port}/0")
    store = Redis(port=port, password=redis_password, decode_responses=True)
    scheduler = None
    try:
        wait_until(store.ping, 10, "the scheduler's own Redis")
        scheduler = start_scheduler("restart", env, run_dir)
        wait_until(lambda: store.keys(RECORD_PREFIX + "*"), 20, "a tick before the restart")
        server.stop()
        wait_until(lambda: "Redis unavailable" in scheduler.output(), 10, "the outage noticed")
        server, _ = start_redis(run_dir, redis_password, port=port)
        wait_until(lambda: store.keys(RECORD_PREFIX + "*") and store.pttl(BEAT_LOCK) > 0, 20,
                   "a tick after the restart, under the lock taken again")
        assert scheduler.alive() and "Traceback" not in scheduler.output()
    finally:
        if scheduler is not None:
            scheduler.stop()
        server.stop()
