"""The workers: `celery -A tasks worker -Q <queues>` finds the Celery app here (tasks/app.py). The jobs
are plain functions behind thin tasks (hashing.py, images.py, webhooks.py); the task plumbing is in
base.py, outcomes.py and retries.py; how a worker takes, holds and gives back messages is the delivery
package (tasks/delivery/). Each module is on the one module map, docs/architecture.md."""
from tasks.app import app

__all__ = ["app"]
