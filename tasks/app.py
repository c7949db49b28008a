"""The Celery app of the workers (`celery -A tasks worker -Q hash,images`).

Configuration is read lazily from config.json/.secrets.json when the worker starts, never at
import time, so tests can import the job code without any settings on disk.
"""
from __future__ import annotations

import os
import resource
import sys
from typing import Any

from celery import Celery, signals

import celeryconfig
from settings.logs import setup_logging
from tasks import jobtraces
from tasks.base import JobTask
from tasks.delivery.bootstep import Delivery
from tasks.delivery.transport import Transport
from tasks.runtime import worker_settings

app = Celery("tasks", task_cls=JobTask,
             include=["tasks.outcomes", "tasks.hashing", "tasks.images", "tasks.webhooks"])
app.add_defaults(lambda: _worker_config(sys.argv))
# Taking jobs without loss, leases on running jobs, and the watchdog that makes a wedged worker exit.
app.steps["consumer"].add(Delivery)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Connecting here stops Celery from configuring logging itself; ours routes it into loguru."""
    setup_logging(worker_settings(), process="worker")


@signals.worker_init.connect
def _limit_images(**_: Any) -> None:
    """Set once in the main worker process, before the pool forks, so every child inherits it."""
    from tasks import imaging

    imaging.set_pixel_limit(worker_settings().config["workers"]["max_image_pixels"])


@signals.worker_init.connect
def _start_tracing(**_: Any) -> None:
    """Before the pool forks: every pool process inherits it (tasks/jobtraces.py)."""
    jobtraces.start(worker_settings())


@signals.worker_process_init.connect
def _limit_address_space(**_: Any) -> None:
    """In each pool process as it starts: an allocation past `workers.max_address_space_mib` raises
    MemoryError inside the job (an error, code 2) instead of taking the host's memory, and with it
    the whole worker, the way an unbounded one would. Together with `max_memory_per_child_mib`
    (celeryconfig.py), which replaces a process left large, a job that blows up ends once, as an
    error, and the worker keeps serving."""
    mib = worker_settings().config["workers"]["max_address_space_mib"]
    if mib:
        limit_address_space(mib * 1024 * 1024)


def limit_address_space(limit: int) -> None:
    """RLIMIT_AS of this process, soft and hard: the job it runs cannot raise it again."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


FLOWER_HINT = ("Flower needs only the broker: celery -A tasks --broker=redis://HOST:PORT/DB flower --port=5555 "
               "(--broker before `flower`).")
# Celery's own options before the command that take a value (celery --help).
_CELERY_OPTIONS_WITH_VALUE = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}
# Commands that only watch or steer the workers over the broker (events, remote control): given a broker URL
# they need nothing of the gateway's settings.
MONITORS = frozenset({"flower", "inspect", "control", "status", "events"})


def _worker_config(argv: list[str]) -> dict[str, Any]:
    """celeryconfig for this worker, with the per-queue settings of the queue it was started for.
    Celery resolves --concurrency against this config while parsing the command line, so the queue
    comes from the same command line (-Q/--queues); an explicit --concurrency still wins.

    Flower only watches, and `inspect`/`control` only talk to the workers: given a broker URL (`celery -A
    tasks --broker=redis://… flower`, which Celery passes on as CELERY_BROKER_URL) they need nothing else,
    and the gateway's settings are not read."""
    command = cli_command(argv)
    if command in MONITORS and os.environ.get("CELERY_BROKER_URL"):
        return celeryconfig.monitor()
    settings = worker_settings(hint=FLOWER_HINT if command == "flower" else "")
    config = celeryconfig.build(settings, role="worker", transport=Transport)
    return config | queue_overrides(settings.config["workers"], cli_queues(argv))


def cli_command(argv: list[str]) -> str | None:
    """The Celery command (`worker`, `flower`, ...) of a `celery [options] <command> ...` line."""
    args = iter(argv[1:])
    for arg in args:
        if arg in _CELERY_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def cli_queues(argv: list[str]) -> list[str]:
    """The queues named by -Q/--queues on a `celery worker` command line ([] if none)."""
    for i, arg in enumerate(argv):
        if arg in ("-Q", "--queues") and i + 1 < len(argv):
            return [q for q in argv[i + 1].split(",") if q]
        for prefix in ("-Q", "--queues="):
            if arg.startswith(prefix) and len(arg) > len(prefix):
                return [q for q in arg[len(prefix):].split(",") if q]
    return []


def queue_overrides(workers: dict[str, Any], queues: list[str]) -> dict[str, Any]:
    """Celery settings for a worker consuming `queues`: `workers.queues.<q>` applies when the worker
    consumes that one queue only (a worker per queue is the deployment this is made for)."""
    names = {"concurrency": "worker_concurrency", "prefetch_multiplier": "worker_prefetch_multiplier"}
    if len(queues) != 1:
        return {}
    own = (workers.get("queues") or {}).get(queues[0], {})
    return {names[key]: value for key, value in own.items() if key in names}
