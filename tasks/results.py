"""Where an image job's result goes: its content under its own key (jobs/results.py), its small
fields to Celery's meta."""
from __future__ import annotations

from typing import Any

from celery import Task

from jobs import results
from tasks.runtime import worker_settings


def stored_apart(task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """Store an image result's content apart and return the small fields for Celery to keep. Called
    directly (no task id, as in tests) the result is returned whole."""
    if not task.request.id or task.request.called_directly:
        return result
    expires = worker_settings().config["results"]["expires"]
    return results.set_aside(task.backend.client, task.request.id, result, expires)
