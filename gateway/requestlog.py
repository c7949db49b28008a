"""A request id for every request and exactly one log line when it ends (SPEC §6).

The line has method, path (no query string: it may carry ids of other people's tasks), status,
duration, the peer address and, for authenticated routes, the auth decision (outcome, reason class,
client id and role), which makes it the audit line too. The request id comes from X-Request-ID when it
is sane, and is echoed back. Every value that came from the request (method, path, client id, role)
is escaped, so no request can write a line of its own into a text log (SPEC §8).
"""
from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, g, request
from loguru import logger

from gateway import requestinfo

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\u2028\u2029]")
MAX_LOGGED = 512


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_release)


def printable(value: str | None) -> str:
    """A request-derived value made safe for a one-line text log: control characters, backslashes and
    line separators escaped (\\n, \\x1b, ...), long values cut."""
    if value is None:
        return "-"
    text = UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value[:MAX_LOGGED])
    return text + ("…" if len(value) > MAX_LOGGED else "")


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
    values = [printable(request.method), printable(request.path), response.status_code, elapsed_ms,
              request.remote_addr or "-"]
    decision = info.auth if info else None
    if decision is None:
        logger.info(line, *values)
    else:
        logger.bind(client_id=printable(decision.client_id)).info(
            line + " auth={} reason={} role={}", *values, decision.outcome, decision.reason, printable(decision.role))
    response.headers["X-Request-ID"] = info.request_id if info else ""
    return response


def _release(_exc: BaseException | None) -> None:
    context = g.pop("log_context", None)
    if context is not None:
        context.__exit__(None, None, None)
