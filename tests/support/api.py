"""A thin HTTP client for the gateway under test, with polling helpers that use deadlines."""
from __future__ import annotations

import base64
from typing import Any

import requests

from devsupport.processes import wait_until


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def basic_header(user: str, password: str) -> dict[str, str]:
    """An Authorization header for Flask's test client, which has no `auth=` shortcut for requests."""
    return {"Authorization": "Basic " + b64(f"{user}:{password}".encode())}


class Api:
    def __init__(self, base_url: str, auth: Any = None) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.auth = auth

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, **kwargs)

    def submit(self, job_type: str, upload: dict[str, Any], **extra: Any) -> requests.Response:
        return self.request("POST", "/submit", json={"type": job_type, "upload": upload, **extra})

    def submitted(self, job_type: str, upload: dict[str, Any], **extra: Any) -> str:
        response = self.submit(job_type, upload, **extra)
        assert response.status_code == 202, response.text
        return response.json()["uuid"]

    def taskinfo(self, task_id: str) -> requests.Response:
        return self.request("GET", "/taskinfo", params={"taskid": task_id})

    def wait_status(self, task_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        """Poll /taskinfo until the task reaches one of `statuses`; return that TaskInfo body."""
        def reached() -> dict[str, Any] | None:
            body = self.taskinfo(task_id).json()
            return body if body.get("status") in statuses else None
        return wait_until(reached, timeout, f"task {task_id} in {statuses}")
