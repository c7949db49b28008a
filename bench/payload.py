"""The one payload every row sends: calc_hash of `size` random bytes (default 1 KiB), base64."""
from __future__ import annotations

import base64
import random
from typing import Any


def upload(size: int = 1024) -> dict[str, Any]:
    content = random.Random(size).randbytes(size)  # fixed per size, so runs send identical bodies
    return {"content": base64.b64encode(content).decode(), "algorithms": ["sha256"]}


def submit_body(size: int = 1024) -> dict[str, Any]:
    """No ExternalId: with one, every request after the first would be an idempotent replay (200, nothing
    queued) instead of a new job."""
    return {"type": "calc_hash", "upload": upload(size)}
