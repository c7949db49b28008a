"""A request id for every request and exactly one log line when it ends (SPEC §6).

The line has method, path (no query string: it may carry ids of other people's tasks), status,
duration, the peer address and, for authenticated routes, the auth decision (outcome, reason class,
client id and role), which makes it the audit line too. The request id comes from X-Request-ID when it
is sane, and is echoed back.
"""
from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request
from loguru import logger

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_release)


def _start() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()
    g.log_context = logger.contextualize(request_id=g.request_id)
    g.log_context.__enter__()


def _finish(response: Response) -> Response:
    """The request's one line; with the auth decision when there was one (the audit trail, SPEC §4)."""
    elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    decision = g.get("auth_decision")
    if decision is None:
        logger.info("{} {} {} {:.1f}ms from {}", request.method, request.path, response.status_code, elapsed_ms,
                    request.remote_addr or "-")
    else:
        outcome, reason, client_id, role = decision
        logger.bind(client_id=client_id).info(
            "{} {} {} {:.1f}ms from {} auth={} reason={} role={}", request.method, request.path,
            response.status_code, elapsed_ms, request.remote_addr or "-", outcome, reason, role or "-")
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


def _release(_exc: BaseException | None) -> None:
    context = g.pop("log_context", None)
    if context is not None:
        context.__exit__(None, None, None)
