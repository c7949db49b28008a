"""The load a scenario runs while its fault strikes: clients that behave as docs/api.md tells them to.

Each client thread submits at a steady pace, every submit with its own `Idempotency-Key`, and repeats a
submit that got no `2xx` (a `503`, a `429`, no answer) with the same key until it is acknowledged;
between submits it reads the state of jobs already acknowledged. Every answer is kept (route, status,
time at the client), so the report can say how slow the worst `503` was. Half the probes and half
hashing jobs (calc_hash, or the Node workers' calc_hash_http in a stack with HTTP workers), so both the
suite's job and a shipped one run; a share of submits may carry a JWT no
gateway process has seen, so that they need a Vault login; and a share may be delayed probes
(`delay_seconds` of DELAYS), whose start the checker holds against their `scheduled_for`.
"""
from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from faults.stack import Stack

CLIENT_TIMEOUT = 10.0  # seconds a client waits for any answer
RETRY_PAUSE = 0.25  # seconds between repeats of an unacknowledged submit
NO_ANSWER = 0  # status recorded when no HTTP answer came (refused, reset, timed out)
DELAYS = (1.0, 8.0)  # seconds: the range a delayed probe's delay_seconds is drawn from


@dataclass
class Submission:
    key: str
    job_type: str
    upload: dict[str, Any]
    jwt: bool
    uuid: str | None = None  # from the 202 (or the 200 of a repeat)
    seen: set[str] = field(default_factory=set)  # every uuid a 2xx answer named for this key
    unknown: set[str] = field(default_factory=set)  # uuids of "outcome unknown" 503s (the task may exist)
    attempts: int = 0
    refused: str | None = None  # a 4xx other than 429: the submit was wrong, not the stack
    delay: float | None = None  # delay_seconds, for a delayed probe

    def expected(self) -> dict[str, Any]:
        if self.job_type == "probe":
            return {"tag": self.upload["tag"]}
        return {"sha256": hashlib.sha256(base64.b64decode(self.upload["content"])).hexdigest()}


@dataclass(frozen=True)
class Answer:
    route: str
    status: int
    seconds: float
    message: str = ""
    at: float = 0.0  # time.monotonic() when the request was sent
    task: str = ""  # the uuid a taskinfo read asked for


class Load:
    def __init__(self, stack: Stack, clients: int = 16, rate: float = 8.0, jwt_share: float = 0.0,
                 reads_per_submit: int = 2, seed: int | None = None, delay_share: float = 0.0) -> None:
        self.stack = stack
        self.delay_share = delay_share
        self.clients = clients
        self.interval = clients / rate  # seconds between one client's submits
        self.jwt_share = jwt_share
        self.reads_per_submit = reads_per_submit
        self.random = random.Random(seed)
        self.submissions: list[Submission] = []
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- running -----------------------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), name=f"client-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 5)

    def settle(self, deadline: float) -> None:
        """After the load: repeat every unacknowledged submit with its key until it is acknowledged or the
        deadline passes (what a client does once the outage is over)."""
        with requests.Session() as session:
            for sub in self.unacknowledged():
                while sub.uuid is None and sub.refused is None and time.monotonic() < deadline:
                    self._submit(session, sub)
                    if sub.uuid is None:
                        time.sleep(RETRY_PAUSE)

    def submit_to(self, base: str, deadline: float) -> Submission:
        """One more submit of the load, sent to `base` (one gateway instance, not the stack's address) and
        repeated with its key until acknowledged or `deadline` (monotonic) passes. The checker judges it
        with the others."""
        sub = self._new_submission(random.Random(self.random.random()))
        with requests.Session() as session:
            while sub.uuid is None and sub.refused is None and time.monotonic() < deadline:
                self._submit(session, sub, base)
                if sub.uuid is None:
                    time.sleep(RETRY_PAUSE)
        return sub

    def unacknowledged(self) -> list[Submission]:
        with self._lock:
            return [sub for sub in self.submissions if sub.uuid is None and sub.refused is None]

    def acknowledged(self) -> list[Submission]:
        with self._lock:
            return [sub for sub in self.submissions if sub.uuid is not None]

    # --- one client ----------------------------------------------------------------------------------------

    def _client(self, index: int) -> None:
        rng = random.Random(self.random.random())
        session = requests.Session()
        next_submit = time.monotonic() + rng.uniform(0, self.interval)
        current: Submission | None = None
        while not self._stop.is_set():
            if current is not None and current.uuid is None and current.refused is None:
                self._submit(session, current)
                if current.uuid is None:
                    self._stop.wait(RETRY_PAUSE)
                continue
            now = time.monotonic()
            if now >= next_submit:
                current = self._new_submission(rng)
                next_submit = now + self.interval
                self._submit(session, current)
                continue
            for _ in range(self.reads_per_submit):
                self._read(session, rng)
            self._stop.wait(max(0.0, min(next_submit - time.monotonic(), self.interval / (self.reads_per_submit + 1))))
        session.close()

    def _new_submission(self, rng: random.Random) -> Submission:
        key = str(uuid.uuid4())
        if rng.random() < self.delay_share:
            sub = Submission(key, "probe", {"tag": key[:8], "work_ms": rng.randint(20, 300)}, rng.random() < self.jwt_share,
                             delay=round(rng.uniform(*DELAYS), 1))
        elif rng.random() < 0.5:
            sub = Submission(key, "probe", {"tag": key[:8], "work_ms": rng.randint(20, 300)}, rng.random() < self.jwt_share)
        else:
            content = base64.b64encode(rng.randbytes(rng.randint(1, 4096))).decode()
            sub = Submission(key, self.stack.hash_type, {"content": content}, rng.random() < self.jwt_share)
        with self._lock:
            self.submissions.append(sub)
        return sub

    def _auth(self, sub: Submission | None) -> dict[str, Any]:
        if sub is not None and sub.jwt:
            return {"headers": {"Authorization": f"Bearer {self.stack.fresh_jwt()}"}}
        return {"auth": self.stack.admin()}

    def _submit(self, session: requests.Session, sub: Submission, base: str | None = None) -> None:
        sub.attempts += 1
        kwargs = self._auth(sub)
        kwargs.setdefault("headers", {})["Idempotency-Key"] = sub.key
        delay = {"delay_seconds": sub.delay} if sub.delay is not None else {}
        status, body = self._call(session, "submit", "POST", "/submit", base=base,
                                  json={"type": sub.job_type, "upload": sub.upload, **delay}, **kwargs)
        named = body.get("uuid") if isinstance(body, dict) else None
        if status in (200, 202):
            sub.uuid = named
            sub.seen.add(named)
        elif status == 503 and named:
            sub.unknown.add(named)
        elif status not in (NO_ANSWER, 429, 503):
            sub.refused = f"{status} {body}"

    def _read(self, session: requests.Session, rng: random.Random) -> None:
        with self._lock:
            if not self.submissions:
                return
            sub = rng.choice(self.submissions)
        if sub.uuid is not None:
            self._call(session, "taskinfo", "GET", "/taskinfo", params={"taskid": sub.uuid}, auth=self.stack.admin(),
                       task=sub.uuid)

    def _call(self, session: requests.Session, route: str, method: str, path: str, task: str = "",
              base: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        started = time.monotonic()
        try:
            response = session.request(method, (base or self.stack.url) + path, timeout=CLIENT_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            self._keep(Answer(route, NO_ANSWER, time.monotonic() - started, exc.__class__.__name__, started, task))
            return NO_ANSWER, None
        seconds = time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message", "") if isinstance(body, dict) and response.status_code >= 400 else ""
        self._keep(Answer(route, response.status_code, seconds, message, started, task))
        return response.status_code, body

    def _keep(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)
