"""A dead or stalled broker: 503 JSON within 2 seconds, nothing recorded, and the gateway recovers."""
from __future__ import annotations

import time

import pytest
import requests
from redis import Redis

from devsupport.processes import free_port, start_gunicorn, start_redis, wait_until
from gateway import create_app
from jobs.keys import RECORD_PREFIX
from settings import load_settings
from tests.support.api import b64, basic_header

PUBLISH_DEADLINE = 2.0
SUBMISSION = {"type": "calc_hash", "upload": {"content": b64(b"x")}}


def app_with_broker(config_files, redis_port: int, redis_password: str, broker_url: str, db: int):
    """An app whose broker is `broker_url` while its records go to the real Redis (db `db`)."""
    settings = load_settings(*config_files, environ={
        "GATEWAY__QUEUE__URL": broker_url,
        "GATEWAY__QUEUE__RESULT_URL": f"redis://:{redis_password}@127.0.0.1:{redis_port}/{db}",
    })
    return create_app(settings).test_client(), Redis(port=redis_port, password=redis_password, db=db)


@pytest.mark.parametrize("kind", ["refused", "stalled"])
def test_submit_with_broker_down_is_a_fast_503_and_records_nothing(kind, stalled_port, config_files, redis_port,
                                                                   redis_password, vault):
    port = stalled_port if kind == "stalled" else free_port()
    client, records = app_with_broker(config_files, redis_port, redis_password, f"redis://127.0.0.1:{port}/0", db=3)
    for _ in range(2):
        started = time.monotonic()
        response = client.post("/submit", json=SUBMISSION, headers=basic_header(*vault.basic("admin")))
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.get_json() == {"code": 503, "message": "Broker unavailable"}
        assert elapsed < PUBLISH_DEADLINE, f"publish took {elapsed:.2f}s"
    assert records.keys(RECORD_PREFIX + "*") == []


def test_health_names_the_broker_when_it_is_down(config_files, redis_port, redis_password):
    client, _ = app_with_broker(config_files, redis_port, redis_password, f"redis://127.0.0.1:{free_port()}/0", db=3)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json() == {"message": "Unavailable: broker", "code": 0}


def test_health_names_the_result_backend_when_it_is_down(config_files):
    settings = load_settings(*config_files, environ={"GATEWAY__QUEUE__RESULT_URL": f"redis://127.0.0.1:{free_port()}/0"})
    response = create_app(settings).test_client().post("/health")
    assert response.status_code == 503
    assert response.get_json() == {"message": "Unavailable: result backend", "code": 0}


def test_gateway_recovers_when_the_broker_comes_back(run_dir, config_files, redis_port, redis_password, vault):
    auth = basic_header(*vault.basic("admin"))
    broker_port = free_port()
    broker, _ = start_redis(run_dir, "brokerpw", port=broker_port)
    url = f"redis://:brokerpw@127.0.0.1:{broker_port}/0"
    client, _ = app_with_broker(config_files, redis_port, redis_password, url, db=4)
    try:
        wait_until(lambda: Redis(port=broker_port, password="brokerpw").ping(), 15, "second redis up")
        assert client.post("/submit", json=SUBMISSION, headers=auth).status_code == 202
        broker.stop()
        assert client.post("/submit", json=SUBMISSION, headers=auth).status_code == 503
        broker, _ = start_redis(run_dir, "brokerpw", port=broker_port)
        wait_until(lambda: Redis(port=broker_port, password="brokerpw").ping(), 15, "second redis back")
        wait_until(lambda: client.post("/submit", json=SUBMISSION, headers=auth).status_code == 202, 10, "submit accepted again")
        assert Redis(port=broker_port, password="brokerpw").llen("hash") >= 1
    finally:
        broker.stop()


def test_gunicorn_worker_survives_a_dead_broker(service_env, run_dir, redis_port, redis_password, vault):
    port = free_port()
    env = dict(service_env, GATEWAY__QUEUE__URL=f"redis://127.0.0.1:{free_port()}/0",
               GATEWAY__QUEUE__RESULT_URL=f"redis://:{redis_password}@127.0.0.1:{redis_port}/5")
    proc = start_gunicorn(port, env, run_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=1).status_code == 503, 30, "gateway answering")
        for _ in range(3):
            response = requests.post(url + "/submit", json=SUBMISSION, timeout=5, auth=vault.basic("admin"))
            assert response.status_code == 503 and response.json()["message"] == "Broker unavailable"
        assert proc.alive()
        assert requests.get(url + "/health", timeout=5).json() == {"message": "Unavailable: broker", "code": 0}
    finally:
        proc.stop()
