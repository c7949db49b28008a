"""Every Celery setting, for the workers and for the gateway's publisher, derived from settings.

Queues and routes come from the job catalogue in config.json and are all declared here; nothing is
implied by Celery's defaults (`task_create_missing_queues` is off).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from kombu import Exchange, Queue
from kombu.connection import failover_strategies

from jobs import webhooks
from jobs.catalogue import JobCatalogue
from settings import Settings
from settings.addresses import is_sentinel, transport_options

RESTORE_INTERVAL = 5  # seconds between a worker's sweeps for deliveries whose worker is gone
# Seconds an idle worker's blocking move waits on a queue before it asks again (kombu's brpop_timeout, 1 s
# stock): each ask is a Redis command per queue, so an idle worker costs 1 / TAKE_WAIT commands a second
# per queue. A job arriving meanwhile is taken at once; a warm shutdown may wait this long for the reply.
TAKE_WAIT = 5
# The workers' Redis clients (Celery's, kombu's and their own, tasks/runtime.py `redis_client`): a reply
# may take this long before the connection counts as lost.
WORKER_REDIS_TIMEOUT = 10.0
WORKER_REDIS_CONNECT_TIMEOUT = 5.0
# kombu's failover strategy for a sentinel:// broker, registered by name (a function in the configuration
# would reach the worker's stats, which must encode as JSON). See _sentinel.
STAY_ON_SENTINELS = "stay-on-sentinels"
RESULT_STORE_RETRIES = 35  # a finished job's result store retried this often while Redis is away (backoff to 2 s)


def monitor() -> dict[str, Any]:
    """For Flower, `celery inspect` and `celery control` started with nothing but a broker URL
    (CELERY_BROKER_URL, `celery --broker=…`): what they must agree on with the workers and the gateway to
    read their events and replies. The broker
    transport is stock kombu: the workers' changes to it are none in the wire format."""
    return {"accept_content": ["json"], "result_accept_content": ["json"], "task_serializer": "json",
            "result_serializer": "json", "enable_utc": True, "timezone": "UTC",
            "broker_transport_options": {"priority_steps": [0]}}


def build(settings: Settings, role: str = "worker", transport: type | str = "redis") -> dict[str, Any]:
    """Celery configuration for a `worker` or for the `gateway` (a publisher that never waits).

    `transport` is the kombu transport class each side hands over: the workers' tasks/delivery/transport.py,
    the gateway's gateway/submission/capture.py; stock kombu Redis for anyone else (tests, tools). For a
    sentinel:// broker, its `sentinel_variant` (stock: kombu's "sentinel")."""
    config = settings.config
    if is_sentinel(settings.broker_url):
        transport = getattr(transport, "sentinel_variant", None) or "sentinel"
    jobs = config["jobs"]
    catalogue = JobCatalogue(jobs)
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
        # As "module:Class": kombu imports it, and the worker's stats and Flower show it as text (a class
        # object in the connection info makes `celery inspect stats` fail to encode its reply).
        "broker_transport": transport if isinstance(transport, str) else f"{transport.__module__}:{transport.__qualname__}",
        # Completion webhooks (tasks/webhooks.py) travel on their own queue (jobs/webhooks.py).
        "task_queues": [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in catalogue.queues],
        "task_routes": {webhooks.TASK_NAME: {"queue": webhooks.QUEUE, "routing_key": webhooks.QUEUE},
                        **{job["task"]: {"queue": job["queue"], "routing_key": job["queue"]} for job in jobs.values()}},
        "task_default_queue": catalogue.job_queues[0],
        "task_create_missing_queues": False,
        # Time limits are enforced by the worker even for messages sent without them (Flower, scripts);
        # a webhook delivery has its own deadline, and these bound the task around it (jobs/webhooks.py).
        "task_annotations": {
            **{job["task"]: {"time_limit": job["time_limit"], "soft_time_limit": job["soft_time_limit"]}
               for job in jobs.values()},
            webhooks.TASK_NAME: {"time_limit": webhooks.TIME_LIMIT, "soft_time_limit": webhooks.SOFT_TIME_LIMIT},
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "enable_utc": True,
        "timezone": "UTC",
        # A job is acknowledged only once it finished; a killed worker hands it back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A started job is marked in the gateway's record by the start check (tasks/delivery/startcheck.py):
        # Celery's own tracking would overwrite the outcome of a job redelivered after it finished.
        "task_track_started": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "result_expires": config["results"]["expires"],
        # One list per queue (kombu's default is four, one per priority step; nothing here sends
        # priorities): the worker's transport takes messages with BLMOVE, which reads one list.
        "broker_transport_options": {"priority_steps": [0]},
    }
    specific = _gateway(settings) if role == "gateway" else _worker(settings)
    conf["broker_transport_options"].update(specific.pop("broker_transport_options"))
    conf.update(specific)
    _sentinel(settings, conf)
    return conf


def _stay(alternates: Iterable[Any]) -> Iterator[str]:
    """kombu's "next URL" after a lost connection: the first sentinel's host, so kombu's switch() keeps the
    transport it was given. Every sentinel URL is an alternate to kombu, and switching to one takes the
    transport from its scheme: stock kombu's SentinelTransport instead of ours (a worker died on that,
    with no landing lists). Nothing is lost: the Sentinel channel asks every sentinel on each connect."""
    return itertools.repeat(urlsplit(next(iter(alternates))).hostname or "")


failover_strategies.setdefault(STAY_ON_SENTINELS, _stay)


def _sentinel(settings: Settings, conf: dict[str, Any]) -> None:
    """A sentinel:// broker or result backend needs the master's name and the sentinels' options beside
    its URL (kombu's and Celery's Sentinel support reads them from the transport options; without them,
    "No master found for None"). The sentinels are asked with the same timeouts as the master."""
    sentinel = settings.sentinel
    if sentinel is None:
        return
    broker = conf["broker_transport_options"]
    if is_sentinel(settings.broker_url):
        conf["broker_failover_strategy"] = STAY_ON_SENTINELS
        broker.update(transport_options(sentinel, broker.get("socket_timeout"), broker.get("socket_connect_timeout")))
    if conf.get("result_backend") and is_sentinel(settings.result_url):
        backend = conf.setdefault("result_backend_transport_options", {})
        backend.update(transport_options(sentinel, conf.get("redis_socket_timeout"),
                                         conf.get("redis_socket_connect_timeout")))


def _worker(settings: Settings) -> dict[str, Any]:
    """A worker consumes through tasks/delivery/transport.py (kombu's Redis transport, made safe to lose its
    connection) and keeps leases on what it holds (tasks/delivery/leases.py): a delivery whose worker stopped
    refreshing it for `workers.visibility_timeout` seconds is put back in its queue by any worker's
    sweep, every few seconds, so a lost job runs again within about that bound, however long jobs run."""
    workers = settings.config["workers"]
    return {
        "result_backend": settings.result_url,
        "redis_socket_timeout": WORKER_REDIS_TIMEOUT,
        "redis_socket_connect_timeout": WORKER_REDIS_CONNECT_TIMEOUT,
        "redis_retry_on_timeout": True,
        "result_backend_transport_options": {"retry_policy": {"timeout": WORKER_REDIS_TIMEOUT}},
        # A job that finished while Redis restarts keeps trying to store its result (backoff up to 2 s,
        # about a minute in all) instead of turning the connection error into the job's failure: the
        # work was done, and "error 1" would be a lie (the fault suite's redis-restart found it).
        "result_backend_always_retry": True,
        "result_backend_max_retries": RESULT_STORE_RETRIES,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "broker_connection_timeout": 5.0,
        "broker_connection_retry_on_startup": True,
        "worker_prefetch_multiplier": workers["prefetch_multiplier"],
        "worker_concurrency": workers["concurrency"],
        # A pool process that peaked above this (Celery counts KiB) is replaced after its task.
        "worker_max_memory_per_child": (workers["max_memory_per_child_mib"] or 0) * 1024 or None,
        "worker_hijack_root_logger": False,
        # A lost broker connection does not kill running jobs: they finish, their results are stored
        # when Redis answers again, and a redelivery of a finished job is skipped (tasks/base.py).
        # Terminating them was reported as a client's cancellation (error 4) nobody asked for.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_transport_options": {
            "socket_timeout": WORKER_REDIS_TIMEOUT, "socket_connect_timeout": WORKER_REDIS_CONNECT_TIMEOUT,
            "visibility_timeout": workers["visibility_timeout"],
            # Every worker sweeps for deliveries past their visibility timeout every RESTORE_INTERVAL s.
            "unacked_restore_interval": RESTORE_INTERVAL, "unacked_restore_throttle": 1,
            "polling_interval": TAKE_WAIT,
            # A worker that dies inside a sweep holds the sweep's lock no longer than this (kombu: 300 s).
            "unacked_mutex_expire": 30,
        },
    }


def _gateway(settings: Settings) -> dict[str, Any]:
    """The gateway publishes and never waits: no result backend (no per-publish SUBSCRIBE), no
    publish retries, and socket timeouts short enough that a dead or stalled broker answers 503
    well within two seconds."""
    timeout = settings.config["queue"]["publish_timeout"]
    return {
        "result_backend": None,
        "task_ignore_result": True,
        "task_publish_retry": False,
        "broker_connection_timeout": timeout,
        "broker_connection_retry": False,
        "broker_connection_max_retries": 0,
        "broker_transport_options": {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "max_retries": 0,
        },
    }
