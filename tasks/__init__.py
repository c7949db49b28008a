"""The workers: `celery -A tasks worker -Q <queues>` finds the Celery app here (tasks/app.py).

tasks/app.py      the Celery app, its configuration and the per-queue worker settings
tasks/base.py     the base class of every job task (log context, the start check, progress)
tasks/delivery/startcheck.py    the check before a job starts: cancelled, expired, finished, deliveries counted
tasks/delivery/leases.py   leases on running jobs (a lost job runs again promptly) and the worker's watchdog
tasks/delivery/transport.py kombu's Redis transport, safe to lose its connection
tasks/delivery/heartbeat.py    the worker healthcheck (`python -m tasks.delivery.heartbeat <node>`)
tasks/retries.py  transient failures: backoff, then the dead-letter list
tasks/outcomes.py outcome counts and completion webhooks, from the worker's signals
tasks/runtime.py  the worker's settings and job catalogue
tasks/imaging.py  opening uploaded images within bounds
tasks/bounds.py   the job types' resource bounds, enforced before the work they bound
tasks/results.py  an image result's content stored apart from Celery's meta
tasks/hashing.py, tasks/images.py, tasks/webhooks.py   the jobs: plain functions behind thin tasks
"""
from tasks.app import app

__all__ = ["app"]
