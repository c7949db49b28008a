"""Small real images for tests, made with Pillow."""
from __future__ import annotations

import io

from PIL import Image


def png(width: int = 400, height: int = 300, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def gradient_png(width: int = 64, height: int = 48) -> bytes:
    image = Image.new("RGB", (width, height))
    # A horizontal "tent" (rising then falling) so both perceptual hashes have set and clear bits.
    tent = [255 - abs(2 * x - width) * 255 // width for x in range(width)]
    image.putdata([(tent[x], y * 255 // height, 128) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
