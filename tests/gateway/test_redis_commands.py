"""Redis commands per request, counted by the server itself (`INFO commandstats` after `CONFIG
RESETSTAT`; commands run inside a script count too), and round trips, counted where the gateway's
connections send: deterministic, unlike timings (issue 19).

An in-process gateway on a Redis of its own, so no worker, sweep or other test adds to the count; a
task is finished by writing Celery's meta the way a worker's result backend does. The gateway's
clocks are stopped, so no rate window, TTL period or trim falls due between two requests.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from redis import Redis

from devsupport.processes import start_redis, wait_until
from gateway import create_app
from gateway.access import decorators
from gateway.health.breaker import GuardedConnection
from gateway.services import services
from jobs.keys import META_PREFIX, RECORD_PREFIX
from settings import load_settings
from tests.support.api import b64

# What a connection's set-up sends (AUTH, CLIENT SETINFO, HELLO) and the counting itself are not the
# request's; PING is redis-py's check of a connection idle for 30 s.
NOT_COUNTED = {"auth", "client|setinfo", "hello", "config|resetstat", "info", "ping", "select"}
SUBMISSION = {"type": "calc_hash", "upload": {"content": b64(b"count me")}}
LIMITED = "counted-limited"  # a client with a read and a submit limit of 2 per hour

# The save script: the rate check's HINCRBY, the cap's ZCOUNT, the record (HSET, EXPIRE), the owner's
# index and open set (ZADD each), the submission counts (HINCRBY total and hour), the message (LPUSH)
# and its task-sent event (PUBLISH).
SUBMIT = {"evalsha": 1, "hincrby": 3, "zcount": 1, "hset": 1, "expire": 1, "zadd": 2, "lpush": 1, "publish": 1}


@dataclass
class Counted:
    client: Any
    redis: Redis
    auth: dict[str, str]
    limited: dict[str, str]
    other: dict[str, str]
    round_trips: list[int]

    def run(self, request: Callable[[], Any]) -> tuple[Counter[str], int, Any]:
        """The commands Redis ran for `request` (by name), the round trips it took, and its answer."""
        self.redis.config_resetstat()
        self.round_trips.clear()
        answer = request()
        trips = len(self.round_trips)
        ran = {name.removeprefix("cmdstat_"): row["calls"] for name, row in self.redis.info("commandstats").items()}
        return Counter({name: calls for name, calls in ran.items() if name not in NOT_COUNTED}), trips, answer

    def submit(self, auth: dict[str, str] | None = None, **headers: str) -> Any:
        return self.client.post("/submit", json=SUBMISSION, headers=(auth or self.auth) | headers)

    def taskinfo(self, task_id: str, auth: dict[str, str] | None = None) -> Any:
        return self.client.get(f"/taskinfo?taskid={task_id}", headers=auth or self.auth)


@pytest.fixture(scope="module")
def counted(run_dir, config_files, vault) -> Iterator[Counted]:
    proc, port = start_redis(run_dir, "countpw")
    redis = Redis(port=port, password="countpw", decode_responses=True)
    wait_until(redis.ping, 15, "counting redis up")
    limits = json.dumps({LIMITED: "2/hour"})
    settings = load_settings(*config_files, environ={
        "GATEWAY__QUEUE__URL": f"redis://:countpw@127.0.0.1:{port}/0",
        # Capped, as clients are by default (the test config caps nobody but one client).
        "GATEWAY__LIMITS__MAX_UNFINISHED__DEFAULT": "10000",
        "GATEWAY__LIMITS__RATE__READ__CLIENTS": limits, "GATEWAY__LIMITS__RATE__SUBMIT__CLIENTS": limits})
    app = create_app(settings)
    # Ten minutes into the next hour: in the future (the gateway sets TTLs from it), and at a known
    # point of LIMITED's hourly window, so the previous window's count is read at its second request.
    stopped = float(math.ceil(time.time() / 3600) * 3600 + 600)
    app.extensions[decorators.KEY].rate_limits.window.clock = lambda: stopped
    with app.app_context():
        services().dispatcher.housekeeping.clock = lambda: stopped
    counted = Counted(app.test_client(), redis, {"Authorization": "Bearer " + vault.jwt(client_id="counted")},
                      {"Authorization": "Bearer " + vault.jwt(client_id=LIMITED)},
                      {"Authorization": "Bearer " + vault.jwt(client_id="counted-other")}, [])
    # Warm up: the Vault logins, the scripts loaded, the connections open, this period's TTLs set.
    warm = counted.submit().get_json()["uuid"]
    assert counted.taskinfo(warm).status_code == 200
    assert counted.taskinfo(warm, counted.limited).status_code == 404
    assert counted.taskinfo(warm, counted.other).status_code == 404
    original = GuardedConnection.send_packed_command

    def counting(connection: GuardedConnection, command: Any, check_health: bool = True) -> None:
        if not connection._nested and connection.port == port:
            counted.round_trips.append(1)
        return original(connection, command, check_health)

    GuardedConnection.send_packed_command = counting  # type: ignore[method-assign]
    yield counted
    GuardedConnection.send_packed_command = original  # type: ignore[method-assign]
    proc.stop()


def finish(redis: Redis, task_id: str, status: str = "SUCCESS") -> None:
    """What a worker's result backend writes when the job ends."""
    meta = {"status": status, "result": {"digest": "0" * 64}, "traceback": None, "children": [],
            "date_done": datetime.now(UTC).isoformat(), "task_id": task_id}
    redis.set(META_PREFIX + task_id, json.dumps(meta), ex=3600)


def test_submit_is_one_script_call(counted):
    ran, trips, response = counted.run(counted.submit)
    assert response.status_code == 202
    assert ran == SUBMIT and trips == 1


def test_submit_with_an_idempotency_key_adds_its_claim_only(counted):
    ran, trips, response = counted.run(lambda: counted.submit(**{"Idempotency-Key": uuid.uuid4().hex}))
    assert response.status_code == 202
    assert ran == Counter(SUBMIT) + Counter({"get": 1, "set": 1}) and trips == 1


def test_taskinfo_of_a_finished_task_is_three_commands_in_one_round_trip(counted):
    task_id = counted.submit().get_json()["uuid"]
    finish(counted.redis, task_id)
    ran, trips, response = counted.run(lambda: counted.taskinfo(task_id))
    assert response.get_json()["status"] == "done"
    assert ran == {"hincrby": 1, "hgetall": 1, "get": 1} and trips == 1


def test_reread_of_a_finished_task_is_two_commands_and_the_same_answer(counted):
    task_id = counted.submit().get_json()["uuid"]
    finish(counted.redis, task_id, "FAILURE")
    first = counted.taskinfo(task_id).get_json()
    ran, trips, response = counted.run(lambda: counted.taskinfo(task_id))
    assert response.get_json() == first and first["status"] == "error"
    assert ran == {"hincrby": 1, "hget": 1} and trips == 1


def test_taskinfo_of_a_queued_task_is_three_commands(counted):
    task_id = counted.submit().get_json()["uuid"]
    ran, trips, response = counted.run(lambda: counted.taskinfo(task_id))
    assert response.get_json()["status"] == "created"
    assert ran == {"hincrby": 1, "hgetall": 1, "get": 1} and trips == 1


def test_taskinfo_of_a_running_task_reads_its_lease_too(counted):
    task_id = counted.submit().get_json()["uuid"]
    counted.redis.hset(RECORD_PREFIX + task_id, "started", str(time.time()))  # as the worker's start check does
    ran, trips, response = counted.run(lambda: counted.taskinfo(task_id))
    assert response.get_json()["message"] == "Queued again: the worker running it was lost"  # no lease
    assert ran == {"hincrby": 1, "hgetall": 1, "get": 1, "exists": 1} and trips == 2


def test_reread_after_a_requeue_reads_the_task_afresh(counted):
    task_id = counted.submit().get_json()["uuid"]
    finish(counted.redis, task_id, "FAILURE")
    assert counted.taskinfo(task_id).get_json()["status"] == "error"
    # What Dispatcher.requeue's script does to a dead letter: a new `created`, the outcome gone.
    counted.redis.hset(RECORD_PREFIX + task_id, "created", datetime.now(UTC).isoformat())
    counted.redis.delete(META_PREFIX + task_id)
    assert counted.taskinfo(task_id).get_json()["status"] == "created"


def test_reread_after_the_record_expired_is_a_404(counted):
    task_id = counted.submit().get_json()["uuid"]
    finish(counted.redis, task_id)
    assert counted.taskinfo(task_id).status_code == 200
    counted.redis.delete(RECORD_PREFIX + task_id)
    assert counted.taskinfo(task_id).status_code == 404


def test_a_remembered_task_is_still_foreign_to_other_clients(counted):
    task_id = counted.submit().get_json()["uuid"]
    finish(counted.redis, task_id)
    assert counted.taskinfo(task_id).status_code == 200
    assert counted.taskinfo(task_id, counted.other).get_json() == {"code": 404, "message": "Task not found"}


def test_refused_submit_writes_nothing_and_refused_read_reveals_nothing(counted):
    """LIMITED has 2 of each per hour; the warm-up spent one read (a 404)."""
    accepted = counted.submit(counted.limited)
    assert accepted.status_code == 202
    task_id = accepted.get_json()["uuid"]
    assert counted.submit(counted.limited).status_code == 202
    keys_before = set(counted.redis.keys("*"))
    ran, trips, refused = counted.run(lambda: counted.submit(counted.limited))
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    # The check and the count taken back (the previous window's count was read and remembered at the
    # second request, the first near the limit): nothing else.
    assert ran == {"evalsha": 1, "hincrby": 2} and trips == 1
    ran, trips, again = counted.run(lambda: counted.submit(counted.limited))
    assert again.status_code == 429 and again.get_json() == refused.get_json()
    assert ran == {} and trips == 0  # this process knows the caller is over: Redis is not even asked
    assert set(counted.redis.keys("*")) == keys_before
    assert counted.taskinfo(task_id, counted.limited).status_code == 200
    unknown = counted.taskinfo(str(uuid.uuid4()), counted.limited)
    known = counted.taskinfo(task_id, counted.limited)
    assert unknown.status_code == known.status_code == 429
    assert unknown.get_json() == known.get_json() == {"code": 429, "message": "Rate limit exceeded: 2/hour"}
