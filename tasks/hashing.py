"""calc_hash: cryptographic digests of any content, perceptual hashes when it is an image."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, cast

from PIL import Image

from jobs.content import decode
from jobs.failures import BadContent
from tasks.app import app
from tasks.bounds import bounded_result, memory_bounded
from tasks.imaging import open_image
from tasks.runtime import bounds_for, content_limit

DEFAULT_ALGORITHMS = ("sha256",)
HASH_SIDE = 8


def calc_hash(content: bytes, algorithms: list[str] | tuple[str, ...] = DEFAULT_ALGORITHMS,
              formats: Sequence[str] | None = None) -> dict[str, Any]:
    """Digests for each requested algorithm; `perceptual` only when the bytes decode as an image in
    one of `formats` (the job type's `input_formats`)."""
    result: dict[str, Any] = {
        "size": len(content),
        "digests": {name: hashlib.new(name, content).hexdigest() for name in algorithms},
    }
    image = _try_image(content, formats)
    if image is not None:
        result["perceptual"] = {"ahash": average_hash(image), "dhash": difference_hash(image)}
    return result


def average_hash(image: Image.Image) -> str:
    """64-bit aHash: each pixel of an 8x8 greyscale thumbnail against the thumbnail's mean."""
    small = image.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = list(cast("tuple[float, ...]", small.get_flattened_data()))  # one band ("L"): a number per pixel
    mean = sum(pixels) / len(pixels)
    return _bits_to_hex(p > mean for p in pixels)


def difference_hash(image: Image.Image) -> str:
    """64-bit dHash: each pixel of a 9x8 greyscale thumbnail against its right-hand neighbour."""
    small = image.convert("L").resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = list(cast("tuple[float, ...]", small.get_flattened_data()))  # one band ("L"): a number per pixel
    width = HASH_SIDE + 1
    return _bits_to_hex(
        pixels[row * width + col] > pixels[row * width + col + 1]
        for row in range(HASH_SIDE) for col in range(HASH_SIDE)
    )


def _bits_to_hex(bits) -> str:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:0{HASH_SIDE * HASH_SIDE // 4}x}"


def _try_image(content: bytes, formats: Sequence[str] | None) -> Image.Image | None:
    """Any content may be hashed; only what Pillow fully decodes within its pixel limit is an image."""
    try:
        return open_image(content, formats)
    except BadContent:
        return None


@app.task(name="jobs.calc_hash", bind=True)
@memory_bounded
def calc_hash_task(self, upload: dict[str, Any]) -> dict[str, Any]:
    content = decode(upload["content"], content_limit(self.name))
    result = calc_hash(content, upload.get("algorithms") or DEFAULT_ALGORITHMS, bounds_for(self).input_formats)
    return bounded_result(self, result)
