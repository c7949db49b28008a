"""Opening uploaded images: the one place Pillow decodes client bytes, with the decompression-bomb
guard and the job type's allow-list of formats, so every job that looks at an image has the same
bounds."""
from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

from PIL import Image

from jobs.failures import BadContent


def set_pixel_limit(pixels: int) -> None:
    """Pillow refuses images above this many pixels: a small upload can decode to gigabytes."""
    Image.MAX_IMAGE_PIXELS = pixels


def open_image(content: bytes, formats: Sequence[str] | None = None) -> Image.Image:
    """Decode fully or raise BadContent; decompression bombs count as bad content, not a crash.

    Only the decoders named in `formats` (the job type's `input_formats`) ever see the bytes: each
    decoder Pillow tries is attack surface, and content in any other format is simply not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content), formats=list(formats) if formats else None)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadContent(f"image exceeds the limit of {Image.MAX_IMAGE_PIXELS} pixels") from None
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - Pillow signals undecodable input with many exception types
        accepted = f" in an accepted format ({', '.join(formats)}: input_formats)" if formats else ""
        raise BadContent(f"content is not a decodable image{accepted}") from None
    return image
