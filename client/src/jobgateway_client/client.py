"""`Client`: the gateway's HTTP API as blocking Python calls (`AsyncClient` in aio.py is the same for
asyncio and trio). Every call is bounded: each request by `timeout`, its repeats by the retry policy's
deadline, a wait by its own timeout."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from jobgateway_client import _protocol as proto
from jobgateway_client.auth import AuthLike, Credentials, as_auth
from jobgateway_client.errors import GatewayUnavailable, JobFailed, WaitTimeout
from jobgateway_client.models import Health, Result, Submitted, TaskInfo
from jobgateway_client.policy import Attempts, RetryHook, RetryPolicy

UpdateHook = Callable[[TaskInfo], object]
CHUNK = 64 * 1024


class Client:
    """A client of one gateway.

        with Client("http://127.0.0.1:8000", auth=BasicAuth("service", password)) as gateway:
            task = gateway.submit("calc_hash", {"content": content_from_path("photo.png")})
            info = task.wait(timeout=60)
            print(info.result["digests"]["sha256"])

    `auth`: BasicAuth, BearerToken, TokenProvider (or their shorthands: a `(username, password)` tuple,
    a token string, a callable returning a token). `timeout`: seconds for one request. `retry`: how
    long and how 429, 503 and lost connections are repeated (RetryPolicy). `on_retry`: called with a
    RetryEvent before each repeat (for logs or progress). `poll_interval`/`poll_max`: a wait polls
    first after `poll_interval` s, doubling up to `poll_max` s, and back to `poll_interval` whenever
    the task changes. `verify`: TLS verification (True, a CA bundle path, or an ssl.SSLContext).
    Safe to share between threads."""

    def __init__(self, base_url: str, auth: AuthLike = None, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, on_retry: RetryHook | None = None, poll_interval: float = 0.25,
                 poll_max: float = 2.0, verify: Any = True, headers: Mapping[str, str] | None = None) -> None:
        self.base_url = proto.base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.poll_interval, self.poll_max = poll_interval, poll_max
        self._credentials = Credentials(as_auth(auth))
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify, follow_redirects=False,
                                  headers={"User-Agent": proto.USER_AGENT, "Accept": "application/json", **(headers or {})})

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- the API -------------------------------------------------------------------------------------

    def submit(self, job_type: str, upload: Mapping[str, Any], external_id: str | None = None,
               callback_url: str | None = None, idempotency_key: str | None = None,
               delay_seconds: float | None = None, run_at: datetime | str | None = None) -> Task:
        """Submit a job; its handle. Safe to repeat: every attempt of this call carries the same
        idempotency key (`idempotency_key`, else the `external_id`, else one made for this call), so a
        retry after a lost answer, or after a 503 saying the outcome is unknown, returns the same task
        (`Task.new` False) and never queues a second job. Raises BadRequest (with `errors` by field),
        PermissionDenied (the role may not submit `job_type`), Conflict (the key names a task with
        another body; `uuid` names it), PayloadTooLarge, RateLimited, GatewayUnavailable. `delay_seconds` or
        `run_at` (an aware datetime or RFC 3339 text): the job runs once, then; `created` until due."""
        key = proto.submit_key(idempotency_key, external_id)
        body = proto.submit_body(job_type, upload, external_id, callback_url, delay_seconds, run_at)
        response = self._send("POST", "/submit", json=body,
                              headers={proto.IDEMPOTENCY_HEADER: key} if key else None)
        submitted = Submitted.from_json(proto.json_or_error(response), new=response.status_code == 202, idempotency_key=key)
        return Task(self, submitted.uuid, submitted)

    def task(self, task_id: str) -> Task:
        """A handle on a task submitted earlier (no request is made)."""
        return Task(self, task_id)

    def get(self, task_id: str) -> TaskInfo:
        """The task's state now (GET /taskinfo). NotFound for an unknown, malformed or foreign id."""
        return self._get(task_id, None)

    def wait(self, task_id: str, timeout: float = 300.0, *, on_update: UpdateHook | None = None,
             raise_on_error: bool = True) -> TaskInfo:
        """Poll until the task is `done` or `error`, at most `timeout` s (WaitTimeout then, holding the
        last state). `on_update` gets each new state: status changes and the progress a running job
        reports. A task ending `error` raises JobFailed (its code and message) unless `raise_on_error`
        is False, when its TaskInfo is returned."""
        end = time.monotonic() + timeout
        interval, seen, last = self.poll_interval, None, None
        while True:
            last = self._get(task_id, end)
            if (last.status, last.progress) != seen:
                seen, interval = (last.status, last.progress), self.poll_interval
                if on_update is not None:
                    on_update(last)
            if last.finished:
                if last.failed and raise_on_error:
                    raise JobFailed(last)
                return last
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(task_id, timeout, last)
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, self.poll_max)

    def result(self, task_id: str, out: str | os.PathLike[str] | None = None) -> Result:
        """The done task's whole output (GET /tasks/<uuid>/result), streamed: with `out`, written to
        that file (through a `.part` file renamed at the end, so a cut-off download never leaves a
        truncated file) and not kept in memory; without, in `Result.content`. A download cut off is
        repeated within the retry deadline. Conflict if the task is not done."""
        attempts = Attempts(self.retry, self.on_retry)
        while True:
            response = self._send("GET", proto.task_path(task_id, "/result"), stream=True)
            try:
                return self._read_result(task_id, response, Path(out) if out is not None else None)
            except (httpx.TransportError, GatewayUnavailable) as exc:
                error = exc if isinstance(exc, GatewayUnavailable) else proto.connection_error(exc)
                try:
                    wait = attempts.delay(error)
                except GatewayUnavailable as final:
                    raise final from exc
                time.sleep(wait)
            finally:
                response.close()

    def tasks(self, *, status: str | None = None, job_type: str | None = None, external_id: str | None = None,
              created_after: datetime | str | None = None, client_id: str | None = None,
              page_size: int = 100) -> Iterator[TaskInfo]:
        """Every task of the caller (admin: of `client_id`) matching the filters, newest first, page
        after page through `next_cursor` (`page_size` 1-200 rows a request). Rows carry no `result`.
        Pages are fetched as the iteration reaches them."""
        params = proto.list_params(status, job_type, external_id, created_after, client_id, page_size)
        cursor: str | None = None
        while True:
            response = self._send("GET", "/tasks", params=params | ({"cursor": cursor} if cursor else {}))
            rows, cursor = proto.page(response)
            yield from rows
            if cursor is None:
                return

    def cancel(self, task_id: str) -> TaskInfo:
        """Cancel (DELETE /tasks/<uuid>): the task's state after, `error` with code 4. Repeating it is
        harmless; Conflict if the task already finished."""
        return TaskInfo.from_json(proto.json_or_error(self._send("DELETE", proto.task_path(task_id))))

    def health(self) -> Health:
        """GET /health, once (no retries: it reports the state now). GatewayUnavailable if nothing answers."""
        try:
            response = self._http.get("/health")
        except httpx.TransportError as exc:
            raise proto.connection_error(exc) from exc
        return proto.health(response)

    # --- one request, repeated as the policy says --------------------------------------------------

    def _get(self, task_id: str, until: float | None) -> TaskInfo:
        response = self._send("GET", "/taskinfo", params={"taskid": task_id}, until=until)
        return TaskInfo.from_json(proto.json_or_error(response))

    def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None,
              headers: Mapping[str, str] | None = None, stream: bool = False, until: float | None = None) -> httpx.Response:
        """The first answer below 400, after repeating 429/503/no answer within the deadline and one
        re-login on 401 with a token provider; else the typed error."""
        attempts, relogged = Attempts(self.retry, self.on_retry, until), False
        while True:
            authorization, generation = self._credentials.current()
            request = self._http.build_request(method, path, params=params, json=json,
                                               headers=proto.request_headers(headers, authorization))
            try:
                response = self._http.send(request, stream=stream)
                if response.status_code >= 400:
                    response.read()  # an error's envelope, even on a streamed request
            except httpx.TransportError as exc:
                try:
                    wait = attempts.delay(proto.connection_error(exc))
                except GatewayUnavailable as final:
                    raise final from exc
                time.sleep(wait)
                continue
            if response.status_code < 400:
                return response
            response.close()
            error = proto.error_from(response)
            if response.status_code == 401 and not relogged and self._credentials.refresh(generation):
                relogged = True
                attempts.relogin(error)
                continue
            time.sleep(attempts.delay(error))

    def _read_result(self, task_id: str, response: httpx.Response, out: Path | None) -> Result:
        media_type = response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        if out is None:
            content = response.read()
            proto.check_length(response, len(content))
            return Result(task_id, media_type, len(content), content=content)
        part = out.with_name(out.name + ".part")
        size = 0
        try:
            with open(part, "wb") as file:
                for chunk in response.iter_bytes(CHUNK):
                    file.write(chunk)
                    size += len(chunk)
            proto.check_length(response, size)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
        return Result(task_id, media_type, size, path=out)


ClientT = TypeVar("ClientT")


class TaskHandle(Generic[ClientT]):
    """What a task handle is for either client (`Task`, `aio.AsyncTask`): its uuid, the client that made
    it, and `submitted`, the gateway's answer to the submit (None for a handle from `task()`)."""

    def __init__(self, client: ClientT, task_id: str, submitted: Submitted | None = None) -> None:
        self.client = client
        self.uuid = task_id
        self.submitted = submitted

    @property
    def new(self) -> bool:
        """False when the submit found the task its idempotency key already named (nothing new queued)."""
        return self.submitted.new if self.submitted else False

    @property
    def idempotency_key(self) -> str | None:
        return self.submitted.idempotency_key if self.submitted else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uuid!r})"


class Task(TaskHandle["Client"]):
    """A handle on one task: its uuid, and the calls that take it, bound to the client that made it."""

    def get(self) -> TaskInfo:
        return self.client.get(self.uuid)

    def wait(self, timeout: float = 300.0, *, on_update: UpdateHook | None = None, raise_on_error: bool = True) -> TaskInfo:
        return self.client.wait(self.uuid, timeout, on_update=on_update, raise_on_error=raise_on_error)

    def result(self, out: str | os.PathLike[str] | None = None) -> Result:
        return self.client.result(self.uuid, out)

    def cancel(self) -> TaskInfo:
        return self.client.cancel(self.uuid)
