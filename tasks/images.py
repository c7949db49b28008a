"""resize_image and water_marks: real image work with Pillow, logic in plain functions.

Every size the work will allocate is checked against the job type's bounds (jobs/catalogue.py Bounds)
before the allocation: the output image, the watermark text's bitmap, the encoded result. Going over
one is bad content (OutOfBounds, code 2) naming the bound, never a worker out of memory."""
from __future__ import annotations

import io
import math
import warnings
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from jobs.catalogue import Bounds
from jobs.content import decode, encode
from jobs.failures import BadContent, OutOfBounds
from jobs.results import stored_size
from tasks.app import app
from tasks.bounds import check_output_size, check_stored_size, memory_bounded
from tasks.imaging import open_image
from tasks.results import stored_apart
from tasks.runtime import Progress, bounds_for, content_limit, no_progress

OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
DEFAULT_BOUNDS = Bounds()


def resize_image(content: bytes, width: int | None = None, height: int | None = None,
                 keep_aspect: bool = True, format: str | None = None, progress: Progress = no_progress,
                 bounds: Bounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """Resize into the box (fit inside it when keep_aspect); encode as `format` or the source's."""
    progress(10, "decoding")
    image = open_image(content, bounds.input_formats)
    progress(40, "resizing")
    size = fit_size(image.size, width, height, keep_aspect, bounds)
    resized = image.resize(size, Image.Resampling.LANCZOS)
    progress(70, "encoding")
    return _encoded(resized, format or _source_format(image), bounds)


def fit_size(source: tuple[int, int], width: int | None, height: int | None, keep_aspect: bool,
             bounds: Bounds = DEFAULT_BOUNDS) -> tuple[int, int]:
    """The output size: the largest size inside the box with the source's aspect, or the box itself.
    With keep_aspect one requested side decides the other, which can come out far larger than either
    (1x100 asked 10000 wide is 10000x1000000): both sides are checked, whichever way they came."""
    for name, value in (("width", width), ("height", height)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BadContent(f"{name} must be a positive integer")
    if width is None and height is None:
        raise BadContent("width or height is required")
    src_w, src_h = source
    if not keep_aspect:
        size = width or src_w, height or src_h
    else:
        scale = min(width / src_w if width else math.inf, height / src_h if height else math.inf)
        size = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    check_output_size(size, bounds)
    return size


def water_marks(content: bytes, text: str, position: str = "bottom-right", opacity: float = 0.5,
                font_size: int | None = None, format: str | None = None, progress: Progress = no_progress,
                bounds: Bounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """Stamp `text` at `position` with `opacity`; the font scales with the image unless given."""
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not 0 <= opacity <= 1:
        raise BadContent("opacity must be a number from 0 to 1")  # NaN and infinities fail the range too
    if font_size is not None and (isinstance(font_size, bool) or not isinstance(font_size, int) or font_size < 1):
        raise BadContent("font_size must be a positive integer")
    progress(10, "decoding")
    image = open_image(content, bounds.input_formats)
    check_output_size(image.size, bounds)
    progress(40, "stamping")
    stamped = _stamp(image.convert("RGBA"), text, position, opacity, font_size or max(12, min(image.size) // 12), bounds)
    progress(70, "encoding")
    return _encoded(stamped, format or _source_format(image), bounds)


def _stamp(base: Image.Image, text: str, position: str, opacity: float, size: int, bounds: Bounds) -> Image.Image:
    """The text drawn over `base`. A text Pillow refuses to draw (too large a bitmap, characters
    its font cannot take) is bad content: the client chose it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _draw(base, text, position, opacity, size, bounds)
    except OutOfBounds:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise OutOfBounds(f"the text at font size {size} is over the bound of {Image.MAX_IMAGE_PIXELS} pixels "
                          "(workers.max_image_pixels)") from None
    except (ValueError, OSError, TypeError):
        raise BadContent(f"the text cannot be drawn at font size {size}") from None


def _draw(base: Image.Image, text: str, position: str, opacity: float, size: int, bounds: Bounds) -> Image.Image:
    font = ImageFont.load_default(size=size)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    stroke = max(1, size // 16)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    if (right - left) * (bottom - top) > bounds.max_output_pixels:
        raise OutOfBounds(f"the text at font size {size} is {right - left}x{bottom - top} pixels, over the bound "
                          f"of {bounds.max_output_pixels} pixels (max_output_pixels)")
    xy = text_origin(base.size, (right - left, bottom - top), position, margin=max(2, min(base.size) // 50))
    alpha = round(255 * opacity)
    draw.text((xy[0] - left, xy[1] - top), text, font=font, fill=(255, 255, 255, alpha),
              stroke_width=stroke, stroke_fill=(0, 0, 0, alpha))
    return Image.alpha_composite(base, overlay)


def text_origin(image: tuple[int, int], text: tuple[float, float], position: str, margin: int) -> tuple[float, float]:
    """Top-left corner of the text box for a named position, `margin` pixels from the edges."""
    (img_w, img_h), (txt_w, txt_h) = image, text
    x = {"left": margin, "right": img_w - txt_w - margin, "center": (img_w - txt_w) // 2}
    y = {"top": margin, "bottom": img_h - txt_h - margin, "center": (img_h - txt_h) // 2}
    vertical, _, horizontal = position.partition("-")
    return max(0, x[horizontal or "center"]), max(0, y[vertical])


def _source_format(image: Image.Image) -> str:
    """Keep the source's format when we can write it; anything else (GIF, BMP, ...) becomes PNG."""
    name = (image.format or "").lower()
    return name if name in OUTPUT_FORMATS else "png"


def _encoded(image: Image.Image, fmt: str, bounds: Bounds) -> dict[str, Any]:
    """The result; its size is checked on the encoded bytes, before the base64 text is built."""
    if fmt == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=OUTPUT_FORMATS[fmt])
    check_stored_size(stored_size(buffer.getbuffer().nbytes), bounds)
    return {"content": encode(buffer.getvalue()), "width": image.width, "height": image.height, "format": fmt}


@app.task(name="jobs.resize_image", bind=True)
@memory_bounded
def resize_image_task(self, upload: dict[str, Any]) -> dict[str, Any]:
    content = decode(upload["content"], content_limit(self.name))
    result = resize_image(content, upload.get("width"), upload.get("height"), upload.get("keep_aspect", True),
                          upload.get("format"), progress=self.report_progress, bounds=bounds_for(self))
    return stored_apart(self, result)


@app.task(name="jobs.water_marks", bind=True)
@memory_bounded
def water_marks_task(self, upload: dict[str, Any]) -> dict[str, Any]:
    content = decode(upload["content"], content_limit(self.name))
    result = water_marks(content, upload["text"], upload.get("position", "bottom-right"), upload.get("opacity", 0.5),
                         upload.get("font_size"), upload.get("format"), progress=self.report_progress,
                         bounds=bounds_for(self))
    return stored_apart(self, result)
