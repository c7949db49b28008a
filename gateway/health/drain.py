"""Drain mode: a gateway being replaced stops looking ready at once, keeps serving reads and the requests
it has, and after `ops.drain_grace` seconds refuses new submits with 503 + Retry-After, so clients take
them to another replica instead of failing.

"A gateway" is one gunicorn master and its workers. Its drain state is one small file named after the
master's pid (gunicorn.conf.py hands the path to each worker with `share`), so a drain started by the
master on SIGTERM, or by any worker on POST /ops/drain, is seen by every worker on its next request. An
app not run by that gunicorn.conf.py (the Flask test client, another server) keeps the state in memory,
for its own process only. There is no undrain: a drained gateway is on its way out; restart it.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from gateway.http.contract import contract_of
from gateway.http.errors import ServiceUnavailable

KEY = "gateway.drain"
RETRY_AFTER = 2  # seconds: enough for a load balancer to have another replica ready for the retry


@dataclass(frozen=True)
class DrainState:
    since: float  # epoch seconds: /readyz answers 503 from here on
    refuse_submits_at: float  # epoch seconds: submits answer 503 from here on


class Drain:
    """The drain state of one gateway: in a file shared by its workers, or in memory until `share`."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._path: Path | None = None
        self._state: DrainState | None = None
        self._lock = threading.Lock()

    def share(self, path: Path) -> None:
        """Keep the state in `path` from now on (gunicorn.conf.py, once per worker, before any request)."""
        self._path = path

    def state(self) -> DrainState | None:
        """The drain in progress, or None; read from the shared file on every call (a stat when none)."""
        if self._path is None:
            return self._state
        try:
            found = json.loads(self._path.read_text())
        except FileNotFoundError:
            return None
        return DrainState(float(found["since"]), float(found["refuse_submits_at"]))

    def start(self, now: float | None = None) -> DrainState:
        """Begin draining (a drain already begun keeps its times: starting twice changes nothing)."""
        with self._lock:
            current = self.state()
            if current is not None:
                return current
            moment = time.time() if now is None else now
            state = DrainState(moment, moment + self.grace)
            if self._path is None:
                self._state = state
            else:
                write_state(self._path, state)
            return state

    def refusing_submits(self) -> bool:
        state = self.state()
        return state is not None and time.time() >= state.refuse_submits_at


def write_state(path: Path, state: DrainState) -> None:
    """Atomically (write, then rename), so a worker never reads half a file; the first writer wins."""
    if path.exists():
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(json.dumps({"since": state.since, "refuse_submits_at": state.refuse_submits_at}))
    os.replace(partial, path)


def init_app(app: Flask, grace: float) -> None:
    app.extensions[KEY] = Drain(grace)


def drain_of(app: Flask) -> Drain:
    return app.extensions[KEY]


def refused_while_draining(view: Callable) -> Callable:
    """A route that takes new work: 503 + Retry-After once the drain's grace has passed, before any
    credential check or body parsing (the client retries elsewhere; nothing here was done)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if drain_of(current_app).refusing_submits():
            raise ServiceUnavailable("Draining: this gateway takes no new submits; retry",
                                     headers={"Retry-After": str(RETRY_AFTER)})
        return view(*args, **kwargs)
    contract_of(wrapper).errors.add(503)
    return wrapper
