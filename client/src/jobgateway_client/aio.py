"""`AsyncClient`: the same calls as `Client` (client.py) for asyncio and trio (through anyio, as httpx
does). Same bounds, same retries, same errors; only the waiting is awaited. The request building and
answer reading both share live in _protocol.py."""
from __future__ import annotations

import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx

from jobgateway_client import _protocol as proto
from jobgateway_client.auth import AsyncCredentials, AuthLike, as_auth
from jobgateway_client.client import CHUNK, TaskHandle
from jobgateway_client.errors import GatewayUnavailable, JobFailed, WaitTimeout
from jobgateway_client.models import Health, Result, Submitted, TaskInfo
from jobgateway_client.policy import Attempts, RetryHook, RetryPolicy

UpdateHook = Callable[[TaskInfo], object]  # may return an awaitable: it is awaited


class AsyncClient:
    """A client of one gateway, for async code:

        async with AsyncClient("http://127.0.0.1:8000", auth=TokenProvider(fetch_token)) as gateway:
            task = await gateway.submit("calc_hash", {"content": content_from_path("photo.png")})
            info = await task.wait(timeout=60)

    Arguments as `Client`'s. A TokenProvider's callable may be `async def`; a plain one runs in a
    worker thread. `on_retry` and `on_update` may be plain or async callables."""

    def __init__(self, base_url: str, auth: AuthLike = None, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, on_retry: RetryHook | None = None, poll_interval: float = 0.25,
                 poll_max: float = 2.0, verify: Any = True, headers: Mapping[str, str] | None = None) -> None:
        self.base_url = proto.base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.poll_interval, self.poll_max = poll_interval, poll_max
        self._credentials = AsyncCredentials(as_auth(auth))
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, verify=verify, follow_redirects=False,
                                       headers={"User-Agent": proto.USER_AGENT, "Accept": "application/json",
                                                **(headers or {})})

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the API -------------------------------------------------------------------------------------

    async def submit(self, job_type: str, upload: Mapping[str, Any], external_id: str | None = None,
                     callback_url: str | None = None, idempotency_key: str | None = None,
                     delay_seconds: float | None = None, run_at: datetime | str | None = None) -> AsyncTask:
        """As `Client.submit`: one idempotency key for every attempt, so repeating is safe."""
        key = proto.submit_key(idempotency_key, external_id)
        body = proto.submit_body(job_type, upload, external_id, callback_url, delay_seconds, run_at)
        response = await self._send("POST", "/submit", json=body,
                                    headers={proto.IDEMPOTENCY_HEADER: key} if key else None)
        submitted = Submitted.from_json(proto.json_or_error(response), new=response.status_code == 202, idempotency_key=key)
        return AsyncTask(self, submitted.uuid, submitted)

    def task(self, task_id: str) -> AsyncTask:
        return AsyncTask(self, task_id)

    async def get(self, task_id: str) -> TaskInfo:
        return await self._get(task_id, None)

    async def wait(self, task_id: str, timeout: float = 300.0, *, on_update: UpdateHook | None = None,
                   raise_on_error: bool = True) -> TaskInfo:
        """As `Client.wait`."""
        end = time.monotonic() + timeout
        interval, seen, last = self.poll_interval, None, None
        while True:
            last = await self._get(task_id, end)
            if (last.status, last.progress) != seen:
                seen, interval = (last.status, last.progress), self.poll_interval
                if on_update is not None and inspect.isawaitable(told := on_update(last)):
                    await told
            if last.finished:
                if last.failed and raise_on_error:
                    raise JobFailed(last)
                return last
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(task_id, timeout, last)
            await anyio.sleep(min(interval, remaining))
            interval = min(interval * 2, self.poll_max)

    async def result(self, task_id: str, out: str | os.PathLike[str] | None = None) -> Result:
        """As `Client.result` (the file is written with blocking calls, a chunk at a time)."""
        attempts = Attempts(self.retry, self.on_retry)
        while True:
            response = await self._send("GET", proto.task_path(task_id, "/result"), stream=True)
            try:
                return await self._read_result(task_id, response, Path(out) if out is not None else None)
            except (httpx.TransportError, GatewayUnavailable) as exc:
                error = exc if isinstance(exc, GatewayUnavailable) else proto.connection_error(exc)
                try:
                    wait = attempts.delay(error)
                except GatewayUnavailable as final:
                    raise final from exc
                await _told(attempts)
                await anyio.sleep(wait)
            finally:
                await response.aclose()

    async def tasks(self, *, status: str | None = None, job_type: str | None = None, external_id: str | None = None,
                    created_after: datetime | str | None = None, client_id: str | None = None,
                    page_size: int = 100) -> AsyncIterator[TaskInfo]:
        """As `Client.tasks`: `async for info in gateway.tasks(status="done"): ...`."""
        params = proto.list_params(status, job_type, external_id, created_after, client_id, page_size)
        cursor: str | None = None
        while True:
            response = await self._send("GET", "/tasks", params=params | ({"cursor": cursor} if cursor else {}))
            rows, cursor = proto.page(response)
            for row in rows:
                yield row
            if cursor is None:
                return

    async def cancel(self, task_id: str) -> TaskInfo:
        return TaskInfo.from_json(proto.json_or_error(await self._send("DELETE", proto.task_path(task_id))))

    async def health(self) -> Health:
        try:
            response = await self._http.get("/health")
        except httpx.TransportError as exc:
            raise proto.connection_error(exc) from exc
        return proto.health(response)

    # --- one request, repeated as the policy says --------------------------------------------------

    async def _get(self, task_id: str, until: float | None) -> TaskInfo:
        response = await self._send("GET", "/taskinfo", params={"taskid": task_id}, until=until)
        return TaskInfo.from_json(proto.json_or_error(response))

    async def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None,
                    headers: Mapping[str, str] | None = None, stream: bool = False,
                    until: float | None = None) -> httpx.Response:
        """As `Client._send`."""
        attempts, relogged = Attempts(self.retry, self.on_retry, until), False
        while True:
            authorization, generation = await self._credentials.current()
            request = self._http.build_request(method, path, params=params, json=json,
                                               headers=proto.request_headers(headers, authorization))
            try:
                response = await self._http.send(request, stream=stream)
                if response.status_code >= 400:
                    await response.aread()  # an error's envelope, even on a streamed request
            except httpx.TransportError as exc:
                try:
                    wait = attempts.delay(proto.connection_error(exc))
                except GatewayUnavailable as final:
                    raise final from exc
                await _told(attempts)
                await anyio.sleep(wait)
                continue
            if response.status_code < 400:
                return response
            await response.aclose()
            error = proto.error_from(response)
            if response.status_code == 401 and not relogged and await self._credentials.refresh(generation):
                relogged = True
                attempts.relogin(error)
                await _told(attempts)
                continue
            wait = attempts.delay(error)
            await _told(attempts)
            await anyio.sleep(wait)

    async def _read_result(self, task_id: str, response: httpx.Response, out: Path | None) -> Result:
        media_type = response.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
        if out is None:
            content = await response.aread()
            proto.check_length(response, len(content))
            return Result(task_id, media_type, len(content), content=content)
        part = out.with_name(out.name + ".part")
        size = 0
        try:
            with open(part, "wb") as file:
                async for chunk in response.aiter_bytes(CHUNK):
                    file.write(chunk)
                    size += len(chunk)
            proto.check_length(response, size)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
        return Result(task_id, media_type, size, path=out)


async def _told(attempts: Attempts) -> None:
    """An async `on_retry` returned an awaitable: let it run before the wait."""
    told, attempts.told = attempts.told, None
    if inspect.isawaitable(told):
        await told


class AsyncTask(TaskHandle["AsyncClient"]):
    """A handle on one task for AsyncClient; as `Task`."""

    async def get(self) -> TaskInfo:
        return await self.client.get(self.uuid)

    async def wait(self, timeout: float = 300.0, *, on_update: UpdateHook | None = None,
                   raise_on_error: bool = True) -> TaskInfo:
        return await self.client.wait(self.uuid, timeout, on_update=on_update, raise_on_error=raise_on_error)

    async def result(self, out: str | os.PathLike[str] | None = None) -> Result:
        return await self.client.result(self.uuid, out)

    async def cancel(self) -> TaskInfo:
        return await self.client.cancel(self.uuid)
