"""What the gateway learns about one request while serving it, in one declared place: its id and
start, the auth decision (the audit fields of its log line) and, for a submit, the job type once it is
known to be allowed. Written by auth and the submit route, read by the request log and the metrics.
Kept on `flask.g` as this one object, created when the request starts."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g


@dataclass(frozen=True)
class AuthDecision:
    outcome: str  # allowed, denied, error
    reason: str  # a class from a fixed set, never free text
    client_id: str | None = None
    role: str | None = None


@dataclass
class RequestInfo:
    request_id: str
    started: float
    auth: AuthDecision | None = None
    job_type: str | None = None  # a submit's job type, set once the caller may submit it
    submit_outcome: str | None = None  # a submit's outcome where the status alone does not tell it (gateway/health/metrics.py)


def current() -> RequestInfo | None:
    return g.get("request_info")


def required() -> RequestInfo:
    """The request's info where it must exist: in a view or its decorators, after the request began."""
    info = current()
    if info is None:
        raise RuntimeError("no RequestInfo: the request was not begun (gateway/http/requestlog.py)")
    return info


def begin(request_id: str, started: float) -> RequestInfo:
    g.request_info = RequestInfo(request_id, started)
    return g.request_info
