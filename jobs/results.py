"""Results too big to inline, as both sides know them.

A worker stores an image job's content (base64 text) under its own key (jobs/keys.py CONTENT_PREFIX)
and lets Celery's meta keep only the small fields (`set_aside`), so reading a task's state — /taskinfo,
a page of GET /tasks, a completion webhook — never reads its image. TaskInfo's `result` (`present`)
carries the whole result when it stores at most `results.max_inline_bytes`; above that its small
fields and `result_url`, where GET /tasks/<uuid>/result serves the bytes (`served`) in chunks, with
their length known before the first one is read.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis import Redis

from jobs.content import decoded_length
from jobs.keys import CONTENT_PREFIX

ASIDE = "content_aside"  # in a stored result: its `content` lives under CONTENT_PREFIX + uuid
SMALL_FIELDS = ("width", "height", "format", "size")
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
CHUNK = 1024 * 1024  # base64 characters read per chunk (a multiple of 4: each decodes on its own)
KEEP_AFTER_META = 60  # seconds the content outlives Celery's meta, which is written after it


def result_url(uuid: str) -> str:
    return f"/tasks/{uuid}/result"


def stored_size(content_bytes: int) -> int:
    """Bytes an image of `content_bytes` stores: its base64 text."""
    return 4 * -(-content_bytes // 3)


def set_aside(redis: Redis, uuid: str, result: dict[str, Any], expires: int) -> dict[str, Any]:
    """Worker side: store `result["content"]` under its own key; return what Celery's meta keeps."""
    content = result["content"]
    redis.set(CONTENT_PREFIX + uuid, content, ex=expires + KEEP_AFTER_META)
    small = {key: value for key, value in result.items() if key != "content"}
    return small | {"size": decoded_length(content), ASIDE: True}


def present(uuid: str, result: Any, redis: Redis, max_inline: int) -> Any:
    """TaskInfo's `result`: inline when it stores at most `max_inline` bytes, else its small fields
    and `result_url`. Only a small set-aside content is read from Redis, never a large one."""
    if isinstance(result, dict) and result.get(ASIDE):
        small = {key: value for key, value in result.items() if key != ASIDE}
        content = redis.get(CONTENT_PREFIX + uuid) if stored_size(result.get("size", 0)) <= max_inline else None
        if content is not None:
            return {"content": content.decode() if isinstance(content, bytes) else content, **small}
        return small | {"result_url": result_url(uuid)}
    if result is None or len(json.dumps(result, separators=(",", ":"))) <= max_inline:
        return result
    small = {key: result[key] for key in SMALL_FIELDS if isinstance(result, dict) and key in result}
    return small | {"result_url": result_url(uuid)}


@dataclass(frozen=True)
class Served:
    """What GET /tasks/<uuid>/result sends: its media type, its length, and the body in chunks."""

    media_type: str
    length: int
    chunks: Iterator[bytes]


def served(uuid: str, result: Any, redis: Redis) -> Served | None:
    """An image result as its bytes, anything else as its JSON; None if the content has expired."""
    if isinstance(result, dict) and result.get(ASIDE):
        return _set_aside_image(CONTENT_PREFIX + uuid, MEDIA_TYPES.get(result.get("format", ""), "application/octet-stream"), redis)
    if isinstance(result, dict) and result.get("format") in MEDIA_TYPES and isinstance(result.get("content"), str):
        data = base64.b64decode(result["content"])  # stored inline by a worker older than set_aside
        return Served(MEDIA_TYPES[result["format"]], len(data), iter([data]))
    body = json.dumps(result, separators=(",", ":")).encode()
    return Served("application/json", len(body), iter([body]))


def _set_aside_image(key: str, media_type: str, redis: Redis) -> Served | None:
    encoded = redis.strlen(key)
    if not encoded:
        return None
    tail = redis.getrange(key, max(0, encoded - 2), encoded - 1)
    padding = (tail.decode() if isinstance(tail, bytes) else tail).count("=")
    return Served(media_type, encoded * 3 // 4 - padding, _chunks(redis, key, encoded))


def _chunks(redis: Redis, key: str, encoded: int) -> Iterator[bytes]:
    """The decoded content, one GETRANGE at a time: a reader holds one chunk, never the image."""
    for start in range(0, encoded, CHUNK):
        yield base64.b64decode(redis.getrange(key, start, start + CHUNK - 1))
