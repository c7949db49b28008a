"""The gateway's own sweep (gateway/workers/leasing.py `sweep`) puts a lapsed HTTP delivery back in its
queue where no Celery worker runs to do it: a redis-server of its own, nobody else on it."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from redis import Redis

import celeryconfig
from devsupport.processes import start_redis
from gateway.submission import capture
from gateway.workers import leasing, scripts
from jobs.catalogue import JobCatalogue
from jobs.keys import HTTP_WORKERS, KOMBU_UNACKED, KOMBU_UNACKED_INDEX
from settings import load_settings


@pytest.fixture
def alone(tmp_path: Path) -> Iterator[tuple[leasing.HttpWorkers, Redis]]:
    proc, port = start_redis(tmp_path, "sweep-password")
    url = f"redis://:sweep-password@127.0.0.1:{port}/0"
    settings = load_settings("config.example.json", ".secrets.example.json",
                             environ={"GATEWAY__QUEUE__URL": url, "GATEWAY__QUEUE__RESULT_URL": url,
                                      "GATEWAY__WORKERS__HTTP_LEASE": "2"})
    celery = Celery("sweep", config_source=celeryconfig.build(settings, role="gateway", transport=capture.Transport),
                    set_as_current=False)
    redis = Redis.from_url(url, decode_responses=True)
    workers = leasing.HttpWorkers(celery, JobCatalogue(settings.config["jobs"]), redis, redis, redis,
                                  settings.config, same_redis=True)
    yield workers, redis
    proc.stop()


def test_a_lapsed_http_delivery_goes_back_to_the_front_of_its_queue(alone) -> None:
    workers, redis = alone
    message = json.dumps({"body": "", "headers": {"id": "t-1"}, "properties": {
        "delivery_tag": "tag-1", "delivery_info": {"exchange": "", "routing_key": "hash"}}})
    redis.lpush("hash", message, "newer")  # `message` at the consuming end (the right: kombu BRPOPs)
    tag, raw = redis.eval(scripts.TAKE, 4, "hash", KOMBU_UNACKED, KOMBU_UNACKED_INDEX, HTTP_WORKERS,
                          workers.due_score(time.time()), "w|hash", time.time())
    assert (tag, raw) == ("tag-1", message)
    assert json.loads(redis.hget(KOMBU_UNACKED, "tag-1")) == [json.loads(message), "", "hash"]
    workers.sweep()  # not due yet: the lease (2 s) still runs
    assert redis.lrange("hash", 0, -1) == ["newer"]
    redis.zadd(KOMBU_UNACKED_INDEX, {"tag-1": workers.due_score(time.time() - 3)})  # its lease lapsed a second ago
    workers._swept = 0.0  # the sweep's own pace (every 5 s per process) is not what is tested here
    workers.sweep()
    back = redis.lrange("hash", 0, -1)
    assert back[0] == "newer" and json.loads(back[-1])["headers"] == {"id": "t-1", "redelivered": True}
    assert not redis.hexists(KOMBU_UNACKED, "tag-1") and redis.zscore(KOMBU_UNACKED_INDEX, "tag-1") is None


def test_something_that_is_not_a_kombu_message_goes_back_untouched(alone) -> None:
    workers, redis = alone
    redis.lpush("hash", "not json at all")
    assert redis.eval(scripts.TAKE, 4, "hash", KOMBU_UNACKED, KOMBU_UNACKED_INDEX, HTTP_WORKERS, 0, "w|hash", 0) == [
        "", "not json at all"]
    assert redis.lrange("hash", 0, -1) == ["not json at all"] and not redis.hlen(KOMBU_UNACKED)
