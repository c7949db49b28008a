"""Uploaded content: the one base64 rule. The gateway refuses oversized content from its length alone
(413 before anything is queued); the workers decode it strictly, within the same limit."""
from __future__ import annotations

import base64
import binascii

from jobs.failures import BadContent


def decode(text: str, max_bytes: int) -> bytes:
    """Strict base64 -> bytes; anything else is BadContent with a message that quotes no content."""
    if not isinstance(text, str):
        raise BadContent("content must be a base64 string")
    if decoded_length(text) > max_bytes:
        raise BadContent(f"content exceeds the limit of {max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadContent("content is not valid base64") from None
    if len(data) > max_bytes:
        raise BadContent(f"content is {len(data)} bytes, the limit is {max_bytes}")
    return data


def decoded_length(text: str) -> int:
    """How many bytes base64 `text` decodes to (exact for valid input, an upper bound otherwise)."""
    return len(text) * 3 // 4 - text[-2:].count("=")


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
