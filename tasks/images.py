"""resize_image and water_marks: real image work with Pillow, logic in plain functions."""
from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from jobs.content import decode, encode
from tasks.app import app
from tasks.imaging import open_image
from tasks.runtime import Progress, content_limit, no_progress

OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def resize_image(content: bytes, width: int | None = None, height: int | None = None,
                 keep_aspect: bool = True, format: str | None = None, progress: Progress = no_progress) -> dict[str, Any]:
    """Resize into the box (fit inside it when keep_aspect); encode as `format` or the source's."""
    progress(10, "decoding")
    image = open_image(content)
    progress(40, "resizing")
    size = fit_size(image.size, width, height, keep_aspect)
    resized = image.resize(size, Image.Resampling.LANCZOS)
    progress(70, "encoding")
    return _encoded(resized, format or _source_format(image))


def fit_size(source: tuple[int, int], width: int | None, height: int | None, keep_aspect: bool) -> tuple[int, int]:
    """The output size: the largest size inside the box with the source's aspect, or the box itself."""
    src_w, src_h = source
    if not keep_aspect:
        return width or src_w, height or src_h
    scale = min(width / src_w if width else float("inf"), height / src_h if height else float("inf"))
    return max(1, round(src_w * scale)), max(1, round(src_h * scale))


def water_marks(content: bytes, text: str, position: str = "bottom-right", opacity: float = 0.5,
                font_size: int | None = None, format: str | None = None, progress: Progress = no_progress
                ) -> dict[str, Any]:
    """Stamp `text` at `position` with `opacity`; the font scales with the image unless given."""
    progress(10, "decoding")
    image = open_image(content)
    progress(40, "stamping")
    base = image.convert("RGBA")
    size = font_size or max(12, min(base.size) // 12)
    font = ImageFont.load_default(size=size)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=max(1, size // 16))
    xy = text_origin(base.size, (right - left, bottom - top), position, margin=max(2, min(base.size) // 50))
    alpha = round(255 * opacity)
    draw.text((xy[0] - left, xy[1] - top), text, font=font, fill=(255, 255, 255, alpha),
              stroke_width=max(1, size // 16), stroke_fill=(0, 0, 0, alpha))
    stamped = Image.alpha_composite(base, overlay)
    progress(70, "encoding")
    return _encoded(stamped, format or _source_format(image))


def text_origin(image: tuple[int, int], text: tuple[int, int], position: str, margin: int) -> tuple[int, int]:
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


def _encoded(image: Image.Image, fmt: str) -> dict[str, Any]:
    if fmt == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=OUTPUT_FORMATS[fmt])
    return {"content": encode(buffer.getvalue()), "width": image.width, "height": image.height, "format": fmt}


@app.task(name="jobs.resize_image", bind=True)
def resize_image_task(self, upload: dict[str, Any]) -> dict[str, Any]:
    content = decode(upload["content"], content_limit(self.name))
    return resize_image(content, upload.get("width"), upload.get("height"),
                        upload.get("keep_aspect", True), upload.get("format"), progress=self.report_progress)


@app.task(name="jobs.water_marks", bind=True)
def water_marks_task(self, upload: dict[str, Any]) -> dict[str, Any]:
    content = decode(upload["content"], content_limit(self.name))
    return water_marks(content, upload["text"], upload.get("position", "bottom-right"),
                       upload.get("opacity", 0.5), upload.get("font_size"), upload.get("format"),
                       progress=self.report_progress)
