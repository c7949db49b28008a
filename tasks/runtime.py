"""What a worker process runs with: its settings (read once, lazily: importing job code reads nothing
from disk), the job catalogue built from them, and the one factory of the workers' own Redis clients."""
from __future__ import annotations

from collections.abc import Callable

from celery import Task
from redis import Redis

from celeryconfig import WORKER_REDIS_CONNECT_TIMEOUT, WORKER_REDIS_TIMEOUT
from jobs.catalogue import Bounds, JobCatalogue, JobType
from jobs.headers import JOB_TYPE_HEADER
from settings import Settings, load_settings_or_exit
from settings.addresses import connect, is_sentinel

_settings: Settings | None = None
_catalogue: JobCatalogue | None = None
Progress = Callable[[int, str], None]


def worker_settings(hint: str = "") -> Settings:
    """The settings this worker process runs with, loaded once (exit 2 on missing or invalid files,
    saying so, and `hint`)."""
    global _settings
    if _settings is None:
        _settings = load_settings_or_exit(hint=hint)
    return _settings


def catalogue() -> JobCatalogue:
    global _catalogue
    if _catalogue is None:
        _catalogue = JobCatalogue(worker_settings().config["jobs"])
    return _catalogue


def job_type(name: str | None, task_name: str) -> JobType | None:
    """The job type named in the message, or (a message from elsewhere) the first type using the task."""
    found = catalogue().get(name or "")
    return found or next(iter(catalogue().for_task(task_name)), None)


def bounds_for(task: Task) -> Bounds:
    """The resource bounds of the job type the running message names (a task may serve several)."""
    job = job_type(task.request.get(JOB_TYPE_HEADER), task.name)
    return job.bounds if job else Bounds()


def content_limit(task_name: str) -> int:
    """Largest decoded upload any job type routed to this task may carry (the gateway checks first)."""
    return max(job.max_content_bytes for job in catalogue().for_task(task_name))


def no_progress(percent: int, stage: str) -> None:
    """The progress callback of a job function called outside a worker (tests, scripts)."""


def redis_client(url: str, timeout: float = WORKER_REDIS_TIMEOUT, decode: bool = False) -> Redis:
    """A Redis client of the workers' own (beside Celery's and kombu's): bounded by `timeout` per reply
    and by the workers' connect timeout, never longer. For a sentinel:// `url` (settings/addresses.py), one
    that follows the master through a failover, named by this worker's settings."""
    sentinel = worker_settings().sentinel if is_sentinel(url) else None
    return connect(url, sentinel, decode_responses=decode, socket_timeout=timeout,
                   socket_connect_timeout=min(timeout, WORKER_REDIS_CONNECT_TIMEOUT))
