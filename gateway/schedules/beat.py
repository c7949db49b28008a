"""The scheduler's Celery app: `celery -A gateway.schedules.beat beat` (run-local.sh, docker-compose.yml's
`scheduler`, the tests: the same command).

Celery beat with RedBeat's scheduler (gateway/schedules/scheduler.py): the schedules live in the task
store's Redis under gw:beat: (jobs/keys.py), and a beat runs them only while it holds RedBeat's lock
there. A second beat started beside it waits for that lock (it asks every `scheduler.max_interval`
seconds) and takes over within `scheduler.lock_timeout` seconds of the first one's death: as many may run
as a deployment likes, one fires. It is a gateway process, not a worker: it publishes as the gateway
does, with the gateway's publisher configuration (celeryconfig.py `gateway`), its own Redis clients
(gateway/health/clients.py) and the gateway's Dispatcher.

Settings are read when Celery first reads the app's configuration, never at import time: invalid
settings, or a schedule whose callback the gateway would refuse, end the process with exit status 2
and every problem listed, before any lock is taken.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals

import celeryconfig
from gateway.health.clients import client_factory
from gateway.schedules.firing import Firing
from gateway.schedules.plan import Planned, plan
from gateway.submission import callbacks, capture
from gateway.submission.publishing import Dispatcher
from jobs.catalogue import JobCatalogue
from jobs.keys import BEAT_PREFIX
from jobs.store import TaskStore
from settings import Settings, load_settings_or_exit, tracing
from settings.addresses import is_sentinel, parse_sentinel_url
from settings.logs import setup_logging

REDIS_TIMEOUT = 5.0  # RedBeat's own client: each command, and each question to a sentinel


@dataclass(frozen=True)
class Runtime:
    plan: dict[str, Planned]
    firing: Firing


app = Celery("scheduler", set_as_current=False)
_runtime: Runtime | None = None
_settings: Settings | None = None


def scheduler_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings_or_exit()
        problems = schedule_problems(_settings)
        if problems:
            print("invalid configuration, refusing to start:", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            raise SystemExit(2)
    return _settings


def schedule_problems(settings: Settings) -> list[str]:
    """What the settings' own checks cannot see: a callback URL the gateway would refuse this owner
    (allowed hosts, a webhook secret), content over the type's limit."""
    catalogue = JobCatalogue(settings.config["jobs"])
    problems = []
    for name, conf in settings.config["schedules"].items():
        callback = conf.get("callback_url")
        problem = callbacks.callback_problem(callback, settings, conf["owner"]) if callback else None
        if problem:
            problems.append(f"config.schedules.{name}.callback_url: {problem}")
        if catalogue[conf["type"]].content_too_large(conf["upload"]):
            problems.append(f"config.schedules.{name}.upload.content: exceeds the type's max_content_bytes")
    return problems


def redbeat_options(settings: Settings) -> dict[str, Any]:
    """RedBeat's Redis: the task store's (`queue.result_url`, else `queue.url`). For a sentinel:// address,
    RedBeat's own Sentinel form: a `redis-sentinel://` URL and the sentinels, master name, database and
    credentials in its options, with bounded timeouts for the sentinels too."""
    url = settings.result_url
    if not is_sentinel(url):
        return {"redbeat_redis_url": url, "redbeat_redis_options": {
            "socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}}
    address, sentinel = parse_sentinel_url(url), settings.sentinel
    assert sentinel is not None  # the settings refuse a sentinel:// address without the master's name
    options: dict[str, Any] = {
        "sentinels": list(address.sentinels), "service_name": sentinel.master_name, "db": address.db,
        "socket_timeout": REDIS_TIMEOUT, "sentinel_kwargs": sentinel.sentinel_kwargs(REDIS_TIMEOUT)}
    if address.password:
        options["password"] = address.password
        if address.username:
            options["username"] = address.username
    return {"redbeat_redis_url": "redis-sentinel://", "redbeat_redis_options": options}


def beat_config(settings: Settings) -> dict[str, Any]:
    scheduler = settings.config["scheduler"]
    catalogue = JobCatalogue(settings.config["jobs"])
    return {
        **celeryconfig.build(settings, role="gateway", transport=capture.Transport),
        "beat_scheduler": "gateway.schedules.scheduler:Scheduler",
        "beat_max_loop_interval": scheduler["max_interval"],
        "redbeat_key_prefix": BEAT_PREFIX,
        "redbeat_lock_timeout": scheduler["lock_timeout"],
        **redbeat_options(settings),
        # What RedBeat stores of each schedule: its name, the job's task and when. The upload and owner
        # stay in the configuration, read when a tick fires (gateway/schedules/scheduler.py).
        "beat_schedule": {name: {"task": catalogue[planned.type].task, "schedule": planned.timing}
                          for name, planned in runtime().plan.items()},
    }


def runtime() -> Runtime:
    """The scheduler's settings, schedules and Dispatcher, built once."""
    global _runtime
    if _runtime is None:
        settings = scheduler_settings()
        tracing.setup(settings, "scheduler")  # nothing when tracing is off
        redis_client = client_factory(settings.sentinel)
        store = TaskStore(redis_client(settings.result_url), ttl=settings.config["results"]["expires"])
        broker = redis_client(settings.broker_url, settings.config["queue"]["publish_timeout"])
        dispatcher = Dispatcher.from_settings(app, store, broker, settings)
        _runtime = Runtime(plan(settings.config["schedules"], app),
                           Firing(dispatcher, JobCatalogue(settings.config["jobs"]), settings.config["limits"]))
    return _runtime


app.add_defaults(lambda: beat_config(scheduler_settings()))


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Connecting here stops Celery from configuring logging itself; ours routes it into loguru."""
    setup_logging(scheduler_settings(), process="scheduler")
