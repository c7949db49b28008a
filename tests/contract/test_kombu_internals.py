"""The kombu and Celery internals the delivery machinery and the publisher rely on, checked without any
server in well under a second, so a kombu or Celery upgrade fails here, naming what to re-read, instead
of in a long fault scenario (tests/contract/pins.py; docs/architecture.md: upgrading kombu or Celery)."""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from unittest import mock

import pytest
import redis
from celery import Celery
from celery.app.task import Context
from celery.exceptions import TaskRevokedError, TimeLimitExceeded
from kombu.transport import redis as kombu_redis

import celeryconfig
from gateway.http.errors import ServiceUnavailable
from gateway.submission import capture
from gateway.submission.publishing import Dispatcher, message_commands
from gateway.workers.endings import Outcome
from jobs.catalogue import JobCatalogue
from jobs.failures import BadContent
from jobs.keys import KOMBU_UNACKED, KOMBU_UNACKED_INDEX
from jobs.record import TaskRecord
from jobs.store import TaskStore
from settings import Settings, load_settings
from tasks.delivery import transport as worker_transport
from tests.contract.pins import differences


def test_pinned_internals_are_the_ones_the_overrides_were_written_against():
    found = differences()
    assert not found, "kombu/Celery internals changed (docs/architecture.md: upgrading kombu or Celery):\n" + "\n".join(found)


def test_kombu_redis_keys_are_the_ones_jobs_keys_names():
    assert (kombu_redis.Channel.unacked_key, kombu_redis.Channel.unacked_index_key) == (KOMBU_UNACKED, KOMBU_UNACKED_INDEX)


def test_kombu_redis_names_the_transport_uses_exist():
    assert all(hasattr(kombu_redis, name) for name in ("Empty", "loads", "bytes_to_str", "QoS", "Channel", "Transport"))
    assert worker_transport.Transport.Channel.QoS is worker_transport.QoS
    assert issubclass(capture.Transport.Channel, kombu_redis.Channel)


@pytest.fixture
def nowhere() -> Iterator[str]:
    """A redis:// URL on a port nobody listens on: anything actually sent fails loudly."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with mock.patch.object(redis.Redis, "ping", return_value=True):  # kombu PINGs when it opens a channel
        yield f"redis://127.0.0.1:{port}/0"


def _settings(url: str, **overrides: str) -> Settings:
    return load_settings("config.example.json", ".secrets.example.json",
                         environ={"GATEWAY__QUEUE__URL": url, "GATEWAY__QUEUE__RESULT_URL": url, **overrides})


def _gateway_celery(settings: Settings, **transport_options: object) -> Celery:
    conf = celeryconfig.build(settings, role="gateway", transport=capture.Transport)
    conf["broker_transport_options"].update(transport_options)
    return Celery("contract", config_source=conf, set_as_current=False)


def _record(job_name: str) -> TaskRecord:
    return TaskRecord.new("8c1f5a52-2f7e-4a0e-9a59-6f5b0c6c3f11", job_name, 60, None, "client-a", None)


def test_worker_channel_has_the_private_state_the_transport_uses(nowhere):
    settings = _settings(nowhere)
    conf = celeryconfig.build(settings, role="worker", transport=worker_transport.Transport)
    app = Celery("contract", config_source=conf, set_as_current=False)
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        assert isinstance(channel, worker_transport.Channel)
        assert callable(channel._queue_cycle.consume) and callable(channel._queue_cycle.rotate)
        assert hasattr(channel, "_in_poll") and isinstance(channel.qos._delivered, dict)
        assert list(channel.priority_steps) == [0] and not channel.global_keyprefix
        assert callable(channel.connection._deliver) and channel.connection.keeper is None
        channel.check_landing_possible()


def test_captured_publish_is_exactly_one_lpush_and_its_sent_event(nowhere):
    settings = _settings(nowhere)
    job = JobCatalogue(settings.config["jobs"]).get("calc_hash")
    record = _record("calc_hash")
    commands = message_commands(_gateway_celery(settings), job, record, {"content": "aGk="})
    assert [name for name, _ in commands] == ["lpush", "publish"]
    (queue, body), (channel, event) = commands[0][1], commands[1][1]
    message = json.loads(body)
    assert queue == job.queue and message["headers"]["id"] == record.uuid and message["headers"]["task"] == job.task
    assert channel.endswith("celeryev/task.sent") and json.loads(event)["body"]


def test_capture_refuses_a_publish_kombu_would_send_unbatched(nowhere):
    """retry_on_timeout makes kombu's channel say batching is unsafe: kombu then publishes at once."""
    settings = _settings(nowhere)
    job = JobCatalogue(settings.config["jobs"]).get("calc_hash")
    with pytest.raises(capture.NotCaptured):
        message_commands(_gateway_celery(settings, retry_on_timeout=True), job, _record("calc_hash"), {"content": "aGk="})


def test_submit_answers_503_and_queues_nothing_when_batching_is_unavailable(nowhere):
    settings = _settings(nowhere)
    catalogue = JobCatalogue(settings.config["jobs"])
    store = TaskStore(redis.Redis.from_url(nowhere, socket_timeout=0.2, socket_connect_timeout=0.2), ttl=60)
    dispatcher = Dispatcher(_gateway_celery(settings, retry_on_timeout=True), store, store.redis, same_redis=True)
    with pytest.raises(ServiceUnavailable):
        dispatcher.submit(catalogue.get("calc_hash"), {"content": "aGk="}, None, "client-a")


def test_record_creation_time_is_utc():
    assert _record("calc_hash").created.tzinfo == UTC and _record("calc_hash").created <= datetime.now(UTC)


def test_transports_are_handed_to_celery_as_import_paths(nowhere):
    """Celery puts the transport into the worker's stats and Flower's views: a class object there fails to encode."""
    settings = _settings(nowhere)
    worker = celeryconfig.build(settings, role="worker", transport=worker_transport.Transport)["broker_transport"]
    gateway = celeryconfig.build(settings, role="gateway", transport=capture.Transport)["broker_transport"]
    assert (worker, gateway) == ("tasks.delivery.transport:Transport", "gateway.submission.capture:Transport")


@pytest.mark.parametrize("state, value", [
    ("SUCCESS", {"size": 3, "digests": {"sha256": "ab"}}),
    ("FAILURE", BadContent("not an image")),
    ("FAILURE", TimeLimitExceeded(60)),
    ("REVOKED", TaskRevokedError("cancelled")),
    ("PROGRESS", {"percent": 40, "stage": "hashing"}),
])
def test_an_http_workers_meta_is_the_one_celerys_redis_backend_stores(state: str, value: object) -> None:
    """gateway/workers/endings.py writes Celery's result meta itself (inside the script that ends a job):
    field for field what the backend would store, but the moment it was done."""
    backend = Celery("contract", backend="redis://127.0.0.1:1/0", set_as_current=False).backend
    request = Context(id="t-1", children=[])  # a worker's request, of a task that started no other
    celery_meta = backend._get_result_meta(result=backend.encode_result(value, state), state=state, traceback=None,
                                           request=request)
    celery_meta["task_id"] = "t-1"
    ours = json.loads(Outcome(state, value, "", ("", {})).meta("t-1"))
    assert json.loads(backend.encode(celery_meta)).keys() == ours.keys()
    for key in ours.keys() - {"date_done"}:
        assert ours[key] == json.loads(backend.encode(celery_meta))[key], key
    assert (ours["date_done"] is None) == (celery_meta["date_done"] is None)
    if ours["date_done"]:
        assert datetime.fromisoformat(ours["date_done"]).tzinfo is not None


@pytest.fixture
def sentinels() -> Iterator[str]:
    """A sentinel:// address of two sentinels nobody runs (three ports nobody listens on)."""
    ports = []
    for _ in range(2):
        with closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    with mock.patch.object(redis.Redis, "ping", return_value=True):  # kombu PINGs when it opens a channel
        yield ";".join(f"sentinel://127.0.0.1:{port}/3" for port in ports)


def _sentinel_settings(url: str) -> Settings:
    return _settings(url, GATEWAY__QUEUE__SENTINEL__MASTER_NAME="main", GATEWAY__REDIS__PASSWORD="pa;ss@word",
                     GATEWAY__REDIS__SENTINEL_PASSWORD="sentinel-secret")


def _sentinel_pool_of(pool: redis.ConnectionPool) -> redis.sentinel.SentinelConnectionPool:
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    return pool


def _assert_every_sentinel_asked_with(pool: redis.sentinel.SentinelConnectionPool, url: str, timeout: float) -> None:
    """Every sentinel of the URL (celery#5538), with a timeout and the sentinels' own password; the master's
    password from the URL, whole (kombu#1007)."""
    manager = pool.sentinel_manager
    ports = sorted(int(chunk.rsplit(":", 1)[1].split("/")[0]) for chunk in url.split(";"))
    assert sorted(s.connection_pool.connection_kwargs["port"] for s in manager.sentinels) == ports
    for sentinel in manager.sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["password"]) == (timeout, "sentinel-secret")
        # redis-py 8 retries a host-and-port client 10 times with a backoff: a dead first sentinel cost seconds.
        assert sentinel.connection_pool.make_connection().retry.get_retries() == 0
    assert pool.service_name == "main"
    assert (pool.connection_kwargs["password"], pool.connection_kwargs["db"]) == ("pa;ss@word", 3)


def test_worker_sentinel_channel_takes_its_pool_from_every_sentinel(sentinels):
    settings = _sentinel_settings(sentinels)
    conf = celeryconfig.build(settings, role="worker", transport=worker_transport.Transport)
    assert conf["broker_transport"] == "tasks.delivery.transport:SentinelTransport"
    app = Celery("contract", config_source=conf, set_as_current=False)
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        assert isinstance(channel, worker_transport.SentinelChannel)
        assert isinstance(channel, kombu_redis.SentinelChannel)
        pool = _sentinel_pool_of(channel.pool)
        assert issubclass(pool.connection_class, redis.sentinel.SentinelManagedConnection)
        _assert_every_sentinel_asked_with(pool, sentinels, celeryconfig.WORKER_REDIS_TIMEOUT)
        channel.check_landing_possible()


@pytest.mark.parametrize("role, transport", [("worker", worker_transport.Transport), ("gateway", capture.Transport)])
def test_a_lost_sentinel_connection_keeps_our_transport(sentinels, role, transport):
    """kombu switches to the next alternate URL after a lost connection, and takes the transport from its
    scheme: without celeryconfig's failover strategy a worker came back on stock kombu's transport."""
    conf = celeryconfig.build(_sentinel_settings(sentinels), role=role, transport=transport)
    app = Celery("contract", config_source=conf, set_as_current=False)
    with app.connection_for_write() as connection:
        for _ in range(3):
            connection.maybe_switch_next()
            assert connection.transport_cls == conf["broker_transport"]
            assert connection.port == int(sentinels.split(";")[0].rsplit(":", 1)[1].split("/")[0])
        json.dumps(connection.info())  # the worker's stats carry it


def test_gateway_sentinel_channel_is_behind_the_masters_breaker_and_still_captures(sentinels):
    from gateway.health.breaker import GuardedSentinelConnection

    settings = _sentinel_settings(sentinels)
    celery = _gateway_celery(settings)
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, capture.SentinelChannel)
        pool = _sentinel_pool_of(channel.pool)
        assert issubclass(pool.connection_class, GuardedSentinelConnection)
        _assert_every_sentinel_asked_with(pool, sentinels, settings.config["queue"]["publish_timeout"])
    job = JobCatalogue(settings.config["jobs"]).get("calc_hash")
    commands = message_commands(celery, job, _record("calc_hash"), {"content": "aGk="})
    assert [name for name, _ in commands] == ["lpush", "publish"]


def test_sentinel_result_backend_has_a_master_name_and_bounded_sentinels(sentinels):
    """Without its transport options Celery's backend says "No master found for None"; without
    sentinel_kwargs its sentinel clients have no socket timeout at all."""
    settings = _sentinel_settings(sentinels)
    app = Celery("contract", config_source=celeryconfig.build(settings, role="worker",
                                                               transport=worker_transport.Transport),
                 set_as_current=False)
    assert type(app.backend).__name__ == "SentinelBackend"
    _assert_every_sentinel_asked_with(_sentinel_pool_of(app.backend.client.connection_pool), sentinels,
                                      celeryconfig.WORKER_REDIS_TIMEOUT)


def test_own_clients_follow_the_master_on_both_sides(sentinels):
    from gateway.health.breaker import GuardedSentinelConnection
    from gateway.health.clients import client_factory
    from tasks import runtime

    settings = _sentinel_settings(sentinels)
    gateway = client_factory(settings.sentinel)(settings.broker_url, 0.7)
    pool = _sentinel_pool_of(gateway.connection_pool)
    assert issubclass(pool.connection_class, GuardedSentinelConnection)
    _assert_every_sentinel_asked_with(pool, sentinels, 0.7)
    with mock.patch.object(runtime, "_settings", settings):
        worker = _sentinel_pool_of(runtime.redis_client(settings.result_url, timeout=2.0).connection_pool)
    _assert_every_sentinel_asked_with(worker, sentinels, 2.0)
