"""resize_image and water_marks plain functions, called directly."""
from __future__ import annotations

import base64

import pytest

from jobs.failures import BadContent
from tasks import images
from tasks.images import fit_size, resize_image, text_origin, water_marks
from tests.support.images import decode, png


@pytest.mark.parametrize("source, box, keep, expected", [
    ((400, 300), (100, None), True, (100, 75)),
    ((400, 300), (None, 150), True, (200, 150)),
    ((400, 300), (100, 100), True, (100, 75)),
    ((300, 400), (100, 100), True, (75, 100)),
    ((400, 300), (100, 100), False, (100, 100)),
    ((400, 300), (50, None), False, (50, 300)),
])
def test_fit_size(source, box, keep, expected):
    assert fit_size(source, *box, keep) == expected


@pytest.mark.parametrize("position, expected", [
    ("top-left", (5, 5)), ("top-right", (75, 5)), ("bottom-left", (5, 85)),
    ("bottom-right", (75, 85)), ("center", (40, 45)),
])
def test_text_origin(position, expected):
    assert text_origin((100, 100), (20, 10), position, margin=5) == expected


def test_resize_keeps_source_format():
    result = resize_image(png(40, 20), width=10)
    assert (result["width"], result["height"], result["format"]) == (10, 5, "png")
    assert decode(base64.b64decode(result["content"])).size == (10, 5)


def test_water_mark_opacity_zero_leaves_the_image_unchanged():
    color = (10, 200, 30)
    result = water_marks(png(120, 80, color), "invisible", opacity=0.0)
    assert set(decode(base64.b64decode(result["content"])).convert("RGB").get_flattened_data()) == {color}


def test_undecodable_image_is_bad_content():
    with pytest.raises(BadContent, match="not a decodable image"):
        resize_image(b"GIF89a-truncated", width=10)


def test_decompression_bomb_is_bad_content(monkeypatch):
    monkeypatch.setattr(images.Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BadContent, match="exceeds the limit"):
        water_marks(png(100, 100), "x")


@pytest.mark.parametrize("job", ["resize", "water_marks"])
def test_image_jobs_report_progress_in_order(job):
    seen = []
    record = lambda percent, stage: seen.append((percent, stage))
    if job == "resize":
        resize_image(png(), width=50, progress=record)
        assert seen == [(10, "decoding"), (40, "resizing"), (70, "encoding")]
    else:
        water_marks(png(), "x", progress=record)
        assert seen == [(10, "decoding"), (40, "stamping"), (70, "encoding")]
