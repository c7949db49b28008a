"""`AsyncClient` against the live stack: every call, plus the re-login and the lost answer, under asyncio
(each test runs its coroutine with asyncio.run: no plugin, nothing shared between event loops)."""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest
import requests

from devsupport.processes import wait_until
from jobgateway_client import (
    AsyncClient,
    BasicAuth,
    Conflict,
    ErrorCode,
    JobFailed,
    NotFound,
    TaskInfo,
    TokenProvider,
    WaitTimeout,
    content_from_bytes,
)
from tests.client.conftest import EXPIRES_IN, expiring_claims
from tests.support import images


def test_async_submit_get_wait_and_result(gateway_url, worker, vault, tmp_path):
    async def scenario() -> None:
        async with AsyncClient(gateway_url, BasicAuth(*vault.basic("admin"))) as client:
            hashed = await client.submit("calc_hash", {"content": content_from_bytes(b"async")})
            resized = await client.submit("resize_image", {"content": content_from_bytes(images.png(400, 300)),
                                                           "width": 100})
            done = await hashed.wait(timeout=30)
            assert done.result["digests"]["sha256"] == hashlib.sha256(b"async").hexdigest()
            assert await client.get(hashed.uuid) == done
            assert (await hashed.result()).json() == done.result
            assert (await client.wait(resized.uuid, 30)).result["width"] == 100
            saved = await resized.result(tmp_path / "small.png")
            assert saved.media_type == "image/png" and images.decode(saved.path.read_bytes()).size == (100, 75)
    asyncio.run(scenario())


def test_async_wait_reports_progress_to_an_async_hook(gateway_url, worker, vault, redis_client):
    async def scenario() -> list[TaskInfo]:
        async with AsyncClient(gateway_url, BasicAuth(*vault.basic("admin"))) as client:
            task = await client.submit("hold", {"tag": "async"})
            seen: list[TaskInfo] = []

            async def on_update(info: TaskInfo) -> None:
                seen.append(info)
                if info.progress is not None:
                    await asyncio.to_thread(redis_client.rpush, f"release:{task.uuid}", "go")
            await task.wait(timeout=60, on_update=on_update)
            return seen
    seen = asyncio.run(scenario())
    assert any(info.progress is not None and info.progress.stage == "holding" for info in seen)
    assert seen[-1].done and seen[-1].result["tag"] == "async"


def test_async_errors_timeouts_and_cancel(gateway_url, worker, vault):
    async def scenario() -> None:
        async with AsyncClient(gateway_url, BasicAuth(*vault.basic("admin"))) as client:
            with pytest.raises(NotFound):
                await client.get(str(uuid.uuid4()))
            bad = await client.submit("resize_image", {"content": content_from_bytes(b"no image"), "width": 3})
            with pytest.raises(JobFailed) as failed:
                await bad.wait(timeout=30)
            assert failed.value.code == ErrorCode.BAD_CONTENT
            parked = await client.submit("calc_hash_parked", {"content": content_from_bytes(b"parked")})
            with pytest.raises(WaitTimeout):
                await parked.wait(timeout=0.5)
            assert (await parked.cancel()).code == ErrorCode.CANCELLED
            with pytest.raises(Conflict):
                await client.cancel(bad.uuid)
            assert (await client.health()).ok
    asyncio.run(scenario())


def test_async_tasks_iterates_every_page(gateway_url, worker, fresh_identity):
    _, token = fresh_identity("admin")

    async def scenario() -> tuple[list[str], list[str]]:
        async with AsyncClient(gateway_url, token) as client:
            submitted = [(await client.submit("calc_hash_parked", {"content": content_from_bytes(b"%d" % i)})).uuid
                         for i in range(5)]
            return submitted, [row.uuid async for row in client.tasks(page_size=2)]
    submitted, listed = asyncio.run(scenario())
    assert listed == submitted[::-1]  # three pages of 2, 2 and 1


def test_async_token_provider_logs_in_again_when_the_jwt_expires(gateway_url, worker, vault, retries):
    client_id = f"client-lib-{uuid.uuid4().hex[:10]}"
    issued: list[str] = []

    async def fetch() -> str:
        issued.append(vault.jwt(client_id=client_id, client_role="service", **(expiring_claims() if not issued else {})))
        return issued[-1]

    async def scenario() -> TaskInfo:
        async with AsyncClient(gateway_url, TokenProvider(fetch), on_retry=retries) as client:
            task = await client.submit("calc_hash", {"content": content_from_bytes(b"relogin")})
            await asyncio.to_thread(wait_until, lambda: requests.get(
                f"{gateway_url}/taskinfo", params={"taskid": task.uuid}, timeout=5,
                headers={"Authorization": "Bearer " + issued[0]}).status_code == 401, EXPIRES_IN + 15, "first token refused")
            return await task.wait(timeout=30)
    started = time.monotonic()
    assert asyncio.run(scenario()).done
    assert len(issued) == 2 and retries.reasons == ["re-login"] and time.monotonic() - started < 60


def test_async_submit_whose_answer_is_lost_is_retried_into_the_same_task(lossy_proxy, vault, retries):
    proxy = lossy_proxy(drop=1)
    token = vault.jwt(client_id=f"client-lib-{uuid.uuid4().hex[:10]}", client_role="service")

    async def scenario() -> tuple[bool, list[str], str]:
        async with AsyncClient(proxy.url, token, on_retry=retries) as client:
            task = await client.submit("calc_hash", {"content": content_from_bytes(b"lost")})
            return task.new, [row.uuid async for row in client.tasks()], task.uuid
    new, listed, task_id = asyncio.run(scenario())
    assert (proxy.forwarded, proxy.lost) == (2, 1) and retries.reasons == ["connection"]
    assert new is False and listed == [task_id]
