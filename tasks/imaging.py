"""Opening uploaded images: the one place Pillow decodes client bytes, with the decompression-bomb
guard, so every job that looks at an image has the same bounds."""
from __future__ import annotations

import io
import warnings

from PIL import Image

from jobs.errors import BadContent


def set_pixel_limit(pixels: int) -> None:
    """Pillow refuses images above this many pixels: a small upload can decode to gigabytes."""
    Image.MAX_IMAGE_PIXELS = pixels


def open_image(content: bytes) -> Image.Image:
    """Decode fully or raise BadContent; decompression bombs count as bad content, not a crash."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadContent(f"image exceeds the limit of {Image.MAX_IMAGE_PIXELS} pixels") from None
    except Exception:  # noqa: BLE001 - Pillow signals undecodable input with many exception types
        raise BadContent("content is not a decodable image") from None
    return image
