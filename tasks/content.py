"""Decoding uploaded content: the one place that turns base64 text into bytes, within limits."""
from __future__ import annotations

import base64
import binascii

from tasks.errors import BadContent


def decode(text: str, max_bytes: int) -> bytes:
    """Strict base64 -> bytes; anything else is BadContent with a message that quotes no content."""
    if not isinstance(text, str):
        raise BadContent("content must be a base64 string")
    if len(text) * 3 // 4 > max_bytes + 2:
        raise BadContent(f"content exceeds the limit of {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadContent("content is not valid base64") from None
    if len(data) > max_bytes:
        raise BadContent(f"content is {len(data)} bytes, the limit is {max_bytes}")
    return data


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
