"""Building an upload's `content`: binary content travels base64-encoded inside the JSON body."""
from __future__ import annotations

import base64
import os
from typing import Any


def content_from_bytes(data: bytes) -> str:
    """`data` as the base64 text an upload's `content` holds."""
    return base64.b64encode(bytes(data)).decode("ascii")


def content_from_path(path: str | os.PathLike[str]) -> str:
    """The file at `path`, read whole, as an upload's `content` (the gateway's limit on content is
    configuration per job type, 8 MiB decoded in the shipped one: a larger file is a 413)."""
    with open(path, "rb") as file:
        return content_from_bytes(file.read())


def upload_from_path(path: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """An upload with the file's content and the job's other fields: `upload_from_path("a.png", width=100)`."""
    return {"content": content_from_path(path), **fields}
