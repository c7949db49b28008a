"""Small real images for tests, made with Pillow."""
from __future__ import annotations

import io
import os

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


def one_by_hundred() -> bytes:
    """A 1x100 PNG of under 100 bytes (issue 11 used one of 74), which keep_aspect asked 10000 wide turns 10000x1000000."""
    buffer = io.BytesIO()
    Image.new("L", (1, 100)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """Random pixels: PNG cannot compress them, so the image's size is about 3 bytes a pixel."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(3 * width * height)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
