"""A request id for every request and exactly one log line when it ends (SPEC §6).

The line has method, path (no query string: it may carry ids of other people's tasks), status,
duration, the peer address and, for authenticated routes, the auth decision (outcome, reason class,
client id and role), which makes it the audit line too. The request id comes from X-Request-ID when it
is sane, and is echoed back. Values that came from the request (method, path, client id, role) are
cut to a bounded length here; the text sink escapes them with the rest of the line
(settings/logs.py), so no request can write a line of its own into a text log (SPEC §8).
"""
from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request
from loguru import logger

from gateway.http import requestinfo

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_LOGGED = 512


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_release)


def clipped(value: str | None) -> str:
    """A request-derived value cut to a bounded length ("-" when absent)."""
    if value is None:
        return "-"
    return value[:MAX_LOGGED] + ("…" if len(value) > MAX_LOGGED else "")


def _start() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    info = requestinfo.begin(incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex, time.perf_counter())
    g.log_context = logger.contextualize(request_id=info.request_id)
    g.log_context.__enter__()


def _finish(response: Response) -> Response:
    """The request's one line; with the auth decision when there was one (the audit trail, SPEC §4)."""
    info = requestinfo.current()
    started = info.started if info else time.perf_counter()
    elapsed_ms = (time.perf_counter() - started) * 1000
    line = "{} {} {} {:.1f}ms from {}"
    values = [clipped(request.method), clipped(request.path), response.status_code, elapsed_ms,
              request.remote_addr or "-"]
    decision = info.auth if info else None
    if decision is None:
        logger.info(line, *values)
    else:
        logger.bind(client_id=clipped(decision.client_id)).info(
            line + " auth={} reason={} role={}", *values, decision.outcome, decision.reason, clipped(decision.role))
    response.headers["X-Request-ID"] = info.request_id if info else ""
    return response


def _release(_exc: BaseException | None) -> None:
    context = g.pop("log_context", None)
    if context is not None:
        context.__exit__(None, None, None)
