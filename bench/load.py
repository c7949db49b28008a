"""Load generators: wrk for every HTTP row (C, keep-alive, HdrHistogram latencies), and a small threaded
Python client only where exact request counts matter more than throughput (the Vault-login count and the
unauthenticated-traffic rows, which also pick their own source address).
"""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bench.stack import StackError, wait_for

LUA = Path(__file__).resolve().parent / "wrk" / "request.lua"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    argv: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Request:
    """What one wrk row sends: method, path, optional JSON body file and Authorization header."""

    url: str
    method: str = "GET"
    body_file: Path | None = None
    auth: str | None = None

    def env(self) -> dict[str, str]:
        return {"BENCH_METHOD": self.method, "BENCH_BODY_FILE": str(self.body_file or ""),
                "BENCH_AUTH": self.auth or ""}


class Wrk:
    def __init__(self, threads: int, connections: int, base_env: dict[str, str]) -> None:
        self.threads, self.connections = threads, connections
        self.base_env = base_env

    def argv(self, request: Request, seconds: float) -> list[str]:
        return ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{int(seconds)}s", "--latency",
                "--timeout", "10s", "-s", str(LUA), request.url]

    def run(self, request: Request, seconds: float) -> WrkResult:
        """A timed run of `seconds`."""
        argv = self.argv(request, seconds)
        done = subprocess.run(argv, env={**self.base_env, **request.env()}, capture_output=True, text=True,
                              timeout=seconds + 60)
        return self._parse(argv, done.returncode, done.stdout, done.stderr)

    def run_until(self, request: Request, until: Callable[[], bool], cap: float) -> WrkResult:
        """Load until `until()` holds (polled; e.g. a server-side count reached N), then SIGINT, which
        makes wrk stop and print its summary. `cap` seconds is the deadline."""
        argv = self.argv(request, cap + 5)
        proc = subprocess.Popen(argv, env={**self.base_env, **request.env()}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: proc.poll() is not None or until(), cap, "counted load finished")
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return self._parse(argv, proc.returncode, out, err)

    @staticmethod
    def _parse(argv: list[str], returncode: int, out: str, err: str) -> WrkResult:
        line = next((l for l in out.splitlines() if l.startswith("BENCH_JSON ")), None)
        if line is None:
            raise StackError(f"wrk failed (exit {returncode}): {err.strip() or out.strip()}")
        data = json.loads(line[len("BENCH_JSON "):])
        seconds = data["duration_us"] / 1e6
        lat, errors = data["latency_us"], data["errors"]
        return WrkResult(
            requests=data["requests"], seconds=round(seconds, 3), rps=round(data["requests"] / seconds, 1),
            p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
            max_ms=lat["max"] / 1000, non_2xx=errors["status"],
            socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            argv=" ".join(argv))


class SourceAddressAdapter(HTTPAdapter):
    """Connections from a chosen local address (any of 127.0.0.0/8 reaches a server on 127.0.0.1), so
    a row can stand for one client machine that the gateway tells apart from the others by its peer
    address."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.source, 0), **kwargs)


def fire(n: int, concurrency: int, call: Callable[[requests.Session, int], requests.Response],
         source: str | None = None) -> dict[str, Any]:
    """Exactly `n` requests from `concurrency` threads (one keep-alive session each, from `source` if
    given); `call` gets the session and the request's index 0..n-1. Returns the status counts."""
    local = threading.local()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            if source:
                session.mount("http://", SourceAddressAdapter(source))
        status = call(session, i).status_code
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return {"requests": n, "seconds": round(time.perf_counter() - started, 3),
            "statuses": dict(sorted(statuses.items()))}
